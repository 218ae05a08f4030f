"""The database store: Solid Cache's model on SQLite (PostgreSQL later, through the same named queries).

Speed comes from doing little per call: a read is one prepared statement outside any transaction (WAL readers
never wait for writers); a single write or delete is one statement, which SQLite runs as its own transaction
holding the write lock from its first step, so it cannot deadlock on a lock upgrade; statements are prepared
once per connection by sqlite3's statement cache. Eviction is counted, not checked: every
``expiry_batch_size / 2`` writes a background thread deletes at most ``expiry_batch_size`` of the oldest rows.

The cache opens its own connections to the file, through :class:`~solidstack.db.SQLiteDatabase`, with a busy
timeout of its own (``busy_timeout``, default 1 s): a cache that waits 5 s for a lock is worse than a miss.
After a failure the store skips the database for ``retry_after`` seconds, so a locked file costs one wait, not
one per request.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import DatabaseConfig
from ..db import DatabaseError, SQLiteDatabase, load_queries, migrate, package_migrations
from .expiry import Expiry
from .store import Row, Store

#: Bytes a row costs beyond its key and value (the row header and the key_hash index entry), as Solid Cache
#: estimates it.
ROW_OVERHEAD = 140
DEFAULT_MAX_AGE = 14 * 86400.0
#: UPSERT ... RETURNING (the one-statement increment) needs SQLite 3.35.
_RETURNING = sqlite3.sqlite_version_info >= (3, 35, 0)

_databases: dict[tuple[str, float], SQLiteDatabase] = {}
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


def key_hash(key: bytes, _sha256=hashlib.sha256, _from_bytes=int.from_bytes) -> int:
    """Solid Cache's key hash: the first 8 bytes of SHA-256, as a signed 64-bit integer."""
    return _from_bytes(_sha256(key).digest()[:8], "big", signed=True)


class _Unavailable(DatabaseError):
    """The store is skipping the database for a moment after a failure."""


def _slow_failure(exc: BaseException) -> bool:
    """A failure that cost a wait (a lock held elsewhere, a file that would not open): worth not repeating."""
    if isinstance(exc, DatabaseError):
        return True
    message = str(exc)
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in message or "busy" in message)


class DatabaseStore(Store):
    """A cache in a SQLite database file (the table ``solidstack_cache_entries``, created by
    ``solidstack db migrate`` or :meth:`migrate`).

    ``database`` is a file path, a :class:`~solidstack.config.DatabaseConfig`, or a
    :class:`~solidstack.db.SQLiteDatabase`. Limits: ``max_age`` (seconds since written, default two weeks),
    ``max_entries`` and ``max_size`` (bytes, estimated); ``None`` turns a limit off. ``expiry_method`` is
    ``"thread"`` (off the caller's path) or ``"inline"`` (bounded work on the writing call; for tests and
    scripts). Other options are those of :class:`~solidstack.cache.Store`.
    """

    blocking = True

    def __init__(self, database: str | os.PathLike[str] | DatabaseConfig | SQLiteDatabase, *,
                 max_age: float | None = DEFAULT_MAX_AGE, max_entries: int | None = None,
                 max_size: int | None = None, expiry_batch_size: int = 100, expiry_method: str = "thread",
                 size_estimate_samples: int = 1000, busy_timeout: float = 1.0, retry_after: float = 1.0,
                 **options: Any) -> None:
        super().__init__(**options)
        if isinstance(database, SQLiteDatabase):
            self.db = database
        elif isinstance(database, DatabaseConfig):
            if database.adapter not in ("sqlite3", "sqlite"):
                raise ValueError(f"{database.source}: the cache supports sqlite3 databases only for now")
            self.db = _open_database(Path(database.database), busy_timeout)
        else:
            self.db = _open_database(Path(database), busy_timeout)
        self.queries = load_queries("solidstack.cache", self.db.dialect, self.db.paramstyle)
        self._read_sql = self.queries["read"]
        self._local = threading.local()
        self.retry_after = retry_after
        self._skip_until = 0.0
        self.expiry = Expiry(self, max_age=max_age, max_entries=max_entries, max_size=max_size,
                             batch_size=expiry_batch_size, method=expiry_method, samples=size_estimate_samples)

    def __repr__(self) -> str:
        return f"DatabaseStore({str(self.db.path)!r}, namespace={self.namespace!r})"

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

    # -- the backend ----------------------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._skip_until and time.monotonic() < self._skip_until:
            raise _Unavailable(f"skipped for {self.retry_after:g} s after a failure")
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
        return local.cursor

    def _fail(self, operation: str, exc: BaseException, key: bytes | None = None) -> None:
        if not isinstance(exc, _Unavailable):
            super()._fail(operation, exc, key)
            if self.retry_after and _slow_failure(exc):
                self._skip_until = time.monotonic() + self.retry_after

    def _recovered(self) -> None:
        self._skip_until = 0.0
        super()._recovered()

    def _get(self, key: bytes, _sha256=hashlib.sha256, _from_bytes=int.from_bytes) -> Row | None:
        # The hottest path of the cache: _cursor() and key_hash() inlined (a Python call costs ~60 ns).
        if self._skip_until and time.monotonic() < self._skip_until:
            raise _Unavailable(f"skipped for {self.retry_after:g} s after a failure")
        conn = self.db.connection()
        local = self._local
        cursor = local.cursor if getattr(local, "conn", None) is conn else self._cursor()
        hashed = _from_bytes(_sha256(key).digest()[:8], "big", signed=True)
        rows = cursor.execute(self._read_sql, {"key_hash": hashed}).fetchall()
        return rows[0] if rows else None

    def _get_many(self, keys: list[bytes]) -> list[Row]:
        hashes = json.dumps([key_hash(key) for key in keys])
        return self._cursor().execute(self.queries["read_multi"], {"key_hashes": hashes}).fetchall()

    def _params(self, row: Row, now: float) -> dict[str, Any]:
        key, value, expires_at, version = row
        return {"key": key, "value": value, "key_hash": key_hash(key), "created_at": now,
                "byte_size": len(key) + len(value) + ROW_OVERHEAD, "expires_at": expires_at, "version": version}

    def _put(self, row: Row) -> None:
        self._cursor().execute(self.queries["write"], self._params(row, time.time()))
        self.expiry.written(1)

    def _put_many(self, rows: list[Row]) -> None:
        self._connection()
        now = time.time()
        with self.db.transaction() as conn:
            conn.executemany(self.queries["write"], [self._params(row, now) for row in rows])
        self.expiry.written(len(rows))

    def _remove_many(self, keys: list[bytes]) -> int:
        conn = self._connection()
        if len(keys) == 1:
            return conn.execute(self.queries["delete"], {"key_hash": key_hash(keys[0])}).rowcount
        hashes = json.dumps([key_hash(key) for key in keys])
        return conn.execute(self.queries["delete_multi"], {"key_hashes": hashes}).rowcount

    def _update(self, key: bytes, change: Callable[[Row | None], Row | None]) -> None:
        cursor = self._cursor()
        with self.db.transaction():
            rows = cursor.execute(self._read_sql, {"key_hash": key_hash(key)}).fetchall()
            new = change(rows[0] if rows else None)
            if new is not None:
                cursor.execute(self.queries["write"], self._params(new, time.time()))
        self.expiry.written(1)

    def _increment_in_place(self, key: bytes, amount: int, expires_in: float | None) -> int | None:
        # Encrypted entries cannot be added to in SQL; amounts this large could overflow 64 bits there.
        if self.codec.encrypted or not _RETURNING or type(amount) is not int or abs(amount) >= 2**53:
            return None
        value = self.codec.dump(amount, key)
        now = time.time()
        rows = self._cursor().execute(self.queries["increment"], {
            "key": key, "value": value, "key_hash": key_hash(key), "byte_size": len(key) + len(value) + ROW_OVERHEAD,
            "now": now, "expires_at": self._expiry(expires_in, None), "amount": amount,
        }).fetchall()
        if not rows:
            return None
        self.expiry.written(1)
        return int(rows[0][0][1:])

    def _clear(self) -> None:
        self._connection().execute(self.queries["clear"])

    def _usage(self) -> tuple[int, int, float | None, bool]:
        conn = self._connection()
        entries, size, estimated = self.expiry.estimate(conn)
        oldest = conn.execute(self.queries["oldest"]).fetchone()
        return entries, size, (time.time() - oldest[0]) if oldest else None, estimated
