"""Open the right engine for a database entry of ``config/database.yml``."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import _on_reset
from .base import Database
from .errors import DatabaseError
from .sqlite import SQLiteDatabase

if TYPE_CHECKING:
    from ..config.database import DatabaseConfig

__all__ = ["Database", "close_all", "connect"]

_open: dict[tuple[str, str], Any] = {}
_lock = threading.Lock()

#: ``database.yml`` keys passed on to libpq as they are (Rails' names on the left).
_LIBPQ_KEYS = {"host": "host", "port": "port", "username": "user", "password": "password", "sslmode": "sslmode"}


def connect(config: DatabaseConfig) -> Database:
    """The database for a config entry; one object per database and process, shared by every part that uses it."""
    if config.adapter in ("sqlite3", "sqlite"):
        path = Path(config.database).resolve()
        key = ("sqlite", str(path))
        with _lock:
            db = _open.get(key)
            if db is None:
                db = _open[key] = SQLiteDatabase(path, busy_timeout=config.timeout, name=config.name)
        return db
    if config.adapter in ("postgresql", "postgres"):
        return _connect_postgresql(config)
    raise DatabaseError(
        f"{config.source}: the {config.name!r} database uses adapter {config.adapter!r}, which solidstack "
        "does not support (supported: sqlite3, postgresql)"
    )


def _connect_postgresql(config: DatabaseConfig) -> Database:
    url, params, _options = postgresql_params(config)
    key = ("postgresql", f"{config.name}|{url}|{sorted(params.items())}")
    with _lock:
        db = _open.get(key)
        if db is None:
            db = _open[key] = postgresql_database(config)
    return db


def postgresql_database(config: DatabaseConfig, **overrides: Any) -> Database:
    """A new ``PostgreSQLDatabase`` for a PostgreSQL entry, set up from its options; ``overrides`` replace
    those keyword arguments (the cache opens a pool of its own with shorter waits, decision 0110)."""
    try:
        from .postgresql import PostgreSQLDatabase
    except ImportError as exc:
        raise DatabaseError(
            f"{config.source}: the {config.name!r} database uses PostgreSQL, which needs psycopg 3 and "
            f"psycopg_pool: pip install 'solidstack[postgres]' ({exc})"
        ) from exc
    url, params, options = postgresql_params(config)
    settings: dict[str, Any] = {
        "name": config.name, "source": config.source,
        "pool_size": int(options.get("pool") or options.get("max_connections") or 5),
        "listen": bool(options.get("listen", True)),
        "prepared_statements": bool(options.get("prepared_statements", True)),
        "connect_timeout": float(options.get("connect_timeout") or 5.0),
        "checkout_timeout": float(options.get("checkout_timeout") or 30.0),
    }
    settings.update(overrides)
    return PostgreSQLDatabase(url, **settings, **params)


def postgresql_params(config: DatabaseConfig) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """``(url, libpq parameters, entry options)`` of a PostgreSQL entry (for a part that opens its own pool)."""
    options = config.options
    params: dict[str, Any] = {libpq: str(options[key]) for key, libpq in _LIBPQ_KEYS.items()
                              if options.get(key) not in (None, "")}
    if config.database:
        params["dbname"] = config.database
    return str(options.get("url") or ""), params, options


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
