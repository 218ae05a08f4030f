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
