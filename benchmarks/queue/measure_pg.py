"""Measurements on PostgreSQL: those of ``measure.py``, plus what the server counts (commits per job, queries
while idle) and the same throughput with and without ``ANALYZE``.

Counting: ``pg_stat_database.xact_commit`` of the system's own database, read when no session is connected to
it (``systems_pg.settle``), because a backend flushes its counters up to 10 s late while idle and always at
exit. Every statement outside an explicit transaction is one commit, so for these workers (autocommit polls,
one transaction per claim or finish) it counts the statements and transactions a worker sends.
"""

from __future__ import annotations

import time
from pathlib import Path

from measure import Worker
from systems_pg import PgSystem, settle


def throughput(system: PgSystem, count: int, work: Path, *, analyze: bool, series: bool = True) -> dict:
    """Fill a fresh queue with ``count`` jobs (one call each), then time one worker process emptying it.

    Returns ``enqueue`` (jobs/s of the one-by-one calls), ``throughput`` (jobs/s from the first job's start to
    the last one's), ``commits_per_job`` (the worker's commits over the whole run, start-up included, over
    ``count``) and the worker's output.
    """
    system.setup()
    try:
        start = time.perf_counter()
        if series:
            system.enqueue_series(count)
        else:
            system.enqueue_bulk(count)
        rate_in = count / (time.perf_counter() - start)
        if analyze:
            system.analyze()
        system.disconnect()
        before = settle(system.database)
        worker = Worker(system, work / f"{system.name}-pg-tp.out")
        worker.start()
        try:
            rows = worker.wait_for(count, timeout=300)
        finally:
            output = worker.stop()
        after = settle(system.database)
    finally:
        system.close()
    starts = sorted(started for _sent, started in rows)
    return {"enqueue": rate_in, "throughput": (len(starts) - 1) / ((starts[-1] - starts[0]) / 1e9),
            "commits_per_job": (after - before) / count, "output": output}


def bulk_rate(system: PgSystem, count: int) -> float:
    """Jobs/s of one bulk enqueue call of ``count`` jobs into a fresh queue."""
    system.setup()
    try:
        start = time.perf_counter()
        system.enqueue_bulk(count)
        return count / (time.perf_counter() - start)
    finally:
        system.close()


def idle(system: PgSystem, work: Path, *, short: float = 2.0, long: float = 12.0) -> dict:
    """Commits/s and CPU (% of a core) of an idle worker that has run a few jobs.

    Two worker lifetimes on one database, each counted exactly (before it starts, after it has exited): the
    difference of their commits over the difference of their idle times leaves out start-up, the warm-up jobs
    and shutdown, which both runs share. The CPU is that of the long run's idle stretch.
    """
    system.setup()
    counted: dict[float, int] = {}
    cpu = 0.0
    try:
        for seconds in (short, long):
            before = settle(system.database)
            worker = Worker(system, work / f"{system.name}-pg-idle.out")
            worker.start()
            try:
                for i in range(3):
                    system.enqueue_one(time.monotonic_ns())
                    worker.wait_for(i + 1, timeout=60)
                time.sleep(0.2)
                cpu0, t0 = worker.cpu_seconds(), time.monotonic()
                time.sleep(seconds)
                cpu = 100 * (worker.cpu_seconds() - cpu0) / (time.monotonic() - t0)
            finally:
                worker.stop()
            system.disconnect()
            counted[seconds] = settle(system.database) - before
            system.reconnect()
    finally:
        system.close()
    return {"idle_commits_per_s": (counted[long] - counted[short]) / (long - short), "idle_cpu": cpu}


# -- several processes, several simulated hosts (solidstack) ----------------------------------------------------

SUPERVISOR = r"""
import sys
import jobs_solid
from solidstack.queue import ForkSupervisor, QueueConfig, QueueStorage
ForkSupervisor(QueueStorage(jobs_solid.open_database(sys.argv[1])), QueueConfig()).run()
"""


class Proc(Worker):
    """One process of a group: its own command and environment, records appended to the group's shared file."""

    def __init__(self, system: PgSystem, out: Path, cmd: list[str], env: dict[str, str]) -> None:
        super().__init__(system, out)
        self.cmd, self.extra_env = cmd, env

    def start(self) -> None:
        import os
        import subprocess

        env = {**os.environ, **self.system.env(), **self.extra_env, "BENCH_OUT": str(self.out)}
        log = self.out.with_name(f"{self.out.stem}-{id(self)}.log")
        self.log = open(log, "w+")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(self.cmd, env=env, cwd=Path(__file__).parent, stdout=self.log,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True)


def group(system: PgSystem, work: Path, kind: str, count: int) -> list[Proc]:
    """``count`` worker processes (``kind`` "processes": one machine) or supervisor trees (``kind`` "hosts"):
    each tree a ``ForkSupervisor`` with the default queue.yml (one worker of 3 threads, one dispatcher) in a
    session of its own, with its own wake-up folder (``SOLIDSTACK_WAKEUP_DIR``), so nothing but the server's
    NOTIFY can wake it (on PostgreSQL solidstack wakes by NOTIFY only anyway). ``SOLIDSTACK_HOSTNAME`` is set too,
    but solidstack has no hostname override yet (it reads ``socket.gethostname()``): every tree registers the
    machine's real hostname."""
    import sys

    out = work / f"{system.name}-pg-{kind}.out"
    out.unlink(missing_ok=True)
    procs = []
    for i in range(count):
        if kind == "hosts":
            env = {"SOLIDSTACK_HOSTNAME": f"bench-host-{i}", "SOLIDSTACK_WAKEUP_DIR": str(work / f"host-{i}")}
            procs.append(Proc(system, out, [sys.executable, "-c", SUPERVISOR, system.url], env))
        else:
            procs.append(Proc(system, out, system.worker_cmd(), {}))
    return procs


def _wait_registered(system: PgSystem, workers: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = system.db.query("SELECT count(*) FROM solidstack_processes WHERE kind = 'Worker'")  # type: ignore[attr-defined]
        if rows[0][0] >= workers:
            return
        time.sleep(0.05)
    raise RuntimeError(f"{system.name}: {workers} workers did not register in {timeout} s")


def group_throughput(system: PgSystem, work: Path, kind: str, count: int, jobs: int) -> dict:
    """Jobs/s of ``count`` processes or hosts, all idle and registered, when ``jobs`` jobs arrive in one bulk
    enqueue (one NOTIFY wakes them all); commits per job over the group's whole life (start-up and idle polls
    included)."""
    system.setup()
    try:
        system.disconnect()
        before = settle(system.database)
        procs = group(system, work, kind, count)
        for proc in procs:
            proc.start()
        try:
            _wait_registered(system, count)
            system.enqueue_bulk(jobs)
            rows = procs[0].wait_for(jobs, timeout=300)
        finally:
            for proc in procs:
                proc.stop()
        system.disconnect()
        after = settle(system.database)
    finally:
        system.close()
    starts = sorted(started for _sent, started in rows)
    return {"throughput": (len(starts) - 1) / ((starts[-1] - starts[0]) / 1e9),
            "commits_per_job": (after - before) / jobs}


def group_latency(system: PgSystem, work: Path, kind: str, count: int, samples: int,
                  pause: float = 0.01) -> list[float]:
    """Enqueue-to-start latencies (ms) with ``count`` idle processes or hosts competing for each job."""
    system.setup()
    try:
        procs = group(system, work, kind, count)
        for proc in procs:
            proc.start()
        try:
            _wait_registered(system, count)
            for i in range(5 + samples):
                system.enqueue_one(time.monotonic_ns())
                procs[0].wait_for(i + 1, timeout=30)
                time.sleep(pause)
            rows = procs[0].records()[5:]
        finally:
            for proc in procs:
                proc.stop()
    finally:
        system.close()
    return [(started - sent) / 1e6 for sent, started in rows]
