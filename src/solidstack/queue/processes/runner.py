"""Runs one process role: registers it in ``processes``, heartbeats, polls until stopped, deregisters.

A role is a small object with ``poll(now) -> seconds to wait`` and ``shutdown(timeout)``; the runner owns the
loop, so roles can be stepped in tests with an injected clock and no threads.

Between polls the runner sleeps on the role's waiter when it has one (``role.wakeup_socket()``: a Unix socket on
SQLite, a ``LISTEN`` subscription on PostgreSQL, see ``db/notify.py``): another process, on this machine or any
other, that makes work ready wakes it at once; the wait is the floor.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from solidstack.db import outage
from solidstack.db.errors import DatabaseUnavailable
from solidstack.db.notify import Waiter
from solidstack.queue import events
from solidstack.queue.storage import QueueStorage

log = logging.getLogger("solidstack.queue")

#: How soon a sleeping runner sees a stop (see Runner.stop).
STOP_CHECK_INTERVAL = 0.2
#: After a poll that lost its database connection: the first pause, doubled while it keeps failing, up to the last.
RETRY_FIRST = 0.5
RETRY_MAX = 10.0


class Role(Protocol):
    kind: str
    name: str
    process_id: int | None

    def poll(self, now: float) -> float:
        """Do one round of work; return how long to wait before the next round."""
        ...

    def metadata(self) -> dict[str, Any]: ...

    def shutdown(self, timeout: float) -> Sequence[int] | None:
        """Stop taking work; finish or hand back what is in hand within ``timeout`` seconds.

        Returns the jobs still running, which it could neither finish nor hand back (their process must end
        first), or None.
        """
        ...


class Runner:
    """Drives one role in the current thread until :meth:`stop`."""

    def __init__(self, role: Role, storage: QueueStorage, *, heartbeat_interval: float = 60.0,
                 shutdown_timeout: float = 5.0, supervisor_id: int | None = None,
                 supervisor_pid: int | None = None, clock: Callable[[], float] = time.time) -> None:
        self.role = role
        self.storage = storage
        #: Its database's entry, which an outage of that database is logged under (``db/outage.py``).
        self._source = str(getattr(storage.db, "source", "") or "")
        self.heartbeat_interval = heartbeat_interval
        self.shutdown_timeout = shutdown_timeout
        self.supervisor_id = supervisor_id
        self.supervisor_pid = supervisor_pid
        self.clock = clock
        self.process_id: int | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        #: Set once the role has shut down: the heartbeat goes on until then (a stop that waits
        #: ``shutdown_timeout`` for running jobs must not look like a hung process).
        self._shut_down = threading.Event()
        self._socket: Waiter | None = None
        self._sleeping = False
        self._stop_requested = False
        self.started = threading.Event()

    def wake(self) -> None:
        """Poll again now (a job finished, work may be waiting); safe from a signal handler or another thread."""
        self._wake.set()
        sock = self._socket
        if sock is not None and self._sleeping:  # an awake loop sees the event before it sleeps again
            sock.wake()

    def _wait(self, timeout: float) -> None:
        # In slices, so that a stop (a plain flag, see stop()) is seen soon.
        deadline = time.monotonic() + timeout
        while not self._stop_requested:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._wait_once(min(remaining, STOP_CHECK_INTERVAL)):
                return

    def _wait_once(self, timeout: float) -> bool:
        sock = self._socket
        if sock is None:
            return self._wake.wait(timeout)
        # Set before the event is checked, so that a wake() in between sends a datagram.
        self._sleeping = True
        try:
            return self._wake.is_set() or sock.wait(timeout)
        finally:
            self._sleeping = False

    def stop(self) -> None:
        """Ask the loop to stop after the current round: safe from any thread and from a signal handler.

        Only a plain flag, which the loop sees within ``STOP_CHECK_INTERVAL``: setting an ``Event`` takes the
        lock inside it, which the code a signal interrupted may hold, and a handler waiting for a lock its own
        thread holds never returns (seen as workers that ignored TERM under honcho).
        """
        self._stop_requested = True

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set() or self._stop_requested

    def run(self) -> None:
        role = self.role
        self.process_id = self.storage.register_process(
            role.kind, role.name, self.clock(), supervisor_id=self.supervisor_id, metadata=role.metadata()
        )
        role.process_id = self.process_id
        if hasattr(role, "attach"):
            role.attach(self.wake)
        watchdog = getattr(role, "watchdog", None)
        if watchdog is not None:  # a thread hung past its job's timeout: stop, for a fresh process
            watchdog.on_hung = self.stop
        listen = getattr(role, "wakeup_socket", None)
        if listen is not None:
            self._socket = listen()
        heartbeat = threading.Thread(target=self._heartbeat_loop, name=f"{role.name}-heartbeat", daemon=True)
        heartbeat.start()
        log.info("%s %s started (process %d, pid %d)", role.kind, role.name, self.process_id, os.getpid())
        self.started.set()
        events.process_started(role, process_id=self.process_id, pid=os.getpid())
        retry = RETRY_FIRST
        try:
            while not self.stopping:
                if self.supervisor_pid is not None and os.getppid() != self.supervisor_pid:
                    log.warning("%s %s: supervisor is gone; stopping", role.kind, role.name)
                    break
                self._wake.clear()
                try:
                    wait = role.poll(self.clock())
                    if retry != RETRY_FIRST:
                        outage.answered(self._source)
                    retry = RETRY_FIRST
                except DatabaseUnavailable as exc:
                    # The server restarted or the network dropped: one line per outage (db/outage.py), no
                    # traceback, and a backoff. The poll's transaction rolled back, so nothing was claimed; the
                    # pool replaces the connection.
                    outage.unavailable(exc, f"{role.kind} {role.name}")
                    wait, retry = retry, min(retry * 2, RETRY_MAX)
                except Exception:
                    log.exception("%s %s: poll failed; retrying", role.kind, role.name)
                    wait = 1.0
                if wait > 0:
                    self._wait(wait)
        finally:
            self._stopping.set()
            still_running: Sequence[int] | None = None
            try:
                still_running = role.shutdown(self.shutdown_timeout)
            finally:
                self._shut_down.set()
                sock, self._socket = self._socket, None
                if sock is not None:
                    sock.close()
                if still_running:
                    # The row and those claims stay: whoever sees this process gone (its supervisor reaping it,
                    # or a pruner) hands them back; before that they would run twice at once.
                    log.warning("%s %s stopped with %d job(s) still running; they go back once this process "
                                "has exited", role.kind, role.name, len(still_running))
                else:
                    self.storage.deregister_process(self.process_id, self.clock())
                    log.info("%s %s stopped", role.kind, role.name)
                events.process_stopped(role, process_id=self.process_id, pid=os.getpid())

    def _heartbeat_loop(self) -> None:
        while not self._shut_down.wait(self.heartbeat_interval):
            try:
                if self.process_id is not None and not self.storage.heartbeat(self.process_id, self.clock()):
                    log.error("%s %s: its process row was pruned as dead; stopping", self.role.kind, self.role.name)
                    self.stop()
                elif self.supervisor_id is not None and not self.storage.process_exists(self.supervisor_id):
                    # Its supervisor was found dead (or hung) elsewhere and pruned: nobody would replace this
                    # process if it died, nor see it hang. It hands back what it holds and stops; a live
                    # supervisor, registered again, reaps it and starts another.
                    log.warning("%s %s: its supervisor's process row is gone; stopping", self.role.kind,
                                self.role.name)
                    self.stop()
                else:
                    outage.answered(self._source)
            except DatabaseUnavailable as exc:
                outage.unavailable(exc, f"{self.role.kind} {self.role.name}")
            except Exception:
                log.exception("%s %s: heartbeat failed", self.role.kind, self.role.name)
