"""The claim cycle at the storage level on PostgreSQL (decision 0045): one thread, no job run.

    .venv/bin/python benchmarks/queue/pg_cycle.py        # BENCH_PG_URL, default postgresql://postgres@127.0.0.1:5432

Prints: claim cycles (claim 3, the previous 3 finished in the same call, over 3,000 jobs) in jobs/s; the mean of
300 empty claims in ms; 300 enqueues one by one per second. Each run on a fresh database, dropped after. Compare
two trees by running it with PYTHONPATH=<tree>/src, interleaved.
"""

from __future__ import annotations

import os
import time
import uuid

import psycopg

from solidstack.db.migrate import migrate, package_migrations
from solidstack.db.postgresql import PostgreSQLDatabase
from solidstack.queue.storage import NewJob, QueueStorage

URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432")


def main() -> None:
    name = "bench_cycle_" + uuid.uuid4().hex[:8]
    with psycopg.connect(f"{URL}/postgres", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        db = PostgreSQLDatabase(f"{URL}/{name}")
        migrate(db, package_migrations("solidstack.queue", "postgresql"))
        storage = QueueStorage(db)
        count = 3000
        storage.enqueue([NewJob("default", "J", "[]", 0, str(uuid.uuid4())) for _ in range(count)], time.time())
        start, done, total = time.perf_counter(), [], 0
        while rows := storage.claim(None, ["*"], 3, time.time(), finished=done):
            total += len(rows)
            done = [row.id for row in rows]
        storage.claim(None, ["*"], 3, time.time(), finished=done)
        cycles = total / (time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(300):
            storage.claim(None, ["*"], 3, time.time())
        empty = (time.perf_counter() - start) / 300 * 1000
        start = time.perf_counter()
        for _ in range(300):
            storage.enqueue([NewJob("default", "J", "[]", 0, str(uuid.uuid4()))], time.time())
        enqueue = 300 / (time.perf_counter() - start)
        print(f"claim cycles: {cycles:,.0f} jobs/s; empty claim {empty:.2f} ms; enqueue one by one {enqueue:,.0f}/s"
              f" (load average {os.getloadavg()[0]:.1f})")
        db.close()
    finally:
        with psycopg.connect(f"{URL}/postgres", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


if __name__ == "__main__":
    main()
