"""The fork-mode supervisor: each worker and dispatcher in a child process it watches and replaces.

It knows of its children what nobody else can: ``waitpid`` says for certain when one is dead, so it hands their
jobs back itself, and it can kill one that hangs. A child is replaced when it exits, when it has not registered
within ``process_alive_threshold`` (hung before it starts), and when its heartbeat is older than that (hung
after: SIGSTOP, a C call holding the GIL, a deadlock) — TERM, then KILL after ``HUNG_KILL_GRACE``. Children
that fail to start are restarted with a growing wait (``RestartBackoff``), and after
``supervisor.max_restart_failures`` failures in a row the supervisor stops and exits with status 1.
"""

from __future__ import annotations

import logging
import os
import selectors
import signal
import socket
import time
from typing import Any

from solidstack.db import outage
from solidstack.db.errors import DatabaseUnavailable
from solidstack.queue.config import QueueConfig
from solidstack.queue.processes.liveness import stopped
from solidstack.queue.processes.runner import Runner
from solidstack.queue.processes.supervision import STOP_SIGNALS, RoleSpec, Supervisor, _set_title, _signal
from solidstack.queue.storage import QueueStorage

log = logging.getLogger("solidstack.queue")

#: How long a hung child gets to act on TERM before it is killed.
HUNG_KILL_GRACE = 2.0


class ForkSupervisor(Supervisor):
    """Runs each role in a forked child process."""

    def __init__(self, storage: QueueStorage, config: QueueConfig, **kwargs: Any) -> None:
        super().__init__(storage, config, **kwargs)
        #: The children's storage; the supervisor's own writes never wait in the kernel's writer queue, so that
        #: it can still find and kill a child stopped while holding it (see ``QueueStorage.unqueued``).
        self.child_storage = storage
        self.storage = storage.unqueued()
        self.children: dict[int, RoleSpec] = {}
        #: Rows of children that exited whose jobs could not be handed back yet (the database was held):
        #: (row id, died, reason), tried again each round.
        self._unreleased: list[tuple[int, bool, str]] = []
        #: Children not yet registered, with when each was forked (``time.monotonic()``).
        self._starting: dict[int, float] = {}
        #: Children killed for not starting in time (their exit counts as a failed start, logged once).
        self._start_killed: set[int] = set()
        #: Children found stopped (SIGSTOP, a debugger), with since when (``time.monotonic()``).
        self._stopped_since: dict[int, float] = {}
        #: Hung children sent TERM, with when they get KILL (``time.monotonic()``).
        self._killing: dict[int, float] = {}
        #: Restarts waiting for their backoff: (when, spec), ``time.monotonic()``.
        self._pending: list[tuple[float, RoleSpec]] = []
        self._wakeup_r, self._wakeup_w = socket.socketpair()
        self._wakeup_r.setblocking(False)
        self._wakeup_w.setblocking(False)

    def run(self) -> int:
        """Start everything and supervise until a signal stops it (0), or until it gives up (1)."""
        previous = self._install_signals()
        try:
            self._start("fork")
            _set_title(f"solidstack-supervisor: supervising {len(self.specs)} process(es)")
            for spec in self.specs:
                self._fork(spec)
            selector = selectors.DefaultSelector()
            selector.register(self._wakeup_r, selectors.EVENT_READ)
            while self._stop_mode is None:
                selector.select(timeout=self._next_timeout())
                self._drain_wakeups()
                self._reap(replace=self._stop_mode is None)
                self._watch_starts()
                self._watch_stopped()
                self._kill_hung()
                self._fork_due()
                self._tick()
            selector.close()
            if self._stop_mode == "immediate":
                self._stop_children(signal.SIGQUIT, grace=1.0)
            else:
                self._stop_children(signal.SIGTERM, grace=self.config.shutdown_timeout + 2.0)
            return 1 if self.failure else 0
        finally:
            signal.set_wakeup_fd(-1)
            self._finish(previous)

    def _next_timeout(self) -> float:
        deadlines = [when for when, _spec in self._pending] + list(self._killing.values())
        if not deadlines:
            return 1.0
        return max(0.0, min(1.0, min(deadlines) - time.monotonic()))

    def _install_signals(self) -> dict[int, Any]:
        previous = self._trap_signals()
        previous[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, lambda _s, _f: None)
        signal.set_wakeup_fd(self._wakeup_w.fileno(), warn_on_full_buffer=False)
        return previous

    def _drain_wakeups(self) -> None:
        try:
            while self._wakeup_r.recv(4096):
                pass
        except BlockingIOError:
            pass

    def _fork(self, spec: RoleSpec) -> None:
        supervisor_pid = os.getpid()
        # Stop signals wait (blocked) until the child has its own handlers: one arriving in between would run
        # the supervisor's handler, inherited, on the child's copy of the supervisor, and be lost (a group-wide
        # Ctrl-C at a child's first milliseconds left it running until the supervisor killed it).
        previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            pid = os.fork()
        except BaseException:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
            raise
        if pid:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
            self.children[pid] = spec
            self._starting[pid] = time.monotonic()
            return
        code = 1
        try:
            runner: Runner | None = None
            stop_before_start = False

            def stop(_signum: int, _frame: Any) -> None:
                nonlocal stop_before_start
                if runner is None:
                    stop_before_start = True
                else:
                    runner.stop()

            signal.set_wakeup_fd(-1)
            self._wakeup_r.close()
            self._wakeup_w.close()
            signal.signal(signal.SIGTERM, stop)
            signal.signal(signal.SIGINT, stop)
            signal.signal(signal.SIGQUIT, lambda _s, _f: os._exit(0))
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
            role = spec.build(self.child_storage, self.config)
            runner = Runner(role, self.child_storage, heartbeat_interval=self.config.process_heartbeat_interval,
                            shutdown_timeout=self.config.shutdown_timeout, supervisor_id=self.process_id,
                            supervisor_pid=supervisor_pid, clock=self.clock)
            if stop_before_start:
                runner.stop()  # it still registers and deregisters, so the supervisor sees a clean exit
            _set_title(f"solidstack-{spec.kind}: {getattr(role, 'title', role.name)}")
            runner.run()
            code = 0
        except BaseException:
            log.exception("%s process crashed", spec.kind)
        finally:
            logging.shutdown()
            os._exit(code)

    def _fork_due(self) -> None:
        """Start the restarts whose backoff has passed."""
        now = time.monotonic()
        due = [spec for when, spec in self._pending if when <= now]
        self._pending = [(when, spec) for when, spec in self._pending if when > now]
        for spec in due:
            self._fork(spec)

    def _reap(self, *, replace: bool) -> list[int]:
        """Collect children that exited; hand back their jobs; start replacements if ``replace``."""
        reaped = []
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            spec = self.children.pop(pid, None)
            if spec is None:
                continue
            reaped.append(pid)
            self._after_exit(pid, spec, status, replace)
        return reaped

    def _child_row(self, pid: int) -> Any:
        """The row a child of this supervisor registered (under any of the supervisor's own row ids)."""
        for supervisor_id in self._ids:
            row = self.storage.db.query_one(self.storage.sql["process_by_pid"],
                                            {"supervisor_id": supervisor_id, "pid": pid})
            if row is not None:
                return row
        return None

    def _watch_starts(self) -> None:
        """Kill a child that has not registered within ``process_alive_threshold``; it is then replaced.

        Such a child is as dead as one whose heartbeat stopped, but nothing else would notice it: it has no
        row to prune and ``waitpid`` sees it alive (one blocked for good on a lock copied locked by the fork
        would, with a single worker configured, have left every job waiting).
        """
        now = time.monotonic()
        for pid, forked_at in list(self._starting.items()):
            spec = self.children.get(pid)
            if spec is None:
                del self._starting[pid]
                continue
            if pid in self._start_killed:
                continue
            try:
                row = self._child_row(pid)
            except DatabaseUnavailable as exc:
                outage.unavailable(exc, "supervisor")
                return
            except Exception:
                log.exception("cannot check whether %s process %d has started", spec.kind, pid)
                return
            if row is not None:
                del self._starting[pid]
                self.restarts.started(spec)
            elif now - forked_at >= self.config.process_alive_threshold:
                self._start_killed.add(pid)
                log.error("%s process %d did not start within %.0f s (process_alive_threshold); killing it",
                          spec.kind, pid, self.config.process_alive_threshold)
                _signal(pid, signal.SIGKILL)

    def _maintain(self, now: float) -> None:
        # First, with reads only: a hung child may be what keeps the writes below from going through.
        try:
            self._watch_heartbeats(now)
        except DatabaseUnavailable as exc:
            outage.unavailable(exc, "supervisor")
        except Exception:
            log.exception("cannot check the heartbeats of the supervised processes")
        super()._maintain(now)
        for row_id, died, reason in list(self._unreleased):
            self._unreleased.remove((row_id, died, reason))
            self._hand_back(row_id, died, reason)

    def _watch_heartbeats(self, now: float) -> None:
        """Stop a child whose heartbeat is older than ``process_alive_threshold``: it is hung, and as dead.

        Nobody else prunes it while this supervisor is alive (see ``liveness.py``), and only here is it certain
        when it is gone: TERM, KILL after ``HUNG_KILL_GRACE``; ``waitpid`` then hands its jobs back (a death
        counted, unless TERM let it stop cleanly) and a new child is forked.
        """
        cutoff = now - self.config.process_alive_threshold
        for row in self.storage.processes():
            pid = row["pid"]
            # An unreaped child keeps its pid: a row of ours with that pid is that child.
            # When its own heartbeat failed too, the database was held and a stale heartbeat proves nothing: the
            # other children were waiting for the holder (a stopped child is handled by _watch_stopped).
            if (self._trust_heartbeats(now) and row["supervisor_id"] in self._ids and pid in self.children
                    and pid not in self._killing and row["last_heartbeat_at"] < cutoff):
                log.error("%s process %d has not sent a heartbeat for %.0f s (process_alive_threshold %g s): it is "
                          "hung; stopping it (TERM, then KILL after %g s)", self.children[pid].kind, pid,
                          now - row["last_heartbeat_at"], self.config.process_alive_threshold, HUNG_KILL_GRACE)
                _signal(pid, signal.SIGTERM)
                self._killing[pid] = time.monotonic() + HUNG_KILL_GRACE

    def _watch_stopped(self) -> None:
        """Kill a child stopped for ``process_alive_threshold``, without asking the database.

        A child stopped inside a write transaction holds the database: nobody's heartbeat gets written, so
        heartbeats cannot tell who is hung. The process state can.
        """
        now = time.monotonic()
        for pid in list(self._stopped_since):
            if pid not in self.children:
                del self._stopped_since[pid]
        for pid, spec in self.children.items():
            if not stopped(pid):
                self._stopped_since.pop(pid, None)
            elif pid in self._killing:
                continue  # found hung by its heartbeat already: KILL follows TERM
            elif now - self._stopped_since.setdefault(pid, now) >= self.config.process_alive_threshold:
                del self._stopped_since[pid]
                log.error("%s process %d has been stopped for %.0f s (process_alive_threshold): killing it",
                          spec.kind, pid, self.config.process_alive_threshold)
                _signal(pid, signal.SIGKILL)
                self._killing[pid] = float("inf")  # (until reaped: no TERM for a stale heartbeat meanwhile)

    def _kill_hung(self) -> None:
        now = time.monotonic()
        for pid, deadline in list(self._killing.items()):
            if pid not in self.children:
                del self._killing[pid]
            elif now >= deadline:
                self._killing[pid] = float("inf")  # (until reaped: no second TERM meanwhile)
                log.error("%s process %d did not stop after TERM; killing it", self.children[pid].kind, pid)
                _signal(pid, signal.SIGKILL)

    def _after_exit(self, pid: int, spec: RoleSpec, status: int, replace: bool) -> None:
        unregistered = pid in self._starting
        self._starting.pop(pid, None)
        self._start_killed.discard(pid)
        self._killing.pop(pid, None)
        clean = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        if os.WIFSIGNALED(status):
            how = f"was killed by signal {os.WTERMSIG(status)}"
        else:
            how = f"exited with status {os.WEXITSTATUS(status)}"
        row = self._child_row(pid)
        failed_start = unregistered and row is None  # (a row: it started; the last check had not seen it yet)
        if row is not None:
            # A clean exit deregisters itself; a row left behind means the child died with work in hand.
            self._hand_back(row["id"], not clean and self._stop_mode is None, f"{spec.kind} process {pid} {how}")
        if not replace:
            return
        if failed_start and not clean:
            failures, wait = self.restarts.failed(spec)
            if wait is None:
                self._give_up(spec, failures, how)
                return
            # One line per step of the backoff: a crash loop logs a handful of lines a minute, not thousands.
            log.error("%s process %d %s before it started (%d failed start(s) in a row); starting another in "
                      "%g s", spec.kind, pid, how, failures, wait)
            self._pending.append((time.monotonic() + wait, spec))
            return
        if not clean:
            log.error("%s process %d %s; starting a new one", spec.kind, pid, how)
        self._fork(spec)

    def _hand_back(self, row_id: int, died: bool, reason: str) -> None:
        """Deregister the row of a child that exited, handing back its jobs (later, if the database is held)."""
        try:
            again, failed = self.storage.deregister_process(row_id, self.clock(), died=died, reason=reason,
                                                            max_deaths=self.config.max_process_deaths)
        except Exception as exc:
            if isinstance(exc, DatabaseUnavailable):
                outage.unavailable(exc, "supervisor")
            else:
                log.error("%s: cannot hand back its jobs yet (%s); trying again", reason, exc)
            self._unreleased.append((row_id, died, reason))
            return
        if again or failed:
            log.warning("%s: %d job(s) back to their queues, %d failed", reason, len(again), len(failed))

    def _stop_children(self, signum: int, grace: float) -> None:
        self._pending.clear()
        for pid in list(self.children):
            _signal(pid, signum)
        deadline = time.monotonic() + grace
        while self.children and time.monotonic() < deadline:
            self._reap(replace=False)
            self._heartbeat()  # waiting up to shutdown_timeout for its children must not look like a hang
            time.sleep(0.02)
        for pid in list(self.children):
            log.warning("process %d did not stop in time; killing it", pid)
            _signal(pid, signal.SIGKILL)
        while self.children:
            pid, status = os.waitpid(-1, 0)
            spec = self.children.pop(pid, None)
            if spec is not None:
                self._after_exit(pid, spec, status, replace=False)
