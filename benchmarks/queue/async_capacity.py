"""Async capacity: 1,000 jobs that each ``await asyncio.sleep(0.1)``, drained by one worker.

    .venv/bin/python benchmarks/queue/async_capacity.py [--jobs 1000] [--capacity 100] [--threads 3]
                                                       [--engine sqlite|postgresql] [--runs 3]

The worker runs under a Runner in this process (as a forked worker does: the batched finish, the watchdog); the
clock runs from the worker's start until every job is finished. With ``async_capacity: 100`` the floor is
jobs / capacity * 0.1 s (1 s for 1,000); without it each job holds one of the ``threads`` (33 s at 3 threads).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from solidstack.db import SQLiteDatabase, migrate, package_migrations
from solidstack.queue import Job, QueueStorage, Runner, SolidQueueAdapter, Worker, WorkerConfig, use_adapter

PG = os.environ.get("SOLIDSTACK_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432")


class AsyncSleepJob(Job):
    async def perform(self) -> None:
        await asyncio.sleep(0.1)


def storage_for(engine: str, work: Path) -> tuple[QueueStorage, object]:
    if engine == "sqlite":
        db = SQLiteDatabase(work / "queue.sqlite3")
        migrate(db, package_migrations("solidstack.queue", "sqlite"))
        return QueueStorage(db), lambda: None
    import psycopg

    from solidstack.db.postgresql import PostgreSQLDatabase

    name = f"solidstack_bench_async_{os.getpid()}"
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")  # type: ignore[arg-type]
        conn.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]
    db = PostgreSQLDatabase(f"{PG}/{name}", name="queue")
    migrate(db, package_migrations("solidstack.queue", "postgresql"))

    def drop() -> None:
        db.close()
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")  # type: ignore[arg-type]

    return QueueStorage(db), drop


def run_once(engine: str, jobs: int, capacity: int, threads: int) -> float:
    with tempfile.TemporaryDirectory(prefix="solidstack-async-") as work:
        storage, drop = storage_for(engine, Path(work))
        try:
            use_adapter(SolidQueueAdapter(storage))
            Job.perform_all_later([AsyncSleepJob() for _ in range(jobs)])
            worker = Worker(storage, WorkerConfig(threads=threads, async_capacity=capacity, polling_interval=0.1))
            runner = Runner(worker, storage)
            thread = threading.Thread(target=runner.run, daemon=True)
            begun = time.perf_counter()
            thread.start()
            while storage.counts()["finished"] < jobs:
                time.sleep(0.005)
            elapsed = time.perf_counter() - begun
            runner.stop()
            thread.join(30)
            return elapsed
        finally:
            use_adapter(None)
            drop()  # type: ignore[operator]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--capacity", type=int, default=100)
    parser.add_argument("--threads", type=int, default=3)
    parser.add_argument("--engine", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    times = [run_once(args.engine, args.jobs, args.capacity, args.threads) for _ in range(args.runs)]
    print(f"{args.engine}: {args.jobs} jobs of asyncio.sleep(0.1), threads {args.threads}, async_capacity "
          f"{args.capacity}: median {statistics.median(times):.2f} s (runs: {', '.join(f'{t:.2f}' for t in times)}; "
          f"floor {args.jobs / args.capacity * 0.1:.2f} s)")


if __name__ == "__main__":
    sys.exit(main())
