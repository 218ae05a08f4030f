"""Database connections, dialects and migrations shared by the queue, the cache and cable."""

from __future__ import annotations

from .base import Database
from .connect import close_all, connect
from .errors import DatabaseError, DatabaseUnavailable
from .forkguard import background_section
from .migrate import Migration, applied_versions, migrate, package_migrations
from .queries import load_queries
from .sqlite import SQLiteDatabase

__all__ = [
    "Database",
    "DatabaseError",
    "DatabaseUnavailable",
    "Migration",
    "SQLiteDatabase",
    "applied_versions",
    "background_section",
    "close_all",
    "connect",
    "load_queries",
    "migrate",
    "package_migrations",
]
