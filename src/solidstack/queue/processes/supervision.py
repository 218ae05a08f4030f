"""What both supervisors share: the roles they run, their own process row, pruning, and restart backoff.

``supervisor.py`` holds the two modes (``ForkSupervisor`` in ``fork_supervisor.py``, ``AsyncSupervisor``) and is
the module to import.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from solidstack.db import outage
from solidstack.db.errors import DatabaseUnavailable
from solidstack.queue import events
from solidstack.queue.config import DispatcherConfig, QueueConfig, WorkerConfig
from solidstack.queue.processes.dispatcher import Dispatcher
from solidstack.queue.processes.liveness import hostname
from solidstack.queue.processes.runner import Role
from solidstack.queue.processes.worker import Worker
from solidstack.queue.storage import QueueStorage

log = logging.getLogger("solidstack.queue")


#: The signals that stop a process; blocked around each fork (see ``ForkSupervisor._fork``).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)

#: Restarts after failed starts wait ``RESTART_BACKOFF * 2 ** (n - 1)`` seconds, at most ``RESTART_BACKOFF_MAX``.
RESTART_BACKOFF = 0.25
RESTART_BACKOFF_MAX = 30.0


@dataclass(frozen=True)
class RoleSpec:
    """One process the supervisor keeps running."""

    kind: str
    config: Any
    index: int

    def build(self, storage: QueueStorage, queue_config: QueueConfig) -> Role:
        if isinstance(self.config, WorkerConfig):
            return Worker(storage, self.config, preserve_finished_jobs=queue_config.preserve_finished_jobs)
        if isinstance(self.config, DispatcherConfig):
            return Dispatcher(storage, self.config)
        factory: Callable[[QueueStorage, QueueConfig], Role] = self.config
        return factory(storage, queue_config)


def role_specs(config: QueueConfig, extra: tuple[RoleSpec, ...] = ()) -> list[RoleSpec]:
    specs = [RoleSpec("worker", w, i) for w in config.workers for i in range(w.processes)]
    specs += [RoleSpec("dispatcher", d, i) for i, d in enumerate(config.dispatchers)]
    return specs + list(extra)


class RestartBackoff:
    """Consecutive failed starts per role: how long to wait before the next start, and when to give up.

    A start fails when the process (or thread) ends before it has registered its row: a database that cannot
    be opened, code that raises while the role is built. Restarting such a process at once would fork hundreds
    of times a second; the wait doubles from ``RESTART_BACKOFF`` up to ``RESTART_BACKOFF_MAX``. A start that
    registers resets the count.
    """

    def __init__(self, max_failures: int) -> None:
        self.max_failures = max_failures
        self._failures: dict[RoleSpec, int] = {}

    def started(self, spec: RoleSpec) -> None:
        self._failures.pop(spec, None)

    def failed(self, spec: RoleSpec) -> tuple[int, float | None]:
        """Count a failed start; returns the failures in a row and the wait before the next start (None: give up)."""
        count = self._failures.get(spec, 0) + 1
        self._failures[spec] = count
        if count >= self.max_failures:
            return count, None
        return count, min(RESTART_BACKOFF_MAX, RESTART_BACKOFF * 2 ** (count - 1))


class Supervisor:
    """Shared upkeep of both modes: its own process row, heartbeats, pruning of dead processes."""

    kind = "Supervisor"

    def __init__(self, storage: QueueStorage, config: QueueConfig, *, extra_roles: tuple[RoleSpec, ...] = (),
                 clock: Callable[[], float] = time.time) -> None:
        self.storage = storage
        self.config = config
        self.specs = role_specs(config, extra_roles)
        self.clock = clock
        self.name = f"supervisor-{secrets.token_hex(5)}"
        self.process_id: int | None = None
        #: Every row id this supervisor has had (it registers again if found dead while alive): the
        #: ``supervisor_id`` of its processes is one of them.
        self._ids: set[int] = set()
        self._stop_mode: str | None = None  # "graceful" or "immediate"
        self._last_heartbeat = 0.0
        self._last_maintenance = 0.0
        #: Whether its last heartbeat was written: if not, nobody can write, and a stale heartbeat elsewhere
        #: proves nothing (see ``liveness.dead_processes``) — nor does it until the others have had
        #: ``process_alive_threshold`` to write theirs again (``_trust_from``, clock time).
        self._writable = True
        self._trust_from = float("-inf")
        self.restarts = RestartBackoff(config.max_restart_failures)
        #: Why the supervisor gave up (too many failed starts): it then exits non-zero.
        self.failure: str | None = None

    def _register(self, now: float, mode: str) -> None:
        self.process_id = self.storage.register_process(
            self.kind, self.name, now, metadata={"mode": mode, "hostname": hostname()})
        self._ids.add(self.process_id)

    def _start(self, mode: str) -> None:
        now = self.clock()
        self._mode = mode
        self._register(now, mode)
        self._last_heartbeat = self._last_maintenance = now
        self._maintain(now)
        log.info("Supervisor %s started in %s mode with %d process(es) (pid %d)", self.name, mode,
                 len(self.specs), os.getpid())
        events.process_started(self, mode=mode, process_id=self.process_id, pid=os.getpid())

    def _maintain(self, now: float) -> None:
        """Prune processes that died elsewhere and hand back claims nobody holds."""
        try:
            for process in self.storage.prune_dead_processes(now, self.config.process_alive_threshold,
                                                             self.config.max_process_deaths,
                                                             exclude=self._own_process_ids(),
                                                             trust_heartbeats=self._trust_heartbeats(now)):
                log.warning("pruned dead process %s (pid %s on %s): %s", process["name"], process["pid"],
                            process["hostname"], process["why"])
                events.instrument("prune", name=process["name"], pid=process["pid"], hostname=process["hostname"])
            if not self._writable:
                return  # the database is held: a write would only wait for it
            again, failed = self.storage.release_orphaned_claims(now, self.config.max_process_deaths)
            if again or failed:
                log.warning("released orphaned claims: %d to run again, %d failed", len(again), len(failed))
        except DatabaseUnavailable as exc:
            outage.unavailable(exc, "supervisor")
        except Exception:
            log.exception("supervisor maintenance failed")

    def _own_process_ids(self) -> set[int]:
        """Its own row and its processes' rows: it watches those itself and never prunes them."""
        return set(self._ids) | {row["id"] for row in self.storage.processes() if row["supervisor_id"] in self._ids}

    def _heartbeat(self) -> None:
        """Heartbeat when one is due (each round of the loop, and while stopping)."""
        now = self.clock()
        if now - self._last_heartbeat < self.config.process_heartbeat_interval:
            return
        self._last_heartbeat = now
        try:
            if self.process_id is not None and not self.storage.heartbeat(self.process_id, now):
                # Found dead while alive (hung, stopped, or its host's clock far ahead). Its processes see the
                # row gone and stop on their own (see Runner); their replacements use the new row.
                log.error("supervisor row was pruned as dead; registering again")
                self._register(now, self._mode)
            if not self._writable:
                self._writable = True
                self._trust_from = now + self.config.process_alive_threshold
            outage.answered(str(getattr(self.storage.db, "source", "") or ""))
        except DatabaseUnavailable as exc:
            # The server is down or out of reach: nobody can heartbeat, so a stale heartbeat proves nothing
            # until everyone has had the threshold to write again (as when the database is held). One line per
            # outage; the supervisor and its processes carry on and reconnect.
            self._writable = False
            outage.unavailable(exc, "supervisor")
        except Exception as exc:
            if not _held(exc):
                raise  # a database that cannot work (gone, not migrated) stops the supervisor, loudly
            self._writable = False
            log.error("supervisor heartbeat failed: the database is held by another writer (%s)", exc)

    def _trust_heartbeats(self, now: float) -> bool:
        """Whether a stale heartbeat means a hung process: the database took writes long enough for all."""
        return self._writable and now >= self._trust_from

    def _tick(self) -> None:
        self._heartbeat()
        now = self.clock()
        if now - self._last_maintenance >= min(self.config.process_heartbeat_interval,
                                               self.config.process_alive_threshold):
            self._last_maintenance = now
            self._maintain(now)

    def _give_up(self, spec: RoleSpec, failures: int, how: str) -> None:
        """Too many failed starts in a row: stop everything, and exit non-zero with the reason."""
        self.failure = (f"{spec.kind} process failed to start {failures} times in a row (last: {how}); giving up "
                        f"(supervisor.max_restart_failures: {self.config.max_restart_failures} in {self.config.file})")
        log.critical("%s", self.failure)
        self.request_stop()

    def _trap_signals(self) -> dict[int, Any]:
        """TERM and INT stop gracefully, QUIT at once; returns the handlers to put back."""
        previous: dict[int, Any] = {}
        for signum, immediate in {signal.SIGTERM: False, signal.SIGINT: False, signal.SIGQUIT: True}.items():
            previous[signum] = signal.signal(
                signum, lambda _s, _f, immediate=immediate: self.request_stop(immediate=immediate))  # type: ignore[misc]
        return previous

    def _finish(self, previous_handlers: dict[int, Any]) -> None:
        """Deregister (handing back whatever the supervised processes still hold) and restore signal handlers."""
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)
        if self.process_id is None:
            return  # it never started (the database could not be opened): nothing to hand back or announce
        # Its processes have stopped (or, in async mode, are threads of this process about to end): the cascade
        # hands back what they still hold.
        self.storage.deregister_process(self.process_id, self.clock())
        log.info("Supervisor %s stopped", self.name)
        events.process_stopped(self, process_id=self.process_id, pid=os.getpid())

    def request_stop(self, immediate: bool = False) -> None:
        """Stop gracefully (or at once); safe to call from a signal handler or another thread."""
        if immediate:
            self._stop_mode = "immediate"
        elif self._stop_mode is None:
            self._stop_mode = "graceful"


def _held(exc: BaseException) -> bool:
    """Whether ``exc`` says the database is held by another writer (it waited its ``busy_timeout``)."""
    message = str(exc).lower()
    return "locked" in message or "busy" in message


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


try:
    import setproctitle

    # Initialise now, at import: once os.environ has been changed (configure() sets SOLIDSTACK_ROOT), setproctitle
    # can no longer find the memory of argv and silently leaves the title unchanged.
    setproctitle.getproctitle()
except ImportError:  # pragma: no cover - a dependency, but titles are a nicety
    setproctitle = None  # type: ignore[assignment]


def _set_title(title: str) -> None:
    if setproctitle is not None:
        setproctitle.setproctitle(title)
