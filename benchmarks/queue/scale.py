"""solidstack only: cost per job against queue depth, bulk enqueue, the SQLite commit ceiling, memory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from measure import Worker, rss_kib
from systems import Solid

HERE = Path(__file__).resolve().parent
BACKLOG_PRIORITY = 10  # behind the measured jobs (priority 0 runs first)


def build(work: Path, depth: int) -> Solid:
    """A queue with ``depth`` jobs waiting: half ready (behind the measured ones), half scheduled a day ahead."""
    from solidstack.queue import Job

    system = Solid(work / f"depth-{depth}")
    system.work.mkdir(parents=True, exist_ok=True)
    system.setup()
    chunk = 50_000
    for scheduled in (False, True):
        left = depth // 2
        while left > 0:
            n = min(chunk, left)
            Job.perform_all_later([_backlog(scheduled) for _ in range(n)])
            left -= n
    return system


def _backlog(scheduled: bool):  # type: ignore[no-untyped-def]
    """A waiting job: ready behind the measured ones, or scheduled a day ahead."""
    import jobs_solid

    job = jobs_solid.BacklogJob()
    if scheduled:
        job.scheduled_at = time.time() + 86_400
    else:
        job.priority = BACKLOG_PRIORITY
    return job


def top_up(system: Solid, depth: int) -> None:
    """Put back the ready backlog jobs a worker ran after the measured ones."""
    from solidstack.queue import Job

    system.activate()
    ready = system.storage.counts()["ready"]
    missing = depth // 2 - ready
    if missing > 0:
        Job.perform_all_later([_backlog(False) for _ in range(missing)])


def throughput_at_depth(system: Solid, depth: int, count: int) -> float:
    top_up(system, depth)
    system.enqueue_bulk(count)  # priority 0: claimed before the backlog
    worker = Worker(system, system.work / "depth.out")
    worker.start()
    try:
        rows = worker.wait_for(count, timeout=120)
    finally:
        worker.stop()
    starts = sorted(started for _sent, started in rows)
    return (len(starts) - 1) / ((starts[-1] - starts[0]) / 1e9)


def bulk_enqueue_rate(work: Path, count: int) -> float:
    from solidstack.queue import Job

    system = Solid(work / "bulk")
    system.work.mkdir(parents=True, exist_ok=True)
    system.setup()
    try:
        jobs = [system.job(0) for _ in range(count)]
        start = time.perf_counter()
        Job.perform_all_later(jobs)
        return count / (time.perf_counter() - start)
    finally:
        system.close()


def commit_ceiling(work: Path, count: int = 20_000) -> float:
    """Commits/s of the smallest write transaction through ``SQLiteDatabase`` on this disk (one process)."""
    from solidstack.db import SQLiteDatabase

    path = work / "ceiling.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    db = SQLiteDatabase(path)
    with db.transaction() as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    start = time.perf_counter()
    for _ in range(count):
        with db.transaction() as conn:
            conn.execute("INSERT INTO t (v) VALUES ('x')")
    return count / (time.perf_counter() - start)


SUPERVISOR = r"""
import sys
from solidstack.db import SQLiteDatabase
from solidstack.queue import ForkSupervisor, QueueConfig, QueueStorage
ForkSupervisor(QueueStorage(SQLiteDatabase(sys.argv[1])), QueueConfig()).run()
"""


def supervisor_rss(work: Path) -> tuple[int, int]:
    """(KiB of a supervisor tree with the default queue.yml: supervisor, 1 worker, 1 dispatcher; processes)."""
    system = Solid(work / "tree")
    system.work.mkdir(parents=True, exist_ok=True)
    system.setup()
    system.close()
    proc = subprocess.Popen([sys.executable, "-c", SUPERVISOR, str(system.path)], cwd=HERE,
                            env={**os.environ, **system.env()})
    try:
        time.sleep(3.0)
        pids = [proc.pid, *_tree(proc.pid)]
        return sum(rss_kib(pid) for pid in pids), len(pids)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)


def _tree(pid: int) -> list[int]:
    from measure import _children

    return _children(pid)
