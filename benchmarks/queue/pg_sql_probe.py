"""Where solidstack's queue spends its time on PostgreSQL: round trips. A probe for tuning the queue's SQL.

    .venv/bin/python benchmarks/queue/pg_sql_probe.py [--jobs 3000]

On one fresh database (no statistics, as a bulk-loaded queue on a server without autovacuum), one thread, no job
run, it measures in one run:

- the claim loop as ``QueueStorage.claim`` does it today (each batch also finishes the previous one), with the
  statements it sends per job and each statement's time;
- the same claim and finish as ONE statement of data-modifying CTEs in autocommit (a prototype, below), with
  batches of 3 (the default worker's 3 threads) and 10;
- enqueue one by one as ``Job.perform_later`` does it today, against one INSERT ... CTE statement with its
  ``pg_notify`` in autocommit (a prototype), and pgqueuer's ``enqueue`` (asyncpg) as the reference;
- the round trip of ``SELECT 1`` (psycopg, autocommit), the floor of any statement.

The prototypes are not solidstack code: they show what a statement shape is worth before anyone changes
``src/solidstack/queue/sql/postgresql/``. They skip the pause check's queue order and concurrency limits that the
real claim keeps (the pause check is kept).
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import systems_pg  # noqa: E402

CLAIM_CTE = """
WITH finished AS (
  DELETE FROM solidstack_claimed_executions
  WHERE process_id IS NOT DISTINCT FROM %(pid)s::bigint AND job_id = ANY(%(done)s::bigint[])
  RETURNING job_id
), marked AS (
  UPDATE solidstack_jobs j SET finished_at = %(now)s, updated_at = %(now)s FROM finished f WHERE j.id = f.job_id
  RETURNING j.id, j.concurrency_key
), picked AS (
  SELECT r.job_id FROM solidstack_ready_executions r
  WHERE NOT EXISTS (SELECT 1 FROM solidstack_pauses p WHERE p.queue_name = r.queue_name)
  ORDER BY r.priority, r.job_id LIMIT %(limit)s FOR UPDATE OF r SKIP LOCKED
), taken AS (
  DELETE FROM solidstack_ready_executions r USING picked WHERE r.job_id = picked.job_id RETURNING r.job_id
), claimed AS (
  INSERT INTO solidstack_claimed_executions (job_id, process_id, created_at)
  SELECT job_id, %(pid)s::bigint, %(now)s::float8 FROM taken RETURNING job_id
)
SELECT false AS done, j.id, j.queue_name, j.class_name, j.arguments, j.priority, j.active_job_id, j.scheduled_at,
       j.concurrency_key, j.executions, j.process_deaths, j.created_at
FROM solidstack_jobs j JOIN claimed c ON c.job_id = j.id
UNION ALL
SELECT true, m.id, NULL, NULL, NULL, NULL, NULL, NULL, m.concurrency_key, NULL, NULL, NULL
FROM marked m WHERE m.concurrency_key IS NOT NULL
"""

ENQUEUE_CTE = """
WITH job AS (
  INSERT INTO solidstack_jobs (queue_name, class_name, arguments, priority, active_job_id, created_at, updated_at)
  VALUES (%(queue)s, %(cls)s, %(args)s, 0, %(ajid)s, %(now)s, %(now)s)
  RETURNING id, queue_name, priority
), ready AS (
  INSERT INTO solidstack_ready_executions (job_id, queue_name, priority, created_at)
  SELECT id, queue_name, priority, %(now)s FROM job
)
SELECT id, pg_notify('solidstack_queue', '') FROM job
"""


def counting() -> tuple[collections.Counter, collections.Counter]:
    """Count and time every statement psycopg sends from here on (BEGIN and COMMIT included)."""
    import psycopg

    counts: collections.Counter = collections.Counter()
    times: collections.Counter = collections.Counter()
    original = psycopg.Connection.execute

    def execute(self, query, params=None, **kwargs):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        try:
            return original(self, query, params, **kwargs)
        finally:
            key = " ".join(str(query).split()[:6])
            counts[key] += 1
            times[key] += time.perf_counter() - start

    psycopg.Connection.execute = execute  # type: ignore[method-assign]
    return counts, times


def current_claims(storage, jobs: int, limit: int) -> float:  # type: ignore[no-untyped-def]
    done: list[int] = []
    claimed, start = 0, time.perf_counter()
    while claimed < jobs:
        rows = storage.claim(None, ["*"], limit, time.time(), finished=done)
        if not rows:
            break
        claimed += len(rows)
        done = [row.id for row in rows]
    storage.finish(done, None, time.time())
    return claimed / (time.perf_counter() - start)


def cte_claims(url: str, jobs: int, limit: int, *, synchronous_commit: bool = True) -> float:
    import psycopg

    options = "" if synchronous_commit else "-c synchronous_commit=off"
    with psycopg.connect(url, autocommit=True, options=options) as conn:
        done: list[int] = []
        claimed, start = 0, time.perf_counter()
        while claimed < jobs:
            rows = conn.execute(CLAIM_CTE, {"pid": None, "done": done, "now": time.time(), "limit": limit}).fetchall()
            run = [row for row in rows if not row[0]]
            if not run:
                break
            claimed += len(run)
            done = [row[1] for row in run]
        return claimed / (time.perf_counter() - start)


def cte_enqueue(url: str, count: int) -> float:
    import uuid

    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        start = time.perf_counter()
        for _ in range(count):
            conn.execute(ENQUEUE_CTE, {"queue": "default", "cls": "jobs_solid.NoopJob", "args": "[0]",
                                       "ajid": str(uuid.uuid4()), "now": time.time()}).fetchall()
        return count / (time.perf_counter() - start)


def round_trip_us(url: str, count: int = 2000) -> float:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(200):
            conn.execute("SELECT 1")
        start = time.perf_counter()
        for _ in range(count):
            conn.execute("SELECT 1")
        return (time.perf_counter() - start) / count * 1e6


def pgqueuer_enqueue(work: Path, count: int) -> float:
    system = systems_pg.PgQueuer(work)
    system.setup()
    try:
        start = time.perf_counter()
        system.enqueue_series(count)
        return count / (time.perf_counter() - start)
    finally:
        system.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=3000)
    args = parser.parse_args()
    work = Path("/tmp")
    n = args.jobs
    print(f"round trip, SELECT 1 (psycopg, autocommit): {round_trip_us(systems_pg.dsn('postgres')):.0f} µs")
    print(f"pgqueuer enqueue one by one (asyncpg): {pgqueuer_enqueue(work, n):,.0f} jobs/s")
    system = systems_pg.SolidPg(work)
    system.setup()
    try:
        counts, times = counting()
        start = time.perf_counter()
        for _ in range(n):
            system.enqueue_one(0)
        rate = n / (time.perf_counter() - start)
        print(f"\nsolidstack enqueue one by one (Job.perform_later): {rate:,.0f} jobs/s; statements per job:")
        for key, count in counts.most_common():
            print(f"  {count / n:4.1f} x {times[key] / count * 1e6:5.0f} µs  {key}")
        print(f"prototype, one INSERT ... CTE with pg_notify in autocommit: {cte_enqueue(system.url, n):,.0f} jobs/s")
        system.enqueue_bulk(6 * n)
        for limit in (3, 10):
            counts.clear()
            times.clear()
            rate = current_claims(system.storage, n, limit)
            print(f"\nsolidstack claim+finish today, batches of {limit}: {rate:,.0f} jobs/s (one thread, no job run); "
                  "statements per job:")
            for key, count in counts.most_common():
                print(f"  {count / n:4.2f} x {times[key] / count * 1e6:5.0f} µs  {key}")
            print(f"prototype, claim+finish as one CTE statement, batches of {limit}: "
                  f"{cte_claims(system.url, n, limit):,.0f} jobs/s; with synchronous_commit off on its connection "
                  f"(as today's claims): {cte_claims(system.url, n, limit, synchronous_commit=False):,.0f} jobs/s")
    finally:
        system.close()


if __name__ == "__main__":
    main()
