"""SQLite connection discipline: the only module that opens a SQLite connection.

One connection per thread, reopened after ``fork`` (a connection must never cross a fork), autocommit mode
(``isolation_level=None``) with an explicit ``BEGIN IMMEDIATE`` for every write transaction so that a writer
takes the write lock up front instead of failing on upgrade, WAL, and a bounded retry when the busy handler
gives up. "database is locked" is the most reported failure of Solid Queue on SQLite; it must not reach a user.

Writers queue in the kernel: each write transaction holds an exclusive ``flock`` on a side file
(``<database>-writer.lock``) from ``BEGIN IMMEDIATE`` to ``COMMIT``. SQLite's busy handler sleeps and retries,
so under steady contention one writer can wait a second while others commit again and again; a waiter on a
``flock`` is woken the moment the holder releases it. SQLite's own locking stays underneath, for writers that
do not use this module (the ``sqlite3`` shell, another program); a lock held there is waited for at most the
database's ``timeout`` in all, then reported (``sqlite_errors.locked_error``).

Every commit first checks that the path still names the file this connection has open: a database file deleted
or replaced under running processes would otherwise take their writes into a file nobody reads again.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from . import sqlite_checkpoint as checkpointer
from . import sqlite_lock
from .errors import DatabaseError
from .sqlite_errors import file_identity, locked_error, moved_error, translate
from .sqlite_lock import lock_path_for

log = logging.getLogger("solidstack.db")

#: Applied to every new connection, in this order. ``journal_mode`` is persistent in the file; the rest are
#: per connection.
PRAGMAS: dict[str, str | int] = {
    "journal_mode": "wal",
    "synchronous": "normal",
    "foreign_keys": "on",
    "temp_store": "memory",
    "cache_size": -16000,  # 16 MiB
    # A backstop only: the checkpointer thread below keeps the WAL short. SQLite's automatic checkpoint runs
    # inside the COMMIT of whichever writer crosses the threshold and made that writer wait several ms (the
    # p99 of enqueue-to-start latency was 5-8 ms with it, 1.5 ms without; benchmarks/queue).
    "wal_autocheckpoint": 10000,
    # When SQLite restarts the WAL from its start, it cuts the file back to this size (else it keeps its
    # largest size for good). The checkpointer below truncates it sooner; this is SQLite's own backstop.
    "journal_size_limit": 64 * 2**20,
}

_UNKNOWN = object()

# Connections opened before a fork belong to the parent. Closing them in the child could checkpoint or
# unlink the parent's WAL (sqlite.org/howtocorrupt.html §2.6), so the child keeps them referenced, untouched.
_abandoned: list[sqlite3.Connection] = []
# Every database object of this process, for the fork hook; weak, so a database nobody uses is closed.
_all_databases: weakref.WeakSet[SQLiteDatabase] = weakref.WeakSet()
_registry_lock = threading.Lock()


class _Closer:
    """Closes a thread's connection when the thread ends or its database object is dropped.

    Stored beside the connection in the thread's local storage. Never in a forked child: there the connection
    is the parent's, and closing it could checkpoint or unlink the parent's WAL, so it is kept, untouched.
    """

    __slots__ = ("conn", "pid")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.pid = os.getpid()

    def __del__(self) -> None:
        try:  # also runs at interpreter exit, when module globals may already be gone
            if self.pid != os.getpid():
                _abandoned.append(self.conn)
            else:
                self.conn.close()
        except Exception:
            pass


def _after_fork_in_child() -> None:
    global _registry_lock
    # Another thread of the parent may have held it at the fork; nobody in the child ever will.
    _registry_lock = threading.Lock()
    for db in list(_all_databases):
        db._forget_connections()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _is_busy(exc: BaseException) -> bool:
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    message = str(exc)
    return "database is locked" in message or "database is busy" in message


class SQLiteDatabase:
    """A SQLite database file, with a connection per thread.

    Use :meth:`transaction` for every write (it starts with ``BEGIN IMMEDIATE``) and :meth:`query` /
    :meth:`query_one` for reads outside a transaction.
    """

    dialect = "sqlite"
    #: SQLite placeholders are written ``:name`` in the ``.sql`` files, which sqlite3 accepts as is.
    paramstyle = "named"

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 5.0, name: str = "",
                 writer_lock: bool = True) -> None:
        """``writer_lock=False``: writers wait only in SQLite's busy handler, bounded by ``busy_timeout``
        (the cache wants every wait bounded; the kernel queue below has no timeout)."""
        self.path = Path(path)
        self.name = name or self.path.stem
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._generation = 0
        #: Write transactions committed through this object in this process (for benchmarks: commits per job).
        self.commits = 0
        #: Committed since the checkpointer's last round.
        self._written = False
        #: Written since the checkpointer last looked at the WAL's size.
        self._wal_to_trim = False
        #: When a list, each write transaction appends how long it waited for the write lock, in seconds.
        self.write_waits: list[float] | None = None
        #: The kernel queue of this file's writers (``sqlite_lock``); None: SQLite's busy handler alone.
        self.lock_path: Path | None = lock_path_for(self.path) if writer_lock else None
        with _registry_lock:
            _all_databases.add(self)

    def __repr__(self) -> str:
        return f"SQLiteDatabase({str(self.path)!r})"

    @property
    def label(self) -> str:
        """How errors name this database."""
        return f"{self.name} database {self.path}"

    @property
    def location(self) -> str:
        return str(self.path)

    def create_if_missing(self) -> bool:
        """Create the file's folder (SQLite creates the file itself on first connect)."""
        if self.path.parent.is_dir():
            return False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseError(f"cannot create the folder of the {self.label}: {exc}") from exc
        return True

    def statement(self, sql: str) -> str:
        """Literal SQL written with ``:name`` (or ``?``) placeholders: sqlite3 takes it as it is."""
        return sql

    # -- connections ---------------------------------------------------------------------------------------

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        local = self._local
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is not None and local.generation == self._generation:
            return conn
        conn, local.identity = self._open_checked()
        local.conn = conn
        local.closer = _Closer(conn)
        local.generation = self._generation
        local.depth = 0
        return conn

    def _open_checked(self) -> tuple[sqlite3.Connection, tuple[int, int] | None]:
        """A new connection and the (device, inode) of the file it has open, for the check at each commit.

        The path is looked at before and after opening: if it named another file in between (replaced at that
        very moment), the connection is opened again.
        """
        for _ in range(3):
            before = file_identity(self.path)
            conn = self._open()
            after = file_identity(self.path)
            if before is None or before == after:
                return conn, after
            conn.close()
        return conn, after

    def _open(self) -> sqlite3.Connection:
        if not self.path.parent.is_dir():
            raise DatabaseError(
                f"cannot open the {self.label}: directory {self.path.parent} does not exist "
                "(run `solidstack db migrate`, or create it)"
            )
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout,
                isolation_level=None,
                check_same_thread=False,
                cached_statements=256,
            )
        except sqlite3.Error as exc:
            raise self._translate(exc) or DatabaseError(f"cannot open the {self.label}: {exc}") from exc
        conn.row_factory = sqlite3.Row
        try:
            for key, value in PRAGMAS.items():
                self._with_busy_retry(lambda k=key, v=value: conn.execute(f"PRAGMA {k}={v}"), translated=False)
        except sqlite3.DatabaseError as exc:  # also "file is not a database", which is no OperationalError
            if "readonly" not in str(exc):
                conn.close()
                raise self._translate(exc) or DatabaseError(f"cannot open the {self.label}: {exc}") from exc
            # A read-only file can still be read; writes will report it clearly.
        except DatabaseError:
            conn.close()
            raise
        return conn

    def _forget_connections(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            _abandoned.append(conn)
        self._local = threading.local()
        self._generation += 1

    def checkpoint(self) -> None:
        """Copy the WAL back into the database without blocking readers or writers (``PASSIVE``)."""
        checkpointer.checkpoint(self)

    def close(self) -> None:
        """Close this thread's connection and writer-lock file (other threads' close when the thread ends)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            self._local.conn = self._local.closer = None
            conn.close()
        if self.lock_path is not None:
            sqlite_lock.close(self.lock_path)

    # -- the writer lock -------------------------------------------------------------------------------------

    def _lock_writers(self) -> str | None:
        """Wait in the kernel for the writer lock of this file; returns the key to unlock with, or None."""
        if self.lock_path is None:
            return None
        try:
            return sqlite_lock.acquire(self.lock_path)
        except sqlite_lock.LockFileUnavailable as exc:
            log.debug("%s: no writer lock file (%s); SQLite's busy handler only", self.label, exc)
            self.lock_path = None
            return None

    def _unlock_writers(self, key: str | None) -> None:
        if key is not None:
            sqlite_lock.release(key)

    # -- transactions and queries ----------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``); nested calls join the outer one."""
        conn = self.connection()
        local = self._local
        if local.depth:
            local.depth += 1
            try:
                yield conn
            finally:
                local.depth -= 1
            return
        asked = time.monotonic()
        key = self._lock_writers()
        try:
            self._begin(conn, asked)
            if self.write_waits is not None:
                self.write_waits.append(time.monotonic() - asked)
            local.depth = 1
            local.after_commit = []
            try:
                yield conn
            except BaseException as exc:
                local.depth = 0
                local.after_commit = []
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                clear = self._translate(exc)
                if clear is not None:
                    raise clear from exc
                raise
            local.depth = 0
            try:
                self._check_file(conn)
                self._with_busy_retry(lambda: conn.execute("COMMIT"))
                self.commits += 1
                if not self._written:
                    self._written = True
                    checkpointer.ensure_started(lambda: list(_all_databases))
            except BaseException:
                local.after_commit = []
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        finally:
            self._unlock_writers(key)
        callbacks, local.after_commit = local.after_commit, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("%s: an after-commit callback failed", self.label)

    def _begin(self, conn: sqlite3.Connection, asked: float) -> None:
        """``BEGIN IMMEDIATE``, waiting for SQLite's write lock at most ``busy_timeout`` since ``asked`` in all.

        Without a total, each retry after the busy handler gave up waited the whole timeout again (45 s behind
        a program holding the lock). Time spent in the kernel queue counts: after a long wait there, SQLite's
        busy handler gets only what is left.
        """
        deadline = asked + self.busy_timeout
        left = deadline - time.monotonic()
        if left <= 0:
            raise locked_error(self.label, time.monotonic() - asked, self.busy_timeout)
        shortened = left < self.busy_timeout - 0.01
        if shortened:
            conn.execute(f"PRAGMA busy_timeout={max(1, int(left * 1000))}")
        try:
            self._with_busy_retry(lambda: conn.execute("BEGIN IMMEDIATE"), deadline=deadline, started=asked)
        finally:
            if shortened:
                conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")

    def _check_file(self, conn: sqlite3.Connection) -> None:
        """Refuse to commit when the path no longer names the file this connection has open.

        One ``stat`` per commit (about a microsecond against the tens a commit costs: decision 0011). On a
        mismatch the transaction is rolled back and this thread's connection dropped, so the next use opens
        whatever the path holds now; SQLite does not checkpoint or delete the WAL of a moved file on close.
        """
        opened = getattr(self._local, "identity", _UNKNOWN)
        now = file_identity(self.path)
        if now == opened or opened is _UNKNOWN:
            return
        conn.execute("ROLLBACK")
        self._local.generation = -1  # reopened on next use; the old connection is closed when replaced
        raise moved_error(self.label, now)

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once this thread's current write transaction commits (now, outside one).

        For announcing a change to other processes: announced before the outermost commit, it would not be
        visible to them yet. Dropped when the transaction rolls back.
        """
        if self.in_transaction():
            if callback not in self._local.after_commit:  # announced once, however many changes it covers
                self._local.after_commit.append(callback)
        else:
            callback()

    def in_transaction(self) -> bool:
        return bool(getattr(self._local, "depth", 0))

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        conn = self.connection()
        rows: list[sqlite3.Row] = self._with_busy_retry(lambda: conn.execute(sql, params).fetchall())
        return rows

    def query_one(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Row | None:
        conn = self.connection()
        row: sqlite3.Row | None = self._with_busy_retry(lambda: conn.execute(sql, params).fetchone())
        return row

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
        """Run one write statement in its own transaction (or the current one); returns the rows changed."""
        with self.transaction() as conn:
            return conn.execute(sql, params).rowcount

    def run_script(self, conn: sqlite3.Connection, script: str) -> None:
        """Run a multi-statement script inside the caller's transaction (``executescript`` would commit)."""
        for statement in split_statements(script):
            conn.execute(statement)

    def array(self, values: Sequence[Any]) -> str:
        """A list parameter for ``IN (SELECT value FROM json_each(:ids))`` in this dialect's ``.sql`` files."""
        if all(type(value) is int for value in values):  # ids, the common case: half of json.dumps' time
            return f"[{','.join(map(str, values))}]"
        return json.dumps(list(values))

    def insert_many(self, conn: sqlite3.Connection, sql: str,
                    rows: Sequence[Sequence[Any] | dict[str, Any]]) -> list[int]:
        """Insert ``rows`` with one statement, in the caller's transaction; returns their new ids in order.

        ``sql`` has no ``RETURNING`` (PostgreSQL's has: its driver reads the ids from it). Under
        ``BEGIN IMMEDIATE`` this connection is the only writer, and SQLite gives a table without
        AUTOINCREMENT the ids max+1, max+2, ...: consecutive ids ending at ``last_insert_rowid()``.
        """
        if len(rows) == 1:
            return [conn.execute(sql, rows[0]).lastrowid or 0]
        conn.executemany(sql, rows)
        last = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
        return list(range(last - len(rows) + 1, last + 1))

    def _with_busy_retry(self, fn, *, deadline: float | None = None, started: float | None = None,  # type: ignore[no-untyped-def]
                         translated: bool = True):
        """Run ``fn``; when SQLite reports busy after its own busy handler, back off and retry until
        ``deadline`` (default: ``busy_timeout`` from now), then raise a clear error. Other failures a user can
        act on become :class:`DatabaseError` naming the database (unless ``translated`` is false)."""
        started = time.monotonic() if started is None else started
        deadline = started + self.busy_timeout if deadline is None else deadline
        delay = 0.005
        while True:
            try:
                return fn()
            except sqlite3.DatabaseError as exc:
                if _is_busy(exc):
                    now = time.monotonic()
                    if now + delay < deadline:
                        log.debug("%s busy (%s); retrying", self.label, exc)
                        time.sleep(delay * (1 + random.random()))
                        delay = min(delay * 2, 0.5)
                        continue
                    raise locked_error(self.label, now - started, self.busy_timeout) from exc
                clear = self._translate(exc) if translated else None
                if clear is not None:
                    raise clear from exc
                raise

    def _translate(self, exc: BaseException) -> DatabaseError | None:
        """A clear error for the SQLite failures a user can act on (``sqlite_errors.translate``)."""
        return translate(exc, self.label, self.path)


def split_statements(script: str) -> list[str]:
    """Split SQL text into complete statements, using SQLite's own tokenizer to find where each ends."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statement = buffer.strip()
            if statement.strip(";").strip():
                statements.append(statement)
            buffer = ""
    rest = buffer.strip()
    if rest and not all(part.strip().startswith("--") or not part.strip() for part in rest.splitlines()):
        statements.append(rest)
    return statements
