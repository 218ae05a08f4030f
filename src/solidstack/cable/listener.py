"""Cable's wake-ups on PostgreSQL: ``LISTEN`` on one connection of the process's own, outside the pool.

A broadcast sends ``NOTIFY solidstack_cable, '<channel hash>'`` in its transaction, so listeners on every
machine hear of it at its commit (never on a rollback). The listener thread of :class:`~.pubsub.SolidCablePubSub`
waits here, in ``select`` on this connection's socket and on a local socket pair (which :meth:`wake` writes to,
to stop it at once); a notification for a channel the process does not listen to is drained and ignored.

The table stays the record: a notification only says "poll now". When the connection drops (a server restart,
``pg_terminate_backend``, a network blip), the loss is logged once, the listener reconnects with backoff (0.1 s
doubling to 5 s) and listens again; meanwhile, and after each reconnect at once, the listener thread polls,
so what was committed in between is delivered from the table.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import select
import socket
import time
import weakref
from collections.abc import Callable
from typing import Any

log = logging.getLogger("solidstack.cable")

CHANNEL = "solidstack_cable"
#: libpq's ``application_name`` of the listening connection: how an operator (or a test) finds it.
APPLICATION_NAME = "solidstack cable listener"
BACKOFF_FIRST = 0.1
BACKOFF_MAX = 5.0

_listeners: weakref.WeakSet[NotifyListener] = weakref.WeakSet()
# In a forked child the parent's connections are kept referenced and never closed: closing one would send the
# server a Terminate on the parent's socket.
_abandoned: list[Any] = []


class NotifyListener:
    """``wait(timeout)`` until a broadcast to a channel that ``relevant`` accepts commits, or ``timeout`` passes.

    ``relevant(payload)`` is asked for each notification's payload (a channel hash as text).
    """

    def __init__(self, db: Any, relevant: Callable[[str], bool]) -> None:
        self.db = db
        self.relevant = relevant
        self._conn: Any = None
        self._waker, self._wakee = socket.socketpair()
        self._waker.setblocking(False)
        self._wakee.setblocking(False)
        self._lost = False
        self._retry_at = 0.0
        self._backoff = BACKOFF_FIRST
        self._pid = os.getpid()
        _listeners.add(self)

    def _connect(self) -> bool:
        """Open the connection and ``LISTEN``; False (and the next attempt scheduled) when it fails."""
        try:
            conn = self.db.connect_raw(autocommit=True, application_name=APPLICATION_NAME)
            conn.execute(f"LISTEN {CHANNEL}")
        except Exception as exc:
            if not self._lost:
                self._lost = True
                log.warning("cable: cannot listen on the %s (%s); retrying with backoff, polling meanwhile",
                            self.db.label, _reason(exc))
            self._retry_at = time.monotonic() + self._backoff * (1 + random.random() / 2)
            self._backoff = min(self._backoff * 2, BACKOFF_MAX)
            return False
        self._conn = conn
        if self._lost:
            log.info("cable: listening on the %s again", self.db.label)
        self._lost = False
        self._backoff = BACKOFF_FIRST
        return True

    def _drop(self, exc: BaseException) -> None:
        if not self._lost:
            self._lost = True
            log.warning("cable: lost the listening connection to the %s (%s); reconnecting with backoff, "
                        "polling meanwhile", self.db.label, _reason(exc))
        conn, self._conn = self._conn, None
        with contextlib.suppress(Exception):
            conn.close()
        self._retry_at = time.monotonic() + self._backoff * (1 + random.random() / 2)
        self._backoff = min(self._backoff * 2, BACKOFF_MAX)

    def connect(self) -> None:
        """Listen now (the first subscription calls this, so that nothing committed after it is missed)."""
        if self._conn is None:
            self._connect()

    def wait(self, timeout: float) -> bool:
        """Block until a relevant notification, a :meth:`wake`, a reconnect (poll at once) or ``timeout``."""
        if self._conn is None:
            if time.monotonic() >= self._retry_at and self._connect():
                return True  # listening again: poll now for what was committed while it was not
            timeout = min(timeout, max(0.0, self._retry_at - time.monotonic()))
            readable, _, _ = select.select([self._wakee], [], [], timeout)
            self._drain_wakeups(readable)
            return bool(readable)
        conn = self._conn
        deadline = time.monotonic() + timeout
        while True:
            try:
                readable, _, _ = select.select([conn.fileno(), self._wakee], [], [],
                                               max(0.0, deadline - time.monotonic()))
                if self._drain_wakeups(readable):
                    return True
                if not readable:
                    return False
                # Drains what arrived without waiting; raises when the connection is gone.
                payloads = [n.payload for n in conn.notifies(timeout=0)]
                if not payloads and conn.closed:
                    raise ConnectionError("connection closed")
            except Exception as exc:
                self._drop(exc)
                return True
            if any(self.relevant(payload) for payload in payloads):
                return True
            if time.monotonic() >= deadline:
                return False

    def _drain_wakeups(self, readable: list[Any]) -> bool:
        if self._wakee not in readable:
            return False
        with contextlib.suppress(OSError):
            while self._wakee.recv(64):
                pass
        return True

    def wake(self) -> None:
        """Wake the waiting thread (from another thread of this process)."""
        with contextlib.suppress(OSError):
            self._waker.send(b"\0")

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and self._pid == os.getpid():
            with contextlib.suppress(Exception):
                conn.close()
        elif conn is not None:
            _abandoned.append(conn)
        self._waker.close()
        self._wakee.close()


def _reason(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _after_fork_in_child() -> None:
    for listener in list(_listeners):
        if listener._conn is not None:
            _abandoned.append(listener._conn)
            listener._conn = None


os.register_at_fork(after_in_child=_after_fork_in_child)
