"""Database connections, dialects and migrations shared by the queue, the cache and cable."""

from __future__ import annotations

from .connect import Database, close_all, connect
from .errors import DatabaseError
from .forkguard import background_section
from .migrate import Migration, applied_versions, migrate, package_migrations
from .queries import load_queries
from .sqlite import SQLiteDatabase

__all__ = [
    "Database",
    "DatabaseError",
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
