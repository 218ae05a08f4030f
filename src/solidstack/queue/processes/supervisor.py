"""The supervisor: starts the processes ``queue.yml`` asks for, replaces those that die, stops them all.

Two modes, as in Solid Queue: ``fork`` runs each worker and dispatcher in a child process
(:class:`ForkSupervisor`, in ``fork_supervisor.py``); ``async`` runs them as threads of the current process (for
running jobs inside a web server). Either way the supervisor heartbeats, prunes processes that died elsewhere
(``liveness.py`` judges which) and hands their claimed jobs back to their queues. What both share is in
``supervision.py``.

Signals (fork mode, or async mode when it owns the main thread): TERM and INT stop gracefully (no new claims,
running jobs get ``shutdown_timeout`` to finish, then go back to ready), QUIT stops at once.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from solidstack.queue.config import QueueConfig
from solidstack.queue.processes.fork_supervisor import ForkSupervisor
from solidstack.queue.processes.runner import Runner
from solidstack.queue.processes.supervision import STOP_SIGNALS, RoleSpec, Supervisor, role_specs
from solidstack.queue.storage import QueueStorage

__all__ = ["STOP_SIGNALS", "AsyncSupervisor", "ForkSupervisor", "RoleSpec", "Supervisor", "role_specs"]

log = logging.getLogger("solidstack.queue")


class AsyncSupervisor(Supervisor):
    """Runs each role in a thread of this process: for a web server's lifespan, or ``--mode async``."""

    def __init__(self, storage: QueueStorage, config: QueueConfig, **kwargs: Any) -> None:
        super().__init__(storage, config, **kwargs)
        self.runners: dict[threading.Thread, tuple[RoleSpec, Runner]] = {}
        #: Restarts waiting for their backoff: (when, spec), ``time.monotonic()``.
        self._pending: list[tuple[float, RoleSpec]] = []
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def _spawn(self, spec: RoleSpec) -> None:
        role = spec.build(self.storage, self.config)
        runner = Runner(role, self.storage, heartbeat_interval=self.config.process_heartbeat_interval,
                        shutdown_timeout=self.config.shutdown_timeout, supervisor_id=self.process_id,
                        clock=self.clock)
        thread = threading.Thread(target=runner.run, name=f"solidstack-{role.name}", daemon=True)
        self.runners[thread] = (spec, runner)
        thread.start()

    def _replace(self, thread: threading.Thread) -> None:
        """A thread that stopped on its own: start another, after a backoff if it never registered."""
        spec, runner = self.runners.pop(thread)
        if runner.started.is_set():
            self.restarts.started(spec)
            log.error("%s thread %s stopped unexpectedly; starting a new one", spec.kind, runner.role.name)
            self._spawn(spec)
            return
        failures, wait = self.restarts.failed(spec)
        if wait is None:
            self._give_up(spec, failures, "its thread ended")
            return
        log.error("%s thread %s ended before it started (%d failed start(s) in a row); starting another in %g s",
                  spec.kind, runner.role.name, failures, wait)
        self._pending.append((time.monotonic() + wait, spec))

    def run(self, *, handle_signals: bool = True) -> int:
        """Supervise in this thread until :meth:`request_stop` (or TERM/INT/QUIT when ``handle_signals``).

        Returns 0, or 1 when it gave up on a role that kept failing to start (``failure`` says why).
        """
        previous = self._trap_signals() if handle_signals else {}
        try:
            self._start("async")
            for spec in self.specs:
                self._spawn(spec)
            while self._stop_mode is None:
                time.sleep(0.05)
                for thread in list(self.runners):
                    if not thread.is_alive() and self._stop_mode is None:
                        self._replace(thread)
                now = time.monotonic()
                due = [spec for when, spec in self._pending if when <= now]
                self._pending = [(when, spec) for when, spec in self._pending if when > now]
                for spec in due:
                    self._spawn(spec)
                self._tick()
            for _spec, runner in self.runners.values():
                runner.stop()
            grace = 0.5 if self._stop_mode == "immediate" else self.config.shutdown_timeout + 1.0
            deadline = time.monotonic() + grace
            for thread in self.runners:
                thread.join(max(0.0, deadline - time.monotonic()))
            return 1 if self.failure else 0
        finally:
            self._finish(previous)
            self._stopped.set()

    def start_in_thread(self) -> threading.Thread:
        """Run in a background thread (signals stay with the host, e.g. the web server)."""
        self._thread = threading.Thread(target=self.run, kwargs={"handle_signals": False},
                                        name="solidstack-supervisor", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float | None = None) -> None:
        """Stop gracefully and wait for it."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout if timeout is not None else self.config.shutdown_timeout + 5.0)
