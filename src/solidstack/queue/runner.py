"""Runs one process role: registers it in ``processes``, heartbeats, polls until stopped, deregisters.

A role is a small object with ``poll(now) -> seconds to wait`` and ``shutdown(timeout)``; the runner owns the
loop, so roles can be stepped in tests with an injected clock and no threads.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from . import events
from .storage import QueueStorage

log = logging.getLogger("solidstack.queue")


class Role(Protocol):
    kind: str
    name: str
    process_id: int | None

    def poll(self, now: float) -> float:
        """Do one round of work; return how long to wait before the next round."""
        ...

    def metadata(self) -> dict[str, Any]: ...

    def shutdown(self, timeout: float) -> None:
        """Stop taking work; finish or hand back what is in hand within ``timeout`` seconds."""
        ...


class Runner:
    """Drives one role in the current thread until :meth:`stop`."""

    def __init__(self, role: Role, storage: QueueStorage, *, heartbeat_interval: float = 60.0,
                 shutdown_timeout: float = 5.0, supervisor_id: int | None = None,
                 supervisor_pid: int | None = None, clock: Callable[[], float] = time.time) -> None:
        self.role = role
        self.storage = storage
        self.heartbeat_interval = heartbeat_interval
        self.shutdown_timeout = shutdown_timeout
        self.supervisor_id = supervisor_id
        self.supervisor_pid = supervisor_pid
        self.clock = clock
        self.process_id: int | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self.started = threading.Event()

    def wake(self) -> None:
        """Poll again now (a job finished, work may be waiting)."""
        self._wake.set()

    def stop(self) -> None:
        """Ask the loop to stop after the current round (signal-safe)."""
        self._stopping.set()
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def run(self) -> None:
        role = self.role
        self.process_id = self.storage.register_process(
            role.kind, role.name, self.clock(), supervisor_id=self.supervisor_id, metadata=role.metadata()
        )
        role.process_id = self.process_id
        if hasattr(role, "on_wake"):
            role.on_wake = self.wake
        heartbeat = threading.Thread(target=self._heartbeat_loop, name=f"{role.name}-heartbeat", daemon=True)
        heartbeat.start()
        log.info("%s %s started (process %d, pid %d)", role.kind, role.name, self.process_id, os.getpid())
        self.started.set()
        events.process_started(role, process_id=self.process_id, pid=os.getpid())
        try:
            while not self._stopping.is_set():
                if self.supervisor_pid is not None and os.getppid() != self.supervisor_pid:
                    log.warning("%s %s: supervisor is gone; stopping", role.kind, role.name)
                    break
                self._wake.clear()
                try:
                    wait = role.poll(self.clock())
                except Exception:
                    log.exception("%s %s: poll failed; retrying", role.kind, role.name)
                    wait = 1.0
                if wait > 0:
                    self._wake.wait(wait)
        finally:
            self._stopping.set()
            try:
                role.shutdown(self.shutdown_timeout)
            finally:
                self.storage.deregister_process(self.process_id, self.clock())
                log.info("%s %s stopped", role.kind, role.name)
                events.process_stopped(role, process_id=self.process_id, pid=os.getpid())

    def _heartbeat_loop(self) -> None:
        while not self._stopping.wait(self.heartbeat_interval):
            try:
                if self.process_id is not None and not self.storage.heartbeat(self.process_id, self.clock()):
                    log.error("%s %s: its process row was pruned as dead; stopping", self.role.kind, self.role.name)
                    self.stop()
            except Exception:
                log.exception("%s %s: heartbeat failed", self.role.kind, self.role.name)
