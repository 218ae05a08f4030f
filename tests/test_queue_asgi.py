"""Jobs inside the web server: the supervisor in an ASGI lifespan, restarted when it dies, loud when it keeps dying."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from solidstack.config import App
from solidstack.queue import AsyncSupervisor, Job, queue_storage
from solidstack.queue.processes.asgi import InProcessJobs, build_supervisor, in_process_enabled, jobs_lifespan
from waiting import wait_for

DONE: list[str] = []


class AsgiLifespanProbeJob(Job):
    def perform(self, value: str) -> None:
        DONE.append(value)


def role_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(("solidstack-worker", "solidstack-dispatcher"))]


def test_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not in_process_enabled({})
    assert in_process_enabled({"SOLID_QUEUE_IN_PUMA": "1"})
    assert in_process_enabled({"SOLID_QUEUE_IN_PUMA": "true"})
    assert in_process_enabled({"SOLIDSTACK_JOBS_IN_PROCESS": "yes"})
    assert not in_process_enabled({"SOLIDSTACK_JOBS_IN_PROCESS": "0", "SOLID_QUEUE_IN_PUMA": "false"})
    monkeypatch.setenv("SOLID_QUEUE_IN_PUMA", "1")
    assert in_process_enabled()


def _web(**options: Any) -> Starlette:
    def enqueue(request: Request) -> JSONResponse:
        AsgiLifespanProbeJob.perform_later(request.query_params["v"])
        return JSONResponse({"jobs": request.state.jobs is not None})

    return Starlette(routes=[Route("/enqueue", enqueue)], lifespan=jobs_lifespan(**options))


def test_the_lifespan_runs_jobs_and_stops_the_supervisor(app: App) -> None:
    DONE.clear()
    with TestClient(_web(enabled=True)) as client:
        assert client.get("/enqueue", params={"v": "a"}).json() == {"jobs": True}
        assert wait_for(lambda: DONE == ["a"])
        # The roles start as threads, each registering when it starts: the worker may run the job first.
        assert wait_for(lambda: {"Supervisor", "Worker", "Dispatcher"}
                        <= {row["kind"] for row in queue_storage().processes()}), queue_storage().processes()
    # Stopping the server stopped the supervisor and its threads, and deregistered them.
    assert queue_storage().processes() == []
    assert wait_for(lambda: not role_threads(), 5)


def test_the_switch_is_read_at_start_up(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    DONE.clear()
    with TestClient(_web()) as client:
        assert client.get("/enqueue", params={"v": "b"}).json() == {"jobs": False}
        time.sleep(0.3)
        assert DONE == [] and queue_storage().processes() == []
    monkeypatch.setenv("SOLIDSTACK_JOBS_IN_PROCESS", "1")
    with TestClient(_web()) as client:
        client.get("/enqueue", params={"v": "c"})
        assert wait_for(lambda: "b" in DONE and "c" in DONE)


class _CrashingSupervisor(AsyncSupervisor):
    """A real supervisor whose upkeep raises after it started its workers (a database that went away)."""

    def _tick(self) -> None:
        raise sqlite3.OperationalError("no such table: solidstack_processes")


def test_a_supervisor_that_dies_is_replaced(app: App, caplog: pytest.LogCaptureFixture) -> None:
    DONE.clear()
    built: list[AsyncSupervisor] = []

    def factory() -> AsyncSupervisor:
        supervisor = build_supervisor()
        if not built:
            supervisor = _CrashingSupervisor(supervisor.storage, supervisor.config)
        built.append(supervisor)
        return supervisor

    jobs = InProcessJobs(supervisor_factory=factory, restart_delay=0.05)
    with caplog.at_level(logging.INFO, logger="solidstack.queue"):
        jobs.start()
        try:
            assert wait_for(lambda: jobs.restarts == 1)
            AsgiLifespanProbeJob.perform_later("after the restart")
            assert wait_for(lambda: DONE == ["after the restart"])
            assert jobs.running and not jobs.gave_up
        finally:
            jobs.stop()
    assert "stopped unexpectedly" in caplog.text
    assert len(built) == 2
    # The crashed supervisor's workers were stopped, not left running beside the new ones.
    assert wait_for(lambda: not role_threads(), 5)


def test_a_supervisor_that_keeps_dying_gives_up_loudly(app: App, caplog: pytest.LogCaptureFixture) -> None:
    gave_up = threading.Event()

    def factory() -> AsyncSupervisor:
        supervisor = build_supervisor()
        return _CrashingSupervisor(supervisor.storage, supervisor.config)

    jobs = InProcessJobs(supervisor_factory=factory, max_restarts=2, restart_delay=0.01, on_give_up=gave_up.set)
    with caplog.at_level(logging.INFO, logger="solidstack.queue"):
        jobs.start()
        assert gave_up.wait(10)
        jobs.stop()
    assert jobs.gave_up and not jobs.running and jobs.restarts == 2
    assert any(r.levelno == logging.CRITICAL and "stopping the web server" in r.getMessage() for r in caplog.records)


SERVER = """
import logging, sys
import solidstack
from starlette.applications import Starlette
from solidstack.queue.processes.asgi import jobs_lifespan

logging.basicConfig(level=logging.INFO, stream=sys.stderr)
solidstack.configure(sys.argv[1], "test")
web = Starlette(lifespan=jobs_lifespan(restart_delay=0.1, max_restarts=2))
"""

QUEUE_YML = """
test:
  process_heartbeat_interval: 0.2
  shutdown_timeout: 1
  workers:
    - queues: "*"
      polling_interval: 0.1
"""


@pytest.mark.timeout(60)
def test_uvicorn_exits_when_the_jobs_cannot_run(app: App, tmp_path: Path) -> None:
    """A real uvicorn with SOLID_QUEUE_IN_PUMA: the queue database loses its tables; the server must not run on."""
    (app.root / "config" / "queue.yml").write_text(QUEUE_YML)
    (tmp_path / "inproc_server.py").write_text(SERVER)
    log_path = tmp_path / "server.log"
    env = {**os.environ, "SOLID_QUEUE_IN_PUMA": "1", "PYTHONPATH": str(tmp_path)}
    code = ("import sys, uvicorn, inproc_server; "
            "uvicorn.run(inproc_server.web, host='127.0.0.1', port=0, log_level='info')")
    with log_path.open("w") as out:
        server = subprocess.Popen([sys.executable, "-c", code, str(app.root)], stdout=out, stderr=subprocess.STDOUT,
                                  env=env, cwd=tmp_path)
    try:
        assert wait_for(lambda: "Application startup complete" in log_path.read_text(), 20), log_path.read_text()
        queue_db = app.database("queue").database
        with sqlite3.connect(queue_db) as conn:
            conn.execute("DROP TABLE solidstack_processes")
        assert server.wait(timeout=30) != 0
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGKILL)
            server.wait()
    output = log_path.read_text()
    assert "CRITICAL" in output and "stopping the web server" in output, output
    assert "Application shutdown complete" in output, output
