"""PostgreSQL wake-ups: one ``LISTEN`` connection per database and process, outside the pool.

A writer sends ``NOTIFY`` inside its transaction (:meth:`PostgreSQLDatabase.notify`): the server delivers it at
commit, never on rollback, and folds duplicates of one transaction into one. A process's :class:`Listener` owns
one connection of its own, in a thread that blocks in ``poll`` on the connection's socket (no CPU, no query while
idle) and hands each notification to the :class:`Subscription` objects waiting on its channel. Roles wait on a
subscription exactly as they wait on a SQLite wake-up socket: ``wait(timeout)``, ``wake()``, ``close()``.

Everything here is best effort, with polling as the floor: when the connection drops (server restart,
``pg_terminate_backend``, a network blip) the thread logs one line, reconnects with backoff, and wakes every
subscriber once it is back, since a notification may have been missed meanwhile. TCP keepalives find a
connection that died silently. ``listen: false`` in the entry turns all of this off (poolers in transaction
mode drop ``LISTEN``).
"""

from __future__ import annotations

import logging
import os
import random
import select
import threading
from typing import TYPE_CHECKING, Any

import psycopg

from . import outage
from .errors import DatabaseUnavailable

if TYPE_CHECKING:
    from .postgresql import PostgreSQLDatabase

log = logging.getLogger("solidstack.db")

#: Backoff between reconnection attempts, doubling from the first to the last.
RECONNECT_FIRST = 0.1
RECONNECT_MAX = 5.0
#: libpq keepalives for the listening connection: a peer gone without a FIN is found in about 20 s.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 3, "keepalives_count": 3}


class Subscription:
    """One waiter on one channel; ``wait`` returns True when a notification (or ``wake``) came."""

    def __init__(self, listener: Listener, channel: str) -> None:
        self.listener = listener
        self.channel = channel
        self._event = threading.Event()

    def wait(self, timeout: float) -> bool:
        if self._event.wait(max(0.0, timeout)):
            # A notification between the wait and this clear is covered: the caller reads the table next, and
            # a NOTIFY is delivered only after its transaction committed.
            self._event.clear()
            return True
        return False

    def wake(self) -> None:
        self._event.set()

    def close(self) -> None:
        self.listener.unsubscribe(self)


class Listener:
    """The listening connection of one database in this process (see the module's docstring)."""

    def __init__(self, db: PostgreSQLDatabase) -> None:
        self.db = db
        self._lock = threading.Lock()
        self._subscribers: dict[str, set[Subscription]] = {}
        self._listening: set[str] = set()
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        self._thread: threading.Thread | None = None
        self._closed = False
        self._pid = os.getpid()
        #: Connections made so far (1 = the first; each reconnection adds one): for tests and logs.
        self.connections = 0
        self.connected = threading.Event()

    @classmethod
    def of(cls, db: PostgreSQLDatabase) -> Listener:
        """The listener of ``db`` in this process (started on first use)."""
        with db._lock:
            listener = db.extras.get("listener")
            if listener is None or listener._pid != os.getpid():
                listener = db.extras["listener"] = cls(db)
        return listener  # type: ignore[no-any-return]

    def subscribe(self, channel: str) -> Subscription:
        subscription = Subscription(self, channel)
        with self._lock:
            self._subscribers.setdefault(channel, set()).add(subscription)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"solidstack-listen-{self.db.name}",
                                                daemon=True)
                self._thread.start()
        self._poke()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            subscribers = self._subscribers.get(subscription.channel)
            if subscribers is not None:
                subscribers.discard(subscription)
                if not subscribers:
                    del self._subscribers[subscription.channel]
        self._poke()

    def close(self) -> None:
        """Stop the thread and close the connection (in the process that opened them)."""
        self._closed = True
        self._poke()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread() and self._pid == os.getpid():
            thread.join(2.0)

    def _poke(self) -> None:
        try:
            os.write(self._write_fd, b"x")
        except (BlockingIOError, OSError):
            pass  # the pipe is full (the thread will look anyway) or closed

    def _drain_pipe(self) -> None:
        try:
            while os.read(self._read_fd, 512):
                pass
        except (BlockingIOError, OSError):
            pass

    def _dispatch(self, channel: str) -> None:
        with self._lock:
            subscribers = list(self._subscribers.get(channel, ()))
        for subscription in subscribers:
            subscription.wake()

    def _wake_all(self) -> None:
        with self._lock:
            subscribers = [s for group in self._subscribers.values() for s in group]
        for subscription in subscribers:
            subscription.wake()

    # -- the thread ------------------------------------------------------------------------------------------

    def _run(self) -> None:
        delay = RECONNECT_FIRST
        failing_since_logged = False
        while not self._closed:
            conn: psycopg.Connection[Any] | None = None
            try:
                conn = self.db.connect_raw(**KEEPALIVES)
                self._listening = set()
                self.connections += 1
                if failing_since_logged:
                    log.info("%s: listening again after a lost connection", self.db.label)
                    outage.answered(str(getattr(self.db, "source", "") or ""))
                    failing_since_logged = False
                delay = RECONNECT_FIRST
                self._sync_channels(conn)
                self.connected.set()
                if self.connections > 1:
                    self._wake_all()  # a notification may have been missed while disconnected
                self._serve(conn)
            except Exception as exc:
                self.connected.clear()
                if self._closed:
                    break
                if not failing_since_logged:
                    # A server down or out of reach is one line per outage for the whole process (outage.py);
                    # anything else is said here.
                    error = self.db.translate(exc)
                    if isinstance(error, DatabaseUnavailable):
                        outage.unavailable(error, "the LISTEN connection failed (polling until it is back)")
                    else:
                        log.warning("%s: the LISTEN connection failed (%s); reconnecting with backoff, polling "
                                    "until then", self.db.label, _short(exc))
                    failing_since_logged = True
                self._wake_all()
                self._sleep(delay * (1 + random.random() / 2))
                delay = min(delay * 2, RECONNECT_MAX)
            finally:
                if conn is not None and self._pid == os.getpid():
                    try:
                        conn.close()
                    except Exception:
                        pass
        os.close(self._read_fd)
        os.close(self._write_fd)

    def _sleep(self, seconds: float) -> None:
        """Sleep between reconnections, cut short by close()."""
        poller = select.poll()
        poller.register(self._read_fd, select.POLLIN)
        poller.poll(int(seconds * 1000))
        self._drain_pipe()

    def _sync_channels(self, conn: psycopg.Connection[Any]) -> None:
        with self._lock:
            wanted = set(self._subscribers)
        for channel in wanted - self._listening:
            conn.execute(psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(channel)))
            self._listening.add(channel)
        for channel in self._listening - wanted:
            conn.execute(psycopg.sql.SQL("UNLISTEN {}").format(psycopg.sql.Identifier(channel)))
            self._listening.discard(channel)

    def _serve(self, conn: psycopg.Connection[Any]) -> None:
        # Notifications that arrive while psycopg runs a LISTEN come through its handler; the rest are read
        # straight from libpq below.
        conn.add_notify_handler(lambda notify: self._dispatch(notify.channel))
        pgconn = conn.pgconn
        poller = select.poll()
        poller.register(pgconn.socket, select.POLLIN | select.POLLERR | select.POLLHUP)
        poller.register(self._read_fd, select.POLLIN)
        while not self._closed:
            events = poller.poll()
            for fd, _ in events:
                if fd == self._read_fd:
                    self._drain_pipe()
                    self._sync_channels(conn)
                    continue
                pgconn.consume_input()  # raises when the connection is gone
                while (notify := pgconn.notifies()) is not None:
                    self._dispatch(notify.relname.decode())
                if pgconn.status != psycopg.pq.ConnStatus.OK:
                    raise psycopg.OperationalError("the connection is closed")


def _short(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
