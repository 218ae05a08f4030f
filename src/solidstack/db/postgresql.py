"""PostgreSQL connection discipline: the only module that opens a pooled PostgreSQL connection.

psycopg 3 with a ``psycopg_pool.ConnectionPool`` per database and process, opened on first use. A write
transaction checks a connection out of the pool and keeps it, on its thread, until the outermost ``COMMIT``
(nested transactions join it); a read outside a transaction checks one out for that statement only, in
autocommit. The pool is re-created after ``fork``: a child never touches its parent's connections (closing one
would send the server a Terminate on the parent's socket), it keeps them referenced, untouched.

Every psycopg error a user can fix (wrong host, port, password or database name, a server that is down, a
database not migrated, a role without rights) is translated here, in :meth:`PostgreSQLDatabase.translate`, into
one :class:`~.errors.DatabaseError` that names the ``database.yml`` entry and what to do.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
import psycopg_pool
from psycopg import errors as pgerrors
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.array import ListBinaryDumper

from .errors import DatabaseError, DatabaseUnavailable
from .pgerrors import connect_failure, first_line, translate
from .pgrows import Connection, Reader, Result, Row, has_rows, row_factory
from .queries import to_pyformat

__all__ = ["Connection", "PostgreSQLDatabase", "Row", "row_factory"]

log = logging.getLogger("solidstack.db")
# The pool logs a warning for each dead connection it discards: after a server restart, one per connection and
# process. The lost connection is reported once, by whoever used it (one line naming the entry).
logging.getLogger("psycopg.pool").setLevel(logging.ERROR)

#: A pooled connection idle for longer than this is checked (an empty query) before it is handed out; a busy
#: one is not, so the hot path pays no extra round trip. A connection that broke while in use is discarded by
#: the pool when it comes back.
CHECK_IDLE_AFTER = 2.0

# Pools and listener connections of a parent process, kept referenced in a forked child so that nothing in the
# child closes them (see the module's docstring).
_abandoned: list[Any] = []
_all_databases: weakref.WeakSet[PostgreSQLDatabase] = weakref.WeakSet()


def _readable(fd: int) -> bool:
    """Whether the socket ``fd`` has something to read (or has reached its end) right now, without waiting."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class _TextList(list):  # type: ignore[type-arg]
    """A list of ``str`` sent as a binary ``text[]`` parameter (:meth:`PostgreSQLDatabase.array`).

    psycopg's text format quotes each element through a regular expression: 37 µs a job for a bulk enqueue's
    arrays of JSON arguments (a third of its time), against under 1 µs in binary (decision 0057).
    """


psycopg.adapters.register_dumper(_TextList, ListBinaryDumper)


class _State(threading.local):
    """This thread's transaction: its connection, depth and what to do after the commit."""

    def __init__(self) -> None:
        self.conn: Connection | None = None
        self.depth = 0
        self.after_commit: list[Callable[[], None]] = []
        #: NOTIFYs of this transaction, in order, sent in one message with its COMMIT.
        self.notified: dict[tuple[str, str], None] = {}


class PostgreSQLDatabase:
    """A PostgreSQL database, through a pool of connections opened on first use."""

    dialect = "postgresql"
    #: The ``.sql`` files' ``:name`` placeholders are converted once, when loaded, to psycopg's ``%(name)s``.
    paramstyle = "pyformat"

    def __init__(self, conninfo: str = "", *, name: str = "", source: str = "", pool_size: int = 5,
                 listen: bool = True, prepared_statements: bool = True, connect_timeout: float = 5.0,
                 checkout_timeout: float = 30.0, **params: Any) -> None:
        """``conninfo``: a ``postgresql://`` URL or ``key=value`` string; ``params`` add or override its
        parts (``host``, ``port``, ``dbname``, ``user``, ``password`` ...)."""
        params = {k: v for k, v in params.items() if v not in (None, "")}
        params.setdefault("connect_timeout", max(1, round(connect_timeout)))
        self.conninfo = make_conninfo(conninfo, **params)
        self.params = conninfo_to_dict(self.conninfo)
        self.name = name or str(self.params.get("dbname", "postgresql"))
        self.source = source
        self.pool_size = max(2, pool_size)
        self.listen = listen
        self.prepare_threshold: int | None = 5 if prepared_statements else None
        self.checkout_timeout = checkout_timeout
        self.commits = 0
        self._lock = threading.Lock()
        self._pool: psycopg_pool.ConnectionPool[Any] | None = None
        self._state = _State()
        self._pid = os.getpid()
        self._used: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
        #: Per-process objects other modules hang here (the listener of db/pglisten.py), reset after a fork.
        self.extras: dict[str, Any] = {}
        _all_databases.add(self)

    def __repr__(self) -> str:
        return f"PostgreSQLDatabase({self.location!r})"

    @property
    def location(self) -> str:
        """``postgresql://user@host:port/dbname``, never with the password."""
        p = self.params
        user = f"{p['user']}@" if p.get("user") else ""
        return f"postgresql://{user}{p.get('host', 'localhost')}:{p.get('port', 5432)}/{p.get('dbname', '')}"

    @property
    def label(self) -> str:
        return f"{self.name} database {self.location}"

    def _where(self) -> str:
        return f" ({self.source})" if self.source else ""

    # -- connections ---------------------------------------------------------------------------------------

    def _check_fork(self) -> None:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._forget()

    def _forget(self) -> None:
        """In a forked child: drop the parent's pool and listener without closing them."""
        if self._pool is not None:
            _abandoned.append(self._pool)
        self._pool = None
        _abandoned.append(self.extras)
        self.extras = {}
        self._state = _State()
        self._used = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def connect_raw(self, *, autocommit: bool = True, **overrides: Any) -> psycopg.Connection[Any]:
        """A connection of its own, outside the pool (the listener's, a migration's maintenance work)."""
        try:
            return psycopg.connect(make_conninfo(self.conninfo, **overrides), autocommit=autocommit,
                                   row_factory=row_factory)
        except psycopg.Error as exc:
            raise self.translate(exc) from exc

    def _get_pool(self) -> psycopg_pool.ConnectionPool[Any]:
        self._check_fork()
        pool = self._pool
        if pool is not None:
            return pool
        with self._lock:
            if self._pool is None:
                # Connect once directly first: the pool retries a failing connection in the background and
                # reports only a timeout, while this gives the server's own reason at once.
                self.connect_raw().close()
                pool = psycopg_pool.ConnectionPool(
                    self.conninfo, min_size=1, max_size=self.pool_size, open=False, name=f"solidstack-{self.name}",
                    kwargs={"autocommit": True, "row_factory": row_factory,
                            "prepare_threshold": self.prepare_threshold},
                    check=self._check_connection, timeout=self.checkout_timeout, reconnect_timeout=60.0,
                )
                pool.open(wait=False)
                self._pool = pool
            return self._pool

    def _check_connection(self, conn: psycopg.Connection[Any]) -> None:
        """Run by the pool at each checkout. A connection that sat idle longer than ``CHECK_IDLE_AFTER`` gets a
        round trip; any other is checked for free: an idle connection's socket has nothing to read unless the
        server has closed it (a restart, ``pg_terminate_backend`` send a FATAL message, then end the stream) or
        sent a notice, and either way a round trip tells. A write sent once (``write_once``: the enqueue) then
        starts on a live connection instead of failing on one that died in the pool (decision 0065)."""
        if conn.broken or conn.closed:
            raise psycopg.OperationalError("connection is broken")
        if time.monotonic() - self._used.get(conn, 0.0) > CHECK_IDLE_AFTER or _readable(conn.pgconn.socket):
            psycopg_pool.ConnectionPool.check_connection(conn)

    def _checkout(self) -> psycopg.Connection[Any]:
        pool = self._get_pool()
        try:
            return pool.getconn()
        except psycopg_pool.PoolTimeout as exc:
            raise self._pool_timeout(exc) from exc

    def _checkin(self, raw: psycopg.Connection[Any]) -> None:
        self._used[raw] = time.monotonic()
        pool = self._pool
        if pool is None or self._pid != os.getpid():
            return
        try:
            pool.putconn(raw)
        except Exception:  # a pool closed meanwhile (close(), configure())
            with suppress(Exception):
                raw.close()

    def _pool_timeout(self, exc: BaseException) -> DatabaseError:
        """No connection came out of the pool in time: the server's reason when it refuses, else the pool's size."""
        try:
            self.connect_raw().close()
        except DatabaseError as clear:
            return clear
        return DatabaseUnavailable(
            f"no free connection to the {self.label} after {self.checkout_timeout:g} s (pool: {self.pool_size}): "
            f"raise `pool:` in its database.yml entry{self._where()}"
        )

    def create_if_missing(self) -> bool:
        """Create the database on its server when it does not exist and the role may (``rails db:prepare``)."""
        try:
            psycopg.connect(self.conninfo, autocommit=True).close()
            return False
        except psycopg.Error as exc:
            if connect_failure(exc) != "no database":
                raise self.translate(exc) from exc
        dbname = str(self.params.get("dbname", ""))
        try:
            with psycopg.connect(make_conninfo(self.conninfo, dbname="postgres"), autocommit=True) as admin:
                admin.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(dbname)))
        except pgerrors.DuplicateDatabase:  # another migrator created it first
            return False
        except pgerrors.InsufficientPrivilege as exc:
            raise DatabaseError(
                f"the {self.label} does not exist and the role {self.params.get('user', '')!r} may not create "
                f"it: create it (CREATE DATABASE {dbname}) or give the role CREATEDB{self._where()}"
            ) from exc
        except psycopg.Error as exc:
            raise DatabaseError(f"cannot create the {self.label}: {first_line(exc)}{self._where()}") from exc
        log.info("created the %s", self.label)
        return True

    def close(self) -> None:
        """Close the pool (its connections); the next use opens a new one."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None and self._pid == os.getpid():
            pool.close(timeout=1.0)
        for extra in list(self.extras.values()):
            closer = getattr(extra, "close", None)
            if closer is not None:
                with suppress(Exception):
                    closer()
        self.extras.clear()

    # -- transactions and queries ----------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction (``BEGIN`` ... ``COMMIT``) on one pooled connection; nested calls join it. Every
        commit waits for the WAL flush (decision 0066)."""
        self._check_fork()
        state = self._state
        if state.depth:
            state.depth += 1
            try:
                yield state.conn  # type: ignore[misc]
            finally:
                state.depth -= 1
            return
        raw = self._begin()
        conn = Connection(raw)
        try:
            state.conn, state.depth, state.after_commit, state.notified = conn, 1, [], {}
            try:
                yield conn
            except BaseException as exc:
                self._reset(state)
                with suppress(psycopg.Error):
                    if not raw.broken:
                        raw.execute("ROLLBACK")
                if isinstance(exc, psycopg.Error):
                    raise self.translate(exc) from exc
                raise
            notified = state.notified
            self._reset(state)
            try:
                if notified:
                    # One round trip for the NOTIFYs and the COMMIT (a simple query of several statements, in
                    # the open transaction: delivered at this commit, never without it).
                    raw.execute(b"".join(_notify_statement(raw, channel, payload) for channel, payload in notified)
                                + b"COMMIT", prepare=False)
                else:
                    raw.execute("COMMIT")
            except psycopg.Error as exc:
                state.after_commit = []
                raise self.translate(exc) from exc
            self.commits += 1
        finally:
            state.conn = None
            self._checkin(raw)
        callbacks, state.after_commit = state.after_commit, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("%s: an after-commit callback failed", self.label)

    def _begin(self) -> psycopg.Connection[Any]:
        """A pooled connection with a transaction begun. A connection the server dropped while it sat in the
        pool (a restart, ``pg_terminate_backend``) fails right here, before anything was done on it: it goes
        back to the pool, which discards it, and the next one is tried."""
        for attempt in range(self.pool_size + 1):
            raw = self._checkout()
            try:
                raw.execute(b"BEGIN", prepare=False)
                return raw
            except psycopg.Error as exc:
                broken = raw.broken
                self._checkin(raw)
                if not broken or attempt == self.pool_size:
                    raise self.translate(exc) from exc
        raise AssertionError("unreachable")

    @staticmethod
    def _reset(state: _State) -> None:
        state.depth = 0
        state.notified = {}

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once this thread's current transaction commits (now, outside one)."""
        if self.in_transaction():
            if callback not in self._state.after_commit:
                self._state.after_commit.append(callback)
        else:
            callback()

    def in_transaction(self) -> bool:
        self._check_fork()
        return bool(self._state.depth)

    def notify(self, channel: str, payload: str = "") -> None:
        """``NOTIFY channel`` inside this thread's transaction (delivered at its commit, never on rollback);
        once per transaction, however many changes it announces. Outside a transaction, at once."""
        if self.in_transaction():
            self._state.notified[(channel, payload)] = None  # sent with the COMMIT
        else:
            self._autocommit("SELECT pg_notify(%s, %s)", (channel, payload))

    def connection(self) -> Connection | Reader:
        """This thread's transaction's connection, or a reader that runs each statement in autocommit."""
        self._check_fork()
        state = self._state
        if state.depth and state.conn is not None:
            return state.conn
        return Reader(self)

    def _autocommit(self, sql: str, params: Any, *, resend: bool = True) -> Result:
        """``sql`` on its own in autocommit (in this thread's transaction when one is open). ``resend``: when the
        connection turns out broken, run it again on the next one — for reads and NOTIFYs only (``query``,
        ``query_one``, ``notify``). What :meth:`connection` hands out runs writes too (the cache's upserts and
        increments, cable's broadcast): those are sent once, since the lost connection may have lost only the
        answer of a statement that committed (decision 0065); a connection the server closed while it sat in the
        pool is replaced at checkout before anything is sent."""
        state = self._state
        if state.depth and state.conn is not None:
            cursor = state.conn.execute(sql, params)
            return Result(cursor.fetchall() if has_rows(cursor) else [], cursor.rowcount)
        for attempt in range(self.pool_size + 1):
            raw = self._checkout()
            try:
                cursor = raw.execute(sql, params or None)
                return Result(cursor.fetchall() if has_rows(cursor) else [], cursor.rowcount)
            except psycopg.Error as exc:
                # A connection dropped while pooled that the checkout's check did not catch: run the statement
                # on the next one (a read or a NOTIFY, safe to repeat).
                if not resend or not raw.broken or attempt == self.pool_size:
                    raise self.translate(exc) from exc
            finally:
                self._checkin(raw)
        raise AssertionError("unreachable")

    def write_once(self, sql: str, params: Any = None) -> list[Row]:
        """One write statement as its own transaction (autocommit: one round trip), its rows; in this thread's
        transaction when one is open. Sent once, never repeated on another connection: a lost connection raises
        :class:`DatabaseUnavailable` whether or not the statement committed, and the caller finds out."""
        state = self._state
        if state.depth and state.conn is not None:
            return state.conn.execute(sql, params).fetchall()
        raw = self._checkout()
        try:
            cursor = raw.execute(sql, params or None)
            return cursor.fetchall() if has_rows(cursor) else []
        except psycopg.Error as exc:
            raise self.translate(exc) from exc
        finally:
            self._checkin(raw)

    def query(self, sql: str, params: Any = None) -> list[Row]:
        return self._autocommit(sql, params).fetchall()

    def query_one(self, sql: str, params: Any = None) -> Row | None:
        return self._autocommit(sql, params).fetchone()

    def execute(self, sql: str, params: Any = None) -> int:
        """One write statement in its own transaction (or the current one); returns the rows changed."""
        with self.transaction() as conn:
            return conn.execute(sql, params).rowcount

    def run_script(self, conn: Connection, script: str) -> None:
        """A multi-statement script (no parameters) inside the caller's transaction."""
        if not any(line.strip() and not line.strip().startswith("--") for line in script.splitlines()):
            return  # only comments: a migration kept for its version's sake
        conn.raw.execute(script.encode(), prepare=False)  # type: ignore[call-overload]

    def array(self, values: Sequence[Any]) -> list[Any]:
        """A list parameter, for ``= ANY(:ids)`` in the PostgreSQL ``.sql`` files; strings go in binary."""
        if values and all(type(value) is str for value in values):
            return _TextList(values)
        return list(values)

    def insert_many(self, conn: Connection, sql: str, rows: Sequence[Any]) -> list[int]:
        """Insert ``rows`` (``sql`` ends in ``RETURNING id``) in the caller's transaction; ids in order."""
        if len(rows) == 1:
            return [conn.execute(sql, rows[0]).fetchone()[0]]
        ids: list[int] = []
        with conn.raw.cursor() as cursor:
            cursor.executemany(sql, rows, returning=True)
            while True:
                ids.append(cursor.fetchone()[0])  # type: ignore[index]
                if not cursor.nextset():
                    break
        return ids

    def statement(self, sql: str) -> str:
        """Literal SQL written with ``:name`` (or ``?``) placeholders, as psycopg wants it."""
        return to_pyformat(sql)

    # -- errors ----------------------------------------------------------------------------------------------

    def translate(self, exc: BaseException) -> BaseException:
        """One clear :class:`DatabaseError` for what a user can fix or wait out; other errors as they are."""
        if isinstance(exc, psycopg_pool.PoolTimeout):
            return self._pool_timeout(exc)
        user = self.params.get("user") or os.environ.get("PGUSER") or "the current user"
        return translate(exc, label=self.label, source=self.source, user=str(user))


def _notify_statement(raw: psycopg.Connection[Any], channel: str, payload: str) -> bytes:
    statement = psycopg.sql.SQL("NOTIFY {}, {}; ").format(psycopg.sql.Identifier(channel),
                                                         psycopg.sql.Literal(payload))
    return statement.as_bytes(raw)


def _after_fork_in_child() -> None:
    for db in list(_all_databases):
        db._forget()


os.register_at_fork(after_in_child=_after_fork_in_child)
