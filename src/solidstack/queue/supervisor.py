"""The supervisor: starts the processes ``queue.yml`` asks for, replaces those that die, stops them all.

Two modes, as in Solid Queue: ``fork`` runs each worker and dispatcher in a child process; ``async`` runs them
as threads of the current process (for running jobs inside a web server). Either way the supervisor heartbeats,
prunes processes that died elsewhere and hands their claimed jobs back to their queues.

Signals (fork mode, or async mode when it owns the main thread): TERM and INT stop gracefully (no new claims,
running jobs get ``shutdown_timeout`` to finish, then go back to ready), QUIT stops at once.
"""

from __future__ import annotations

import logging
import os
import secrets
import selectors
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import events
from .config import DispatcherConfig, QueueConfig, WorkerConfig
from .dispatcher import Dispatcher
from .runner import Role, Runner
from .storage import QueueStorage
from .worker import Worker

log = logging.getLogger("solidstack.queue")


#: The signals that stop a process; blocked around each fork (see ``ForkSupervisor._fork``).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)


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
        self._stop_mode: str | None = None  # "graceful" or "immediate"
        self._last_heartbeat = 0.0
        self._last_maintenance = 0.0

    def _start(self, mode: str) -> None:
        now = self.clock()
        self.process_id = self.storage.register_process(
            self.kind, self.name, now, metadata={"mode": mode, "hostname": socket.gethostname()}
        )
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
                                                             exclude=self._own_process_ids()):
                log.warning("pruned dead process %s (pid %s on %s)", process["name"], process["pid"],
                            process["hostname"])
                events.instrument("prune", name=process["name"], pid=process["pid"], hostname=process["hostname"])
            again, failed = self.storage.release_orphaned_claims(now, self.config.max_process_deaths)
            if again or failed:
                log.warning("released orphaned claims: %d to run again, %d failed", len(again), len(failed))
        except Exception:
            log.exception("supervisor maintenance failed")

    def _own_process_ids(self) -> set[int]:
        ids = {self.process_id} if self.process_id is not None else set()
        return ids | {row["id"] for row in self.storage.processes() if row["supervisor_id"] == self.process_id}

    def _tick(self) -> None:
        now = self.clock()
        if now - self._last_heartbeat >= self.config.process_heartbeat_interval:
            self._last_heartbeat = now
            if self.process_id is not None and not self.storage.heartbeat(self.process_id, now):
                log.error("supervisor row was pruned as dead; re-registering")
                self.process_id = self.storage.register_process(self.kind, self.name, now)
        if now - self._last_maintenance >= min(self.config.process_heartbeat_interval,
                                               self.config.process_alive_threshold):
            self._last_maintenance = now
            self._maintain(now)

    def _trap_signals(self) -> dict[int, Any]:
        """TERM and INT stop gracefully, QUIT at once; returns the handlers to put back."""
        previous = {}
        for signum, immediate in {signal.SIGTERM: False, signal.SIGINT: False, signal.SIGQUIT: True}.items():
            previous[signum] = signal.signal(
                signum, lambda _s, _f, immediate=immediate: self.request_stop(immediate=immediate))
        return previous

    def _finish(self, previous_handlers: dict[int, Any]) -> None:
        """Deregister (handing back whatever the supervised processes still hold) and restore signal handlers."""
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)
        if self.process_id is None:
            return  # it never started (the database could not be opened): nothing to hand back or announce
        self.storage.deregister_process(self.process_id, self.clock())
        log.info("Supervisor %s stopped", self.name)
        events.process_stopped(self, process_id=self.process_id, pid=os.getpid())

    def request_stop(self, immediate: bool = False) -> None:
        """Stop gracefully (or at once); safe to call from a signal handler or another thread."""
        if immediate:
            self._stop_mode = "immediate"
        elif self._stop_mode is None:
            self._stop_mode = "graceful"


class ForkSupervisor(Supervisor):
    """Runs each role in a forked child process."""

    def __init__(self, storage: QueueStorage, config: QueueConfig, **kwargs: Any) -> None:
        super().__init__(storage, config, **kwargs)
        self.children: dict[int, RoleSpec] = {}
        #: Children not yet registered, with when each was forked (``time.monotonic()``).
        self._starting: dict[int, float] = {}
        self._wakeup_r, self._wakeup_w = socket.socketpair()
        self._wakeup_r.setblocking(False)
        self._wakeup_w.setblocking(False)

    def run(self) -> int:
        """Start everything and supervise until a signal stops it; returns the exit status (0)."""
        previous = self._install_signals()
        try:
            self._start("fork")
            _set_title(f"solidstack-supervisor: supervising {len(self.specs)} process(es)")
            for spec in self.specs:
                self._fork(spec)
            selector = selectors.DefaultSelector()
            selector.register(self._wakeup_r, selectors.EVENT_READ)
            while self._stop_mode is None:
                selector.select(timeout=1.0)
                self._drain_wakeups()
                self._reap(replace=self._stop_mode is None)
                self._watch_starts()
                self._tick()
            selector.close()
            if self._stop_mode == "immediate":
                self._stop_children(signal.SIGQUIT, grace=1.0)
            else:
                self._stop_children(signal.SIGTERM, grace=self.config.shutdown_timeout + 2.0)
            return 0
        finally:
            signal.set_wakeup_fd(-1)
            self._finish(previous)

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
            role = spec.build(self.storage, self.config)
            runner = Runner(role, self.storage, heartbeat_interval=self.config.process_heartbeat_interval,
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

    def _watch_starts(self) -> None:
        """Kill a child that has not registered within ``process_alive_threshold``; it is then replaced.

        Such a child is as dead as one whose heartbeat stopped, but nothing else would notice it: it has no
        row to prune and ``waitpid`` sees it alive (one blocked for good on a lock copied locked by the fork
        would, with a single worker configured, have left every job waiting).
        """
        if not self._starting:
            return
        now = time.monotonic()
        for pid, forked_at in list(self._starting.items()):
            spec = self.children.get(pid)
            if spec is None:
                del self._starting[pid]
                continue
            try:
                row = self.storage.db.query_one(self.storage.sql["process_by_pid"],
                                                {"supervisor_id": self.process_id, "pid": pid})
            except Exception:
                log.exception("cannot check whether %s process %d has started", spec.kind, pid)
                return
            if row is not None:
                del self._starting[pid]
            elif now - forked_at >= self.config.process_alive_threshold:
                del self._starting[pid]
                log.error("%s process %d did not start within %.0f s (process_alive_threshold); killing it",
                          spec.kind, pid, self.config.process_alive_threshold)
                _signal(pid, signal.SIGKILL)

    def _after_exit(self, pid: int, spec: RoleSpec, status: int, replace: bool) -> None:
        self._starting.pop(pid, None)
        clean = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        if os.WIFSIGNALED(status):
            how = f"was killed by signal {os.WTERMSIG(status)}"
        else:
            how = f"exited with status {os.WEXITSTATUS(status)}"
        row = self.storage.db.query_one(self.storage.sql["process_by_pid"],
                                        {"supervisor_id": self.process_id, "pid": pid})
        if row is not None:
            # A clean exit deregisters itself; a row left behind means the child died with work in hand.
            again, failed = self.storage.deregister_process(
                row["id"], self.clock(), died=not clean and self._stop_mode is None,
                reason=f"{spec.kind} process {pid} {how}", max_deaths=self.config.max_process_deaths)
            if again or failed:
                log.warning("%s process %d %s: %d job(s) back to their queues, %d failed", spec.kind, pid, how,
                            len(again), len(failed))
        if replace:
            if not clean:
                log.error("%s process %d %s; starting a new one", spec.kind, pid, how)
            self._fork(spec)

    def _stop_children(self, signum: int, grace: float) -> None:
        for pid in list(self.children):
            _signal(pid, signum)
        deadline = time.monotonic() + grace
        while self.children and time.monotonic() < deadline:
            self._reap(replace=False)
            time.sleep(0.02)
        for pid in list(self.children):
            log.warning("process %d did not stop in time; killing it", pid)
            _signal(pid, signal.SIGKILL)
        while self.children:
            pid, status = os.waitpid(-1, 0)
            spec = self.children.pop(pid, None)
            if spec is not None:
                self._after_exit(pid, spec, status, replace=False)


class AsyncSupervisor(Supervisor):
    """Runs each role in a thread of this process: for a web server's lifespan, or ``--mode async``."""

    def __init__(self, storage: QueueStorage, config: QueueConfig, **kwargs: Any) -> None:
        super().__init__(storage, config, **kwargs)
        self.runners: dict[threading.Thread, tuple[RoleSpec, Runner]] = {}
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

    def run(self, *, handle_signals: bool = True) -> int:
        """Supervise in this thread until :meth:`request_stop` (or TERM/INT/QUIT when ``handle_signals``)."""
        previous = self._trap_signals() if handle_signals else {}
        try:
            self._start("async")
            for spec in self.specs:
                self._spawn(spec)
            while self._stop_mode is None:
                time.sleep(0.05)
                for thread, (spec, runner) in list(self.runners.items()):
                    if not thread.is_alive() and self._stop_mode is None:
                        log.error("%s thread %s stopped unexpectedly; starting a new one", spec.kind, runner.role.name)
                        del self.runners[thread]
                        self._spawn(spec)
                self._tick()
            for _spec, runner in self.runners.values():
                runner.stop()
            grace = 0.5 if self._stop_mode == "immediate" else self.config.shutdown_timeout + 1.0
            deadline = time.monotonic() + grace
            for thread in self.runners:
                thread.join(max(0.0, deadline - time.monotonic()))
            return 0
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
