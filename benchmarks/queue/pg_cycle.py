"""The claim cycle at the storage level on PostgreSQL (decisions 0045, 0056): one thread, no job run.

    .venv/bin/python benchmarks/queue/pg_cycle.py [--batch 3] [--rounds 1] [--fk-ab]
    # BENCH_PG_URL, default postgresql://postgres@127.0.0.1:5432

Prints: claim cycles (claim ``--batch``, the previous batch finished in the same call, over 3,000 jobs) in
jobs/s; the mean of 300 empty claims in ms; 300 enqueues one by one per second. Each run on a fresh database,
dropped after. ``--fk-ab``: each round measures the claim cycle twice, interleaved, with the schema as migrated
and with the executions' foreign keys to ``solidstack_jobs`` dropped, and prints the ratio (what the triggers
cost). Compare two trees by running it with PYTHONPATH=<tree>/src, interleaved.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid

import psycopg

from solidstack.db.migrate import migrate, package_migrations
from solidstack.db.postgresql import PostgreSQLDatabase
from solidstack.queue.storage import NewJob, QueueStorage

URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432")
FKS = ("solidstack_claimed_executions", "solidstack_ready_executions")


def one_run(batch: int, count: int, *, drop_fks: bool = False, extras: bool = True) -> dict[str, float]:
    name = "bench_cycle_" + uuid.uuid4().hex[:8]
    with psycopg.connect(f"{URL}/postgres", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        db = PostgreSQLDatabase(f"{URL}/{name}")
        migrate(db, package_migrations("solidstack.queue", "postgresql"))
        if drop_fks:
            with psycopg.connect(f"{URL}/{name}", autocommit=True) as conn:
                for table in FKS:
                    conn.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {table}_job_id_fkey")
        storage = QueueStorage(db)
        storage.enqueue([NewJob("default", "J", "[]", 0, str(uuid.uuid4())) for _ in range(count)], time.time())
        start, done, total = time.perf_counter(), [], 0
        while rows := storage.claim(None, ["*"], batch, time.time(), finished=done):
            total += len(rows)
            done = [row.id for row in rows]
        storage.claim(None, ["*"], batch, time.time(), finished=done)
        out = {"cycles": total / (time.perf_counter() - start)}
        if extras:
            start = time.perf_counter()
            for _ in range(300):
                storage.claim(None, ["*"], batch, time.time())
            out["empty_ms"] = (time.perf_counter() - start) / 300 * 1000
            start = time.perf_counter()
            for _ in range(300):
                storage.enqueue([NewJob("default", "J", "[]", 0, str(uuid.uuid4()))], time.time())
            out["enqueue"] = 300 / (time.perf_counter() - start)
        db.close()
        return out
    finally:
        with psycopg.connect(f"{URL}/postgres", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--fk-ab", action="store_true")
    args = parser.parse_args()
    if not args.fk_ab:
        for _ in range(args.rounds):
            r = one_run(args.batch, args.jobs)
            print(f"claim cycles: {r['cycles']:,.0f} jobs/s; empty claim {r['empty_ms']:.2f} ms; enqueue one by one "
                  f"{r['enqueue']:,.0f}/s (load average {os.getloadavg()[0]:.1f})", flush=True)
        return
    ratios, rates = [], {True: [], False: []}
    for n in range(args.rounds):
        order = (False, True) if n % 2 == 0 else (True, False)
        got = {drop: one_run(args.batch, args.jobs, drop_fks=drop, extras=False)["cycles"] for drop in order}
        for drop, rate in got.items():
            rates[drop].append(rate)
        ratios.append(got[True] / got[False])
        print(f"round {n + 1}: with FKs {got[False]:,.0f}, without {got[True]:,.0f} jobs/s, "
              f"without/with {ratios[-1]:.2f} (load average {os.getloadavg()[0]:.1f})", flush=True)
    print(f"batch {args.batch}: median with FKs {statistics.median(rates[False]):,.0f}, without "
          f"{statistics.median(rates[True]):,.0f} jobs/s; ratio per round median {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
