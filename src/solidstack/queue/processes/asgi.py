"""Jobs inside the web server: the supervisor in an ASGI app's lifespan (Solid Queue's Puma plugin).

For a single-server deployment the web process can run the workers, dispatcher and scheduler itself, so
there is no ``bin/jobs`` to keep alive. Switched on by ``SOLID_QUEUE_IN_PUMA`` (the seed's variable) or
``SOLIDSTACK_JOBS_IN_PROCESS``::

    from starlette.applications import Starlette
    from solidstack.queue.processes.asgi import jobs_lifespan

    app = Starlette(routes=..., lifespan=jobs_lifespan())   # does nothing unless the switch is on

An :class:`AsyncSupervisor` runs in a thread of the server process, watched by :class:`InProcessJobs`:
stopping the server stops it (running jobs get ``shutdown_timeout``), and if it dies it is started again; when
it keeps dying (``max_restarts`` within ``restart_window`` seconds) the server is stopped with SIGTERM and a
CRITICAL log line, so a web app never runs on silently without its jobs. Under uvicorn the process then ends
by that SIGTERM (a non-zero status), and a process manager restarts it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from solidstack.config import App, current_app
from solidstack.queue.processes.supervisor import AsyncSupervisor

log = logging.getLogger("solidstack.queue")

#: Environment variables that switch jobs on inside the web server (either is enough).
SWITCHES = ("SOLIDSTACK_JOBS_IN_PROCESS", "SOLID_QUEUE_IN_PUMA")
_FALSE = {"", "0", "false", "no", "off"}


def in_process_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``SOLIDSTACK_JOBS_IN_PROCESS`` or ``SOLID_QUEUE_IN_PUMA`` asks for jobs in the web server."""
    environ = os.environ if environ is None else environ
    return any(environ.get(name, "").strip().lower() not in _FALSE for name in SWITCHES)


def build_supervisor(app: App | None = None, *, skip_recurring: bool = False) -> AsyncSupervisor:
    """An :class:`AsyncSupervisor` for ``app`` (default: the current app) with its queue.yml and recurring.yml.

    The app's job classes must be imported already (the web app imports them). Configuration errors raise
    here, so a server with a broken queue.yml or recurring.yml fails at start-up.
    """
    from solidstack.queue.adapters import storage_for
    from solidstack.queue.config import load_queue_config
    from solidstack.queue.processes.scheduler import scheduler_roles

    app = app or current_app()
    config = load_queue_config(app)
    return AsyncSupervisor(storage_for(app, config), config,
                           extra_roles=scheduler_roles(app, skip=skip_recurring, config=config))


def _stop_this_process() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


class InProcessJobs:
    """Runs a supervisor in a thread, starts a new one when it dies, and gives up loudly when that repeats.

    ``supervisor_factory`` builds each supervisor (default: :func:`build_supervisor` for the current app);
    ``on_give_up`` is called once when it keeps dying (default: SIGTERM to this process).
    """

    def __init__(self, *, supervisor_factory: Callable[[], AsyncSupervisor] | None = None,
                 max_restarts: int = 3, restart_window: float = 60.0, restart_delay: float = 1.0,
                 on_give_up: Callable[[], None] | None = None, app: App | None = None,
                 skip_recurring: bool = False) -> None:
        self.factory = supervisor_factory or (lambda: build_supervisor(app, skip_recurring=skip_recurring))
        self.max_restarts = max_restarts
        self.restart_window = restart_window
        self.restart_delay = restart_delay
        self.on_give_up = on_give_up or _stop_this_process
        #: How many times a supervisor was started again after dying.
        self.restarts = 0
        #: True once it gave up (the supervisor kept dying).
        self.gave_up = False
        self.supervisor: AsyncSupervisor | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self.gave_up

    def start(self) -> None:
        """Build the first supervisor (raising on configuration errors) and run it in a thread."""
        first = self.factory()
        self.supervisor = first
        self._thread = threading.Thread(target=self._watch, args=(first,), name="solidstack-jobs", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the supervisor gracefully and wait for it (default: its ``shutdown_timeout`` + 5 s)."""
        self._stopping.set()
        with self._lock:
            supervisor = self.supervisor
        if supervisor is not None:
            supervisor.request_stop()
            if timeout is None:
                timeout = supervisor.config.shutdown_timeout + 5.0
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("in-process job supervisor did not stop within %.1f s", timeout or 0)

    def _watch(self, supervisor: AsyncSupervisor) -> None:
        deaths: list[float] = []
        while True:
            reason = self._run(supervisor)
            if self._stopping.is_set():
                return
            now = time.monotonic()
            deaths = [t for t in deaths if now - t < self.restart_window] + [now]
            if len(deaths) > self.max_restarts:
                self.gave_up = True
                log.critical("in-process job supervisor died %d times in %.0f s (%s); stopping the web server "
                             "rather than running without jobs", len(deaths), self.restart_window, reason)
                self.on_give_up()
                return
            log.error("in-process job supervisor stopped unexpectedly (%s); starting a new one", reason)
            if self._stopping.wait(self.restart_delay):
                return
            try:
                replacement = self.factory()
            except Exception as exc:  # a database that went away: counts as another death
                log.exception("cannot build a new job supervisor")
                supervisor = _Dead(exc)  # type: ignore[assignment]
                continue
            with self._lock:
                if self._stopping.is_set():
                    return
                self.supervisor = supervisor = replacement
            self.restarts += 1

    def _run(self, supervisor: AsyncSupervisor) -> str:
        """Run one supervisor to its end; return why it ended."""
        if self._stopping.is_set():
            return "stopped"
        try:
            supervisor.run(handle_signals=False)
        except Exception as exc:
            # Caught here rather than left to threading's hook: the watcher decides what happens next.
            log.exception("in-process job supervisor crashed")
            _stop_orphans(supervisor)
            return f"{type(exc).__name__}: {exc}"
        return "it returned without being asked to stop"


def _stop_orphans(supervisor: AsyncSupervisor) -> None:
    """A supervisor that crashed leaves its role threads running: stop them before a new one starts its own."""
    runners = getattr(supervisor, "runners", {})
    for _spec, runner in list(runners.values()):
        runner.stop()
    deadline = time.monotonic() + supervisor.config.shutdown_timeout + 1.0 if runners else 0.0
    for thread in list(runners):
        thread.join(max(0.0, deadline - time.monotonic()))


class _Dead:
    """Stands for a supervisor that could not even be built: running it fails at once."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def run(self, *, handle_signals: bool = False) -> int:
        raise self.exc

    def request_stop(self, immediate: bool = False) -> None:
        """Nothing is running."""


def jobs_lifespan(*, enabled: bool | None = None, inner: Callable[[Any], AbstractAsyncContextManager[Any]]
                  | None = None, **options: Any) -> Callable[[Any], AbstractAsyncContextManager[Any]]:
    """A lifespan for Starlette (``Starlette(lifespan=jobs_lifespan())``) or FastAPI that runs the jobs.

    ``enabled`` defaults to :func:`in_process_enabled`, read when the server starts. ``inner`` is the app's
    own lifespan, entered inside this one. ``options`` go to :class:`InProcessJobs`. The running
    :class:`InProcessJobs` is put in the lifespan state as ``jobs`` (``request.state.jobs``).
    """

    @asynccontextmanager
    async def lifespan(asgi_app: Any) -> AsyncIterator[Any]:
        on = in_process_enabled() if enabled is None else enabled
        jobs = InProcessJobs(**options) if on else None
        if jobs is not None:
            await asyncio.to_thread(jobs.start)
            log.info("jobs run in this web server process (in-process mode)")
        try:
            if inner is None:
                yield {"jobs": jobs}
            else:
                async with inner(asgi_app) as state:
                    yield {**(state or {}), "jobs": jobs}
        finally:
            if jobs is not None:
                await asyncio.to_thread(jobs.stop)

    return lifespan


__all__ = ["SWITCHES", "InProcessJobs", "build_supervisor", "in_process_enabled", "jobs_lifespan"]
