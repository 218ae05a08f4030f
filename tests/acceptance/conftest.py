"""Acceptance fixtures: an app folder with job classes, and the real `solidstack jobs` as a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import solidstack
from solidstack.tasks import install, migrate_all

JOBS_PY = '''
import os, time
from solidstack.queue import Job

RESULTS = os.path.join(os.path.dirname(__file__), "..", "results.log")


def record(line):
    fd = os.open(RESULTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\\n").encode())
    finally:
        os.close(fd)


class CountJob(Job):
    def perform(self, n):
        record(f"count {n} {os.getpid()}")


class HostJob(Job):
    """Records where it ran: its host (SOLIDSTACK_HOSTNAME, a simulated machine), its pid, and when."""

    def perform(self, n, seconds=0):
        host = os.environ.get("SOLIDSTACK_HOSTNAME", "-")
        record(f"start {n} {os.getpid()} {host} {time.time():.3f}")
        if seconds:
            time.sleep(seconds)
        record(f"done {n} {os.getpid()} {host} {time.time():.3f}")


class SlowJob(Job):
    def perform(self, n, seconds):
        record(f"start {n} {os.getpid()}")
        time.sleep(seconds)
        record(f"done {n} {os.getpid()}")
'''

QUEUE_YML = """
test:
  shutdown_timeout: {shutdown_timeout}
  process_heartbeat_interval: 1
  dispatchers:
    - polling_interval: 0.05
  workers:
    - queues: "*"
      threads: 3
      processes: {processes}
      polling_interval: 0.02
"""


class JobsApp:
    """An app folder on disk, migrated, with helpers to enqueue and to read what the jobs recorded."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.results = root / "results.log"
        self.procs: list[subprocess.Popen[str]] = []

    def configure(self, *, processes: int = 2, shutdown_timeout: float = 5) -> None:
        (self.root / "config" / "queue.yml").write_text(
            QUEUE_YML.format(processes=processes, shutdown_timeout=shutdown_timeout))

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SOLIDSTACK_", "SOLID_QUEUE_"))}
        env.update(SOLIDSTACK_ENV="test", PYTHONUNBUFFERED="1", PYTHONPATH=str(self.root))
        return env

    def start(self, *args: str, command: list[str] | None = None,
              env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """Start the supervisor; its output goes to a file (a pipe nobody reads would fill up and block it).
        ``env`` adds variables (``SOLIDSTACK_HOSTNAME``, say, for a simulated host)."""
        cmd = command or [sys.executable, "-m", "solidstack", "jobs", *args]
        log = open(self.root / f"supervisor-{len(self.procs)}.log", "w")  # noqa: SIM115 - closed in output()
        proc = subprocess.Popen(cmd, cwd=self.root, env={**self.env(), **(env or {})}, stdout=log,
                                stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
        log.close()
        proc.log_path = log.name  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    @staticmethod
    def output(proc: subprocess.Popen[str]) -> str:
        return Path(proc.log_path).read_text()  # type: ignore[attr-defined]

    def lines(self, prefix: str = "") -> list[list[str]]:
        if not self.results.exists():
            return []
        return [line.split() for line in self.results.read_text().splitlines() if line.startswith(prefix)]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 30, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.02)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; results: {self.lines()[-20:]}")

    def stop(self, proc: subprocess.Popen[str], signum: int = signal.SIGTERM, timeout: float = 20) -> tuple[int, str]:
        proc.send_signal(signum)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise AssertionError(f"process did not stop within {timeout}s:\n{self.output(proc)}") from None
        return proc.returncode, self.output(proc)


@pytest.fixture
def jobs_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[JobsApp]:
    yield from _jobs_app(tmp_path, monkeypatch)


@pytest.fixture
def pg_jobs_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[JobsApp]:
    """The same app with its queue on a fresh PostgreSQL database (skipped where no server answers)."""
    from engines import postgres_database, postgres_database_yml

    with postgres_database(create=False) as url:  # `solidstack db migrate` creates it
        yield from _jobs_app(tmp_path, monkeypatch, database_yml=postgres_database_yml(url))
        solidstack._reset_parts()  # close the pools before the database is dropped


@pytest.fixture
def make_jobs_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], JobsApp]]:
    """Build the app with a database.yml of the test's choosing (a server it started, say); cleaned up after."""
    made: list[Iterator[JobsApp]] = []

    def make(database_yml: str) -> JobsApp:
        gen = _jobs_app(tmp_path, monkeypatch, database_yml=database_yml)
        made.append(gen)
        return next(gen)

    yield make
    for gen in made:
        for _ in gen:
            pass


def _jobs_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_yml: str | None = None) -> Iterator[JobsApp]:
    root = tmp_path / "app"
    root.mkdir()
    if database_yml is not None:
        (root / "config").mkdir()
        (root / "config" / "database.yml").write_text(database_yml)
    install(root, "postgresql" if database_yml else "sqlite3")
    (root / "app").mkdir()
    (root / "app" / "__init__.py").write_text("")
    (root / "app" / "jobs.py").write_text(textwrap.dedent(JOBS_PY))
    (root / "config" / "environment.py").write_text("import app.jobs  # noqa: F401\n")
    app = JobsApp(root)
    app.configure()
    monkeypatch.setenv("SOLIDSTACK_ENV", "test")
    monkeypatch.syspath_prepend(str(root))
    migrate_all(solidstack.configure(root, "test"))
    yield app
    for proc in app.procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
