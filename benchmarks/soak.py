"""Chaos soak of the queue: the real `solidstack jobs` under load while workers and supervisors are killed.

Several supervisors (``--supervisors``) run on one queue database while jobs are enqueued in waves; every few
hundred milliseconds the soak does one of: ``kill -9`` of a worker, ``SIGSTOP`` of a worker (left stopped: the
system must find it hung and kill it), ``kill -9`` of a supervisor (restarted after up to 1.5 s, while its
orphaned workers still run jobs longer than that), ``SIGTERM`` of a supervisor (restarted once it has exited).
Then it lets every job finish, stops the supervisors, and reports:

- jobs lost: neither finished nor failed at the end (must be 0);
- jobs run twice while the first run was alive (must be 0): each run of a job holds an exclusive ``flock`` on a
  file of its own; the kernel drops it only when the process that holds it is gone (a stopped process keeps
  it), so a second run that starts while the first run's process lives cannot take it and records it;
- jobs left claimed and process rows left (must be 0);
- stopped workers that nobody killed (must be 0).

The database is SQLite by default; ``--database-yml FILE`` (or ``SOLIDSTACK_SOAK_DATABASE_YML``) is copied to
the app's ``config/database.yml``, whose ``test`` environment must have a ``queue`` entry (e.g. PostgreSQL once
its driver exists). Exit status 0 when every figure that must be 0 is 0.

    .venv/bin/python benchmarks/soak.py --seconds 60 --supervisors 3 --seed 1
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

#: The soak's job module, at the app's root (a name of its own: the host process may have imported an ``app``).
JOBS_MODULE = "solidstack_soak_jobs"
JOBS_PY = '''
import fcntl, os, time
from solidstack.queue import Job

ROOT = os.path.dirname(os.path.abspath(__file__))


def record(line):
    fd = os.open(os.path.join(ROOT, "runs.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\\n").encode())
    finally:
        os.close(fd)


class SoakJob(Job):
    def perform(self, n, seconds):
        fd = os.open(os.path.join(ROOT, "locks", str(n)), os.O_CREAT | os.O_RDWR, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                record(f"overlap {n} {os.getpid()} {time.time():.4f}")
            record(f"start {n} {os.getpid()} {time.time():.4f}")
            time.sleep(seconds)
            record(f"done {n} {os.getpid()} {time.time():.4f}")
        finally:
            os.close(fd)
'''

QUEUE_YML = """
test:
  shutdown_timeout: {shutdown_timeout}
  process_heartbeat_interval: {heartbeat}
  process_alive_threshold: {threshold}
  max_process_deaths: {max_deaths}
  dispatchers:
    - polling_interval: 0.1
  workers:
    - queues: "*"
      threads: 3
      processes: {processes}
      polling_interval: 0.05
"""


@dataclass
class Report:
    seconds: float
    supervisors: int
    seed: int
    database: str
    jobs: int = 0
    finished: int = 0
    failed: int = 0
    lost: int = 0
    runs: int = 0
    overlaps: int = 0
    claimed_left: int = 0
    processes_left: int = 0
    stopped_left: int = 0
    actions: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    locked_errors: int = 0
    drain_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.lost or self.overlaps or self.claimed_left or self.processes_left or self.stopped_left)


class Soak:
    def __init__(self, root: Path, *, supervisors: int, processes: int, seed: int, shutdown_timeout: float,
                 threshold: float, database_yml: Path | None) -> None:
        self.root = root
        self.rng = random.Random(seed)
        self.count = supervisors
        self.supervisors: list[subprocess.Popen[bytes]] = []
        self.restarts: list[float] = []  # when to start a supervisor again (time.monotonic())
        self.terminating: list[subprocess.Popen[bytes]] = []
        self.stopped: dict[int, int | None] = {}  # SIGSTOPped pid -> its start time
        self.actions: Counter[str] = Counter()
        self.logs = 0
        self.job_ids: list[int] = []
        self._prepare(processes, shutdown_timeout, threshold, database_yml)

    def _prepare(self, processes: int, shutdown_timeout: float, threshold: float, database_yml: Path | None) -> None:
        import solidstack
        from solidstack.tasks import install, migrate_all

        install(self.root)
        (self.root / f"{JOBS_MODULE}.py").write_text(JOBS_PY)
        (self.root / "locks").mkdir(exist_ok=True)
        (self.root / "config" / "environment.py").write_text(f"import {JOBS_MODULE}  # noqa: F401\n")
        (self.root / "config" / "queue.yml").write_text(QUEUE_YML.format(
            shutdown_timeout=shutdown_timeout, heartbeat=0.5, threshold=threshold, max_deaths=10,
            processes=processes))
        if database_yml is not None:
            shutil.copy(database_yml, self.root / "config" / "database.yml")
        os.environ["SOLIDSTACK_ENV"] = "test"
        sys.path.insert(0, str(self.root))
        migrate_all(solidstack.configure(self.root, "test"))

    # -- processes -------------------------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SOLIDSTACK_", "SOLID_QUEUE_"))}
        env.update(SOLIDSTACK_ENV="test", PYTHONPATH=str(self.root), PYTHONUNBUFFERED="1")
        return env

    def start_supervisor(self) -> None:
        self.logs += 1
        with open(self.root / f"supervisor-{self.logs}.log", "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "solidstack", "jobs", "--skip-recurring"], cwd=self.root,
                                    env=self._env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.supervisors.append(proc)

    def _rows(self, kind: str) -> list[dict]:
        from solidstack.queue import queue_storage

        try:
            return [row for row in queue_storage().processes() if row["kind"] == kind]
        except Exception:
            return []

    def _keep_supervisors(self) -> None:
        now = time.monotonic()
        for proc in [p for p in self.terminating if p.poll() is not None]:
            self.terminating.remove(proc)
            self.restarts.append(now)
        due = [when for when in self.restarts if when <= now]
        self.restarts = [when for when in self.restarts if when > now]
        for _ in due:
            self.start_supervisor()

    # -- chaos -----------------------------------------------------------------------------------------------

    def act(self) -> None:
        action = self.rng.choices(["kill_worker", "stop_worker", "kill_supervisor", "term_supervisor", "none"],
                                  weights=[35, 15, 20, 10, 20])[0]
        if action in ("kill_worker", "stop_worker"):
            from solidstack.queue.processes.liveness import start_time

            workers = [row for row in self._rows("Worker") if row["pid"] not in self.stopped]
            if not workers:
                return
            pid = self.rng.choice(workers)["pid"]
            started = start_time(pid)
            try:
                os.kill(pid, signal.SIGKILL if action == "kill_worker" else signal.SIGSTOP)
            except ProcessLookupError:
                return
            if action == "stop_worker":
                self.stopped[pid] = started
        elif action in ("kill_supervisor", "term_supervisor"):
            alive = [p for p in self.supervisors if p.poll() is None]
            if not alive:
                return
            proc = self.rng.choice(alive)
            self.supervisors.remove(proc)
            if action == "kill_supervisor":
                proc.kill()
                proc.wait()
                self.restarts.append(time.monotonic() + self.rng.uniform(0, 1.5))
            else:
                proc.terminate()
                self.terminating.append(proc)
        self.actions[action] += 1

    def enqueue_wave(self) -> None:
        import importlib

        from solidstack.queue import Job

        SoakJob = importlib.import_module(JOBS_MODULE).SoakJob

        jobs = []
        for _ in range(self.rng.randint(5, 30)):
            kind = self.rng.random()
            # Mostly short jobs; some longer than a supervisor restart and than shutdown_timeout.
            seconds = self.rng.uniform(0.01, 0.2) if kind < 0.7 else self.rng.uniform(0.5, 1.5) if kind < 0.9 \
                else self.rng.uniform(2.5, 4.0)
            jobs.append(SoakJob(len(self.job_ids) + len(jobs), round(seconds, 3)))
        Job.perform_all_later(jobs)
        self.job_ids += [job.provider_job_id for job in jobs]

    def run(self, seconds: float, drain_timeout: float) -> float:
        for _ in range(self.count):
            self.start_supervisor()
        deadline = time.monotonic() + seconds
        next_wave = 0.0
        while time.monotonic() < deadline:
            if time.monotonic() >= next_wave:
                self.enqueue_wave()
                next_wave = time.monotonic() + self.rng.uniform(0.5, 2.0)
            self.act()
            self._keep_supervisors()
            time.sleep(self.rng.uniform(0.2, 0.8))
        return self.drain(drain_timeout)

    def drain(self, timeout: float) -> float:
        """Restart what is pending, wait until every job is finished or failed, then stop every supervisor."""
        from solidstack.queue import queue_storage

        started = time.monotonic()
        storage = queue_storage()
        while time.monotonic() - started < timeout:
            self.restarts = [min(self.restarts)] * len(self.restarts) if self.restarts else []
            self._keep_supervisors()
            counts = storage.counts()
            if counts["finished"] + counts["failed"] >= len(self.job_ids) and not self.restarts:
                break
            time.sleep(0.2)
        drained = time.monotonic() - started
        for proc in self.supervisors + self.terminating:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.supervisors + self.terminating:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        return drained

    # -- the figures -----------------------------------------------------------------------------------------

    def report(self, report: Report) -> Report:
        from solidstack.queue import queue_storage
        from solidstack.queue.processes.liveness import _stat

        storage = queue_storage()
        report.jobs = len(self.job_ids)
        states = Counter()
        for job_id in self.job_ids:
            row = storage.job_state(job_id)
            states[row["state"] if row else "missing"] += 1
        report.finished, report.failed = states["finished"], states["failed"]
        report.lost = report.jobs - report.finished - report.failed
        report.failures = sorted({f"{job.error.get('exception_class')}: {job.error.get('message')}"
                                  for job in storage.failed_jobs(limit=1000)})[:5]
        runs = (self.root / "runs.log").read_text().splitlines() if (self.root / "runs.log").exists() else []
        report.runs = sum(line.startswith("start") for line in runs)
        report.overlaps = sum(line.startswith("overlap") for line in runs)
        report.claimed_left = storage.counts()["claimed"]
        report.processes_left = len(storage.processes())
        for pid, started in self.stopped.items():
            stat = _stat(pid)
            if started is not None and stat is not None and stat == ("T", started):  # still stopped: nobody killed it
                report.stopped_left += 1
                os.kill(pid, signal.SIGKILL)
        report.actions = dict(self.actions)
        report.locked_errors = sum((path.read_text(errors="replace").count("database is locked"))
                                   for path in self.root.glob("supervisor-*.log"))
        return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the chaos lasts")
    parser.add_argument("--supervisors", type=int, default=2)
    parser.add_argument("--processes", type=int, default=2, help="worker processes per supervisor")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--shutdown-timeout", type=float, default=2.0)
    parser.add_argument("--threshold", type=float, default=3.0, help="process_alive_threshold")
    parser.add_argument("--drain-timeout", type=float, default=90.0)
    parser.add_argument("--database-yml", type=Path, default=os.environ.get("SOLIDSTACK_SOAK_DATABASE_YML"),
                        help="config/database.yml for the app (default: SQLite files under storage/)")
    parser.add_argument("--dir", type=Path, help="keep the app here (default: a temporary folder, removed)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    report = soak(args.seconds, supervisors=args.supervisors, processes=args.processes, seed=args.seed,
                  shutdown_timeout=args.shutdown_timeout, threshold=args.threshold,
                  drain_timeout=args.drain_timeout, database_yml=args.database_yml, folder=args.dir)
    if args.json:
        print(json.dumps({**asdict(report), "ok": report.ok}, indent=2))
    else:
        for key, value in asdict(report).items():
            print(f"{key:>15}: {value}")
        print(f"{'ok':>15}: {report.ok}")
    return 0 if report.ok else 1


def soak(seconds: float, *, supervisors: int = 2, processes: int = 2, seed: int = 1, shutdown_timeout: float = 2.0,
         threshold: float = 3.0, drain_timeout: float = 90.0, database_yml: Path | None = None,
         folder: Path | None = None) -> Report:
    """Run one soak; returns its figures (``Report.ok``: every figure that must be 0 is 0)."""
    temporary = folder is None
    root = Path(tempfile.mkdtemp(prefix="solidstack-soak-")) if temporary else folder
    root.mkdir(parents=True, exist_ok=True)
    report = Report(seconds=seconds, supervisors=supervisors, seed=seed,
                    database=str(database_yml) if database_yml else "sqlite")
    run = Soak(root, supervisors=supervisors, processes=processes, seed=seed, shutdown_timeout=shutdown_timeout,
               threshold=threshold, database_yml=database_yml)
    try:
        report.drain_seconds = round(run.run(seconds, drain_timeout), 1)
        return run.report(report)
    finally:
        for proc in run.supervisors + run.terminating:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if temporary:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
