"""The database store: Solid Cache's model on SQLite or PostgreSQL, through the same named queries.

Speed comes from doing little per call: a read is one prepared statement outside any transaction (WAL readers
never wait for writers); a single write or delete is one statement, which SQLite runs as its own transaction
holding the write lock from its first step, so it cannot deadlock on a lock upgrade; statements are prepared
once per connection by sqlite3's statement cache. Eviction is counted, not checked: every
``expiry_batch_size / 2`` writes a background thread deletes at most ``expiry_batch_size`` of the oldest rows.

The cache opens its own database object, with waits of its own (``busy_timeout``, default 1 s): a cache that
waits 5 s for a lock is worse than a miss. On SQLite that is a :class:`~solidstack.db.SQLiteDatabase` per file
and timeout; on PostgreSQL a pool of its own whose checkout, connect and lock waits are bounded by it. After a
failure that cost a wait the store skips the database for ``retry_after`` seconds, so a locked file or a server
that does not answer costs one wait, not one per request.

What differs between the engines is how one statement runs (:meth:`DatabaseStore._fetch`, ``_run``): on SQLite
on this thread's connection, in autocommit; on a server through the pool. Everything else is the named queries
of ``sql/<dialect>/queries.sql``.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import DatabaseConfig
from ..db import DatabaseError, SQLiteDatabase, load_queries, migrate, package_migrations
from .expiry import Expiry
from .store import Row, Store, add_failures

#: Bytes a row costs beyond its key and value (the row header and the key_hash index entry), as Solid Cache
#: estimates it.
ROW_OVERHEAD = 140
DEFAULT_MAX_AGE = 14 * 86400.0
#: UPSERT ... RETURNING (the one-statement increment) needs SQLite 3.35.
_RETURNING = sqlite3.sqlite_version_info >= (3, 35, 0)

_databases: dict[tuple[str, float], Any] = {}
_databases_lock = threading.Lock()


def _open_database(path: Path, busy_timeout: float) -> SQLiteDatabase:
    key = (str(path.resolve()), busy_timeout)
    with _databases_lock:
        db = _databases.get(key)
        if db is None:
            # No kernel writer queue (an flock with no timeout) for the cache: every wait of a cache call
            # must end within busy_timeout, after which the call is a miss (decision 0100).
            db = _databases[key] = SQLiteDatabase(key[0], busy_timeout=busy_timeout, name="cache",
                                                  writer_lock=False)
        return db


def _open_server_database(config: DatabaseConfig, busy_timeout: float) -> Any:
    """The cache's own pool on a PostgreSQL server, its waits bounded by ``busy_timeout`` (decision 0110).

    ``connect()``'s shared database waits up to 30 s for a pooled connection; a cache call must give up far
    sooner and be a miss. Lock waits are bounded in the transactions that can wait on a lock for long
    (``_update``), with ``set_config`` in the transaction: a startup ``options`` parameter would be refused (or
    dropped) by pgbouncer.
    """
    from ..db.connect import postgresql_database, postgresql_params

    url, params, options = postgresql_params(config)
    key = (f"{config.name}|{url}|{sorted(params.items())}", busy_timeout)
    with _databases_lock:
        db = _databases.get(key)
        if db is None:
            db = _databases[key] = postgresql_database(
                config, checkout_timeout=busy_timeout,
                connect_timeout=min(float(options.get("connect_timeout") or 5.0), max(2.0, busy_timeout)))
        return db


#: The first 8 bytes of a digest as a signed big-endian 64-bit integer, read in place (no slice): ~90 ns less
#: than ``int.from_bytes(digest[:8], "big", signed=True)``, the same value.
_first_int64 = struct.Struct(">q").unpack_from
_sha256 = hashlib.sha256


def key_hash(key: bytes) -> int:
    """Solid Cache's key hash: the first 8 bytes of SHA-256, as a signed 64-bit integer."""
    hashed: int = _first_int64(_sha256(key).digest())[0]
    return hashed


class _Unavailable(DatabaseError):
    """The store is skipping the database for a moment after a failure."""


#: A server engine's errors that cost a wait (no answer, connection lost, no connection in the pool in time).
_SLOW_SERVER_FAILURES: tuple[type[BaseException], ...] = ()


def _slow_failure(exc: BaseException) -> bool:
    """A failure that cost a wait (a lock held elsewhere, a file that would not open, a server that does not
    answer): worth not repeating."""
    if isinstance(exc, (DatabaseError, *_SLOW_SERVER_FAILURES)):
        return True
    message = str(exc)
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in message or "busy" in message)


def _server_driver_loaded() -> None:
    """The first store on a PostgreSQL database: psycopg's errors become misses (they are not imported before)."""
    global _SLOW_SERVER_FAILURES
    import psycopg

    add_failures(psycopg.Error)
    # OperationalError: the server is down or restarting, the connection dropped, the pool timed out, a lock or
    # statement timeout fired (QueryCanceled is one). Each is an outage worth skipping the database for.
    _SLOW_SERVER_FAILURES = (psycopg.OperationalError,)


class DatabaseStore(Store):
    """A cache in a SQLite file or a PostgreSQL database (the table ``solidstack_cache_entries``, created by
    ``solidstack db migrate`` or :meth:`migrate`).

    ``database`` is a file path, a :class:`~solidstack.config.DatabaseConfig` (``sqlite3`` or ``postgresql``),
    or a database object (:class:`~solidstack.db.SQLiteDatabase`, ``PostgreSQLDatabase``). Limits: ``max_age``
    (seconds since written, default two weeks), ``max_entries`` and ``max_size`` (bytes, estimated); ``None``
    turns a limit off. ``expiry_method`` is ``"thread"`` (off the caller's path) or ``"inline"`` (bounded work
    on the writing call; for tests and scripts). Other options are those of :class:`~solidstack.cache.Store`.
    """

    blocking = True

    def __init__(self, database: str | os.PathLike[str] | DatabaseConfig | Any, *,
                 max_age: float | None = DEFAULT_MAX_AGE, max_entries: int | None = None,
                 max_size: int | None = None, expiry_batch_size: int = 100, expiry_method: str = "thread",
                 size_estimate_samples: int = 1000, busy_timeout: float = 1.0, retry_after: float = 1.0,
                 **options: Any) -> None:
        super().__init__(**options)
        if isinstance(database, DatabaseConfig):
            if database.adapter in ("sqlite3", "sqlite"):
                self.db = _open_database(Path(database.database), busy_timeout)
            elif database.adapter in ("postgresql", "postgres", "postgis"):
                self.db = _open_server_database(database, busy_timeout)
            else:
                raise ValueError(f"{database.source}: the cache supports sqlite3 and postgresql databases, not "
                                 f"{database.adapter!r}")
        elif isinstance(database, str | os.PathLike):
            self.db = _open_database(Path(database), busy_timeout)
        else:
            self.db = database
        #: SQLite: statements on this thread's connection (see ``_get``); a server: through the pool.
        self._direct = self.db.dialect == "sqlite"
        if not self._direct:
            _server_driver_loaded()
            # The inlined SQLite read below saves a few Python calls; a server read is a round trip anyway.
            self._get = self._get_pooled  # type: ignore[method-assign]  # chosen per instance: the engine is known here
        self.queries = load_queries("solidstack.cache", self.db.dialect, self.db.paramstyle)
        self._read_sql = self.queries["read"]
        self._read_unversioned_sql = self.queries["read_unversioned"]
        self._lock_sql = self.queries.get("lock_key")
        self._bound_waits_sql = self.queries.get("bound_waits")
        lock_ms = max(1, round(busy_timeout * 1000))
        #: For ``bound_waits``: a lock wait as long as busy_timeout, a statement five times that.
        self._waits = {"lock_timeout": f"{lock_ms}ms", "statement_timeout": f"{5 * lock_ms}ms"}
        self._local = threading.local()
        self.retry_after = retry_after
        self._skip_until = 0.0
        self.expiry = Expiry(self, max_age=max_age, max_entries=max_entries, max_size=max_size,
                             batch_size=expiry_batch_size, method=expiry_method, samples=size_estimate_samples)

    def __repr__(self) -> str:
        where = getattr(self.db, "path", None) or self.db.label
        return f"DatabaseStore({str(where)!r}, namespace={self.namespace!r})"

    def migrate(self) -> list[str]:
        """Create or update the cache table in this database (what ``solidstack db migrate`` does for it)."""
        applied = migrate(self.db, package_migrations("solidstack.cache", self.db.dialect))
        self._recovered()
        return applied

    def close(self) -> None:
        """Stop the eviction thread and close this thread's connection (the last one to close checkpoints the
        WAL into the database file); the store reopens what it needs if used again."""
        self.expiry.stop()
        self._local = threading.local()
        self.db.close()

    # -- how one statement runs ------------------------------------------------------------------------------

    def _check_skip(self) -> None:
        if self._skip_until and time.monotonic() < self._skip_until:
            raise _Unavailable(f"skipped for {self.retry_after:g} s after a failure")

    def _connection(self) -> Any:
        """This thread's connection (SQLite), or the driver's statement runner outside a transaction (a server)."""
        self._check_skip()
        return self.db.connection()

    def _cursor(self) -> sqlite3.Cursor:
        """This thread's reusable cursor (rows as plain tuples): saves a cursor and a Row per read.

        Reads through it use ``fetchall`` so the statement always runs to its end and is reset: a statement
        left half-read would hold a read snapshot open on the connection.
        """
        conn = self._connection()
        local = self._local
        if getattr(local, "conn", None) is not conn:
            cursor = conn.cursor()
            cursor.row_factory = None
            local.conn, local.cursor = conn, cursor
        # The database's generation goes up when it drops its connections (a file replaced under it): _get
        # compares it instead of asking the database for this thread's connection on every read.
        local.generation = self.db._generation
        current: sqlite3.Cursor = local.cursor
        return current

    def _fetch(self, sql: str, params: dict[str, Any] | tuple[Any, ...] | None = None) -> list[Any]:
        """The rows of one statement run on its own, in autocommit: a read, or a write with ``RETURNING``."""
        rows: list[Any]
        if self._direct:
            rows = self._cursor().execute(sql, params or {}).fetchall()
        else:
            rows = self._connection().execute(sql, params or {}).fetchall()
        return rows

    def _run(self, sql: str, params: dict[str, Any] | None = None) -> int:
        """One write statement on its own, in autocommit (one round trip); returns the rows it changed.

        On SQLite a lone statement in autocommit takes the write lock at its first step (decision 0100); on
        PostgreSQL it is its own transaction.
        """
        changed: int = self._connection().execute(sql, params or {}).rowcount
        return changed

    def _fail(self, operation: str, exc: BaseException, key: bytes | None = None) -> None:
        if not isinstance(exc, _Unavailable):
            super()._fail(operation, exc, key)
            if self.retry_after and _slow_failure(exc):
                self._skip_until = time.monotonic() + self.retry_after

    def _recovered(self) -> None:
        self._skip_until = 0.0
        super()._recovered()

    # -- the backend ----------------------------------------------------------------------------------------

    def _get(self, key: bytes, version: str | None = None) -> Row | None:
        # The hottest path of the cache on SQLite: _cursor() and key_hash() inlined (a Python call costs ~60 ns).
        # Without a version the row's version is not fetched (no check reads it): each column costs the driver
        # a release and retake of the GIL. fetchone(): key_hash is unique, so there is at most one row, and the
        # driver steps past a row as it returns it; the statement is done and reset, no read snapshot stays open
        # (test_a_read_leaves_no_read_snapshot_open). Decision 0121.
        if self._skip_until and time.monotonic() < self._skip_until:
            raise _Unavailable(f"skipped for {self.retry_after:g} s after a failure")
        local = self._local
        cursor = local.cursor if getattr(local, "generation", -1) == self.db._generation else self._cursor()
        params = (_first_int64(_sha256(key).digest())[0],)
        sql = self._read_unversioned_sql if version is None else self._read_sql
        try:
            row = cursor.execute(sql, params).fetchone()
        except sqlite3.ProgrammingError:
            # Another store on the same file closed this thread's connection (the database object is shared):
            # take the thread's connection again, once.
            local.generation = -1
            row = self._cursor().execute(sql, params).fetchone()
        if row is None:
            return None
        if version is None:
            return (row[0], row[1], row[2], None)
        found: Row = row  # the statement's four columns (the driver's rows are untyped)
        return found

    def _get_pooled(self, key: bytes, version: str | None = None) -> Row | None:
        if version is not None:
            rows = self._fetch(self._read_sql, (key_hash(key),))
            found: Row | None = rows[0] if rows else None  # the statement's four columns
            return found
        rows = self._fetch(self._read_unversioned_sql, (key_hash(key),))
        return (rows[0][0], rows[0][1], rows[0][2], None) if rows else None

    def _get_many(self, keys: list[bytes]) -> list[Row]:
        hashes = self.db.array([key_hash(key) for key in keys])
        return list(self._fetch(self.queries["read_multi"], {"key_hashes": hashes}))

    def _params(self, row: Row, now: float) -> dict[str, Any]:
        key, value, expires_at, version = row
        return {"key": key, "value": value, "key_hash": key_hash(key), "created_at": now,
                "byte_size": len(key) + len(value) + ROW_OVERHEAD, "expires_at": expires_at, "version": version}

    def _put(self, row: Row) -> None:
        self._run(self.queries["write"], self._params(row, time.time()))
        self.expiry.written(1)

    def _put_many(self, rows: list[Row]) -> None:
        self._check_skip()
        now = time.time()
        sql = self.queries["write"]
        params = [self._params(row, now) for row in rows]
        with self.db.transaction() as conn:
            executemany = getattr(conn, "executemany", None)  # sqlite3's; one statement per row otherwise
            if executemany is not None:
                executemany(sql, params)
            else:
                for one in params:
                    conn.execute(sql, one)
        self.expiry.written(len(rows))

    def _remove_many(self, keys: list[bytes]) -> int:
        if len(keys) == 1:
            return self._run(self.queries["delete"], {"key_hash": key_hash(keys[0])})
        hashes = self.db.array([key_hash(key) for key in keys])
        return self._run(self.queries["delete_multi"], {"key_hashes": hashes})

    def _update(self, key: bytes, change: Callable[[Row | None], Row | None]) -> None:
        self._check_skip()
        hashed = key_hash(key)
        with self.db.transaction() as conn:
            if self._bound_waits_sql is not None:  # a server: the waits below end within busy_timeout
                conn.execute(self._bound_waits_sql, self._waits)
            if self._lock_sql is not None:  # a server: SQLite's BEGIN IMMEDIATE already serializes writers
                conn.execute(self._lock_sql, {"key_hash": hashed})
            rows = conn.execute(self.queries["read_for_update"], {"key_hash": hashed}).fetchall()
            new = change(rows[0] if rows else None)
            if new is not None:
                conn.execute(self.queries["write"], self._params(new, time.time()))
        self.expiry.written(1)

    def _increment_in_place(self, key: bytes, amount: int, expires_in: float | None) -> int | None:
        # Encrypted entries cannot be added to in SQL; amounts this large could overflow 64 bits there.
        if self.codec.encrypted or not _RETURNING or type(amount) is not int or abs(amount) >= 2**53:
            return None
        value = self.codec.dump(amount, key)
        now = time.time()
        params = {"key": key, "value": value, "key_hash": key_hash(key), "now": now, "amount": amount,
                  "byte_size": len(key) + len(value) + ROW_OVERHEAD, "expires_at": self._expiry(expires_in, None)}
        rows = self._fetch(self.queries["increment"], params)
        if not rows:
            return None
        self.expiry.written(1)
        return int(bytes(rows[0][0])[1:])

    def _clear(self) -> None:
        self._run(self.queries["clear"])

    def _usage(self) -> tuple[int, int, float | None, bool]:
        entries, size, estimated = self.expiry.estimate()
        oldest = self._fetch(self.queries["oldest"])
        return entries, size, (time.time() - oldest[0][0]) if oldest else None, estimated
