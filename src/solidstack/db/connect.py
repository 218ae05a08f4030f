"""Open the right engine for a database entry of ``config/database.yml``."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from .. import _on_reset
from .errors import DatabaseError
from .sqlite import SQLiteDatabase

if TYPE_CHECKING:
    from ..config.database import DatabaseConfig

#: The engine type every part is written against. PostgreSQL will join it as a second driver.
Database = SQLiteDatabase

_open: dict[tuple[str, str], Database] = {}
_lock = threading.Lock()


def connect(config: DatabaseConfig) -> Database:
    """The database for a config entry; one object per file and process, shared by every part that uses it."""
    if config.adapter in ("sqlite3", "sqlite"):
        path = Path(config.database).resolve()
        key = ("sqlite", str(path))
        with _lock:
            db = _open.get(key)
            if db is None:
                db = _open[key] = SQLiteDatabase(path, busy_timeout=config.timeout, name=config.name)
        return db
    raise DatabaseError(
        f"{config.source}: the {config.name!r} database uses adapter {config.adapter!r}, which solidstack "
        "does not support yet (supported: sqlite3)"
    )


@_on_reset
def close_all() -> None:
    """Forget the databases :func:`connect` opened and close this thread's connections to them.

    Called by ``solidstack.configure()``: the next use opens the new app's databases. Objects still held
    elsewhere reopen their connection on next use.
    """
    with _lock:
        databases = list(_open.values())
        _open.clear()
    for db in databases:
        db.close()
