"""How fast each dashboard page answers with 1,000,000 jobs in the queue database, on SQLite and PostgreSQL.

The database is filled in bulk with SQL (the storage API would take minutes for a million jobs; the rows are
what the storage writes): 500,000 finished (each with its start time), 10,000 failed (each error with a backtrace,
and three failed attempts each), 100,000 scheduled,
1,000 claimed by a worker, 1,000 blocked, the rest (388,000) ready; five queues, ten job classes. Then every
page is requested through the ASGI app in this process (routing, reads, template), warm, ``--repeat`` times;
the median and the worst are reported. Target: every page under 200 ms.

    .venv/bin/python benchmarks/dashboard_bench.py                   # both engines
    .venv/bin/python benchmarks/dashboard_bench.py --engine sqlite --jobs 100000
    SOLIDSTACK_TEST_PG_URL=postgresql://postgres@127.0.0.1:5432 ...   # the PostgreSQL server (a database is made)
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from solidstack.cable import MemoryPubSub
from solidstack.cache import NullStore
from solidstack.dashboard import dashboard_app
from solidstack.db import migrate, package_migrations
from solidstack.queue.storage import QueueStorage

ERROR = ('{"exception_class": "RuntimeError", "message": "boom", "backtrace": '
         '["app/jobs.py:12 in perform", "lib/client.py:88 in call", "lib/http.py:301 in send"]}')


def fill(storage: QueueStorage, jobs: int) -> dict[str, int]:
    """Write ``jobs`` jobs in the states the issue names; returns how many of each."""
    db, now = storage.db, time.time()
    finished, failed, scheduled, claimed, blocked = jobs // 2, min(10_000, jobs // 100), jobs // 10, 1_000, 1_000
    f1, f2, f3, f4, f5 = (finished, finished + failed, finished + failed + scheduled,
                          finished + failed + scheduled + claimed, finished + failed + scheduled + claimed + blocked)
    sqlite = db.dialect == "sqlite"
    series = ("WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < :jobs) "
              if sqlite else "")
    source = "FROM seq" if sqlite else "FROM generate_series(1, :jobs) AS seq(n)"
    cat = "||"
    p = {"jobs": jobs, "now": now, "f1": f1, "f2": f2, "f3": f3, "f4": f4, "f5": f5}
    statements = [
        f"""{series}INSERT INTO solidstack_jobs (id, queue_name, class_name, arguments, priority, active_job_id,
               scheduled_at, finished_at, concurrency_key, executions, process_deaths, created_at, updated_at,
               started_at)
            SELECT n, 'queue' {cat} CAST(n % 5 AS TEXT), 'Report' {cat} CAST(n % 10 AS TEXT) {cat} 'Job',
                   '{{"args":["user' {cat} CAST(n AS TEXT) {cat} '@example.com"],"kwargs":{{"page":' {cat}
                   CAST(n % 100 AS TEXT) {cat} '}}}}',
                   0, 'aj-' {cat} CAST(n AS TEXT),
                   CASE WHEN n > :f2 AND n <= :f3 THEN :now + n ELSE NULL END,
                   CASE WHEN n <= :f1 THEN :now - 3600 + n * 3600.0 / :f1 ELSE NULL END,
                   CASE WHEN n > :f4 AND n <= :f5 THEN 'key' {cat} CAST(n % 10 AS TEXT) ELSE NULL END,
                   0, 0, :now - 7200 + n * 0.001, :now,
                   CASE WHEN n <= :f1 THEN :now - 3600.05 + n * 3600.0 / :f1 ELSE NULL END
            {source}""",
        """INSERT INTO solidstack_failed_attempts (job_id, attempt, outcome, error, started_at, process_id,
                                                   process_name, hostname, pid, created_at)
           SELECT id, a.k, CASE WHEN a.k = 3 THEN 'failed' ELSE 'retried' END, :error, :now - 300 + a.k * 60,
                  :process_id, 'bench-worker', 'bench-host', 4242, :now - 299 + a.k * 60
           FROM solidstack_jobs, (SELECT 1 AS k UNION ALL SELECT 2 UNION ALL SELECT 3) AS a
           WHERE id > :f1 AND id <= :f2""",
        """INSERT INTO solidstack_failed_executions (job_id, error, created_at)
           SELECT id, :error, :now - 60 FROM solidstack_jobs WHERE id > :f1 AND id <= :f2""",
        """INSERT INTO solidstack_scheduled_executions (job_id, queue_name, priority, scheduled_at, created_at)
           SELECT id, queue_name, priority, scheduled_at, :now FROM solidstack_jobs WHERE id > :f2 AND id <= :f3""",
        """INSERT INTO solidstack_claimed_executions (job_id, process_id, created_at)
           SELECT id, :process_id, :now FROM solidstack_jobs WHERE id > :f3 AND id <= :f4""",
        """INSERT INTO solidstack_blocked_executions (job_id, queue_name, priority, concurrency_key, expires_at,
                                                      created_at)
           SELECT id, queue_name, priority, concurrency_key, :now + 600, :now FROM solidstack_jobs
           WHERE id > :f4 AND id <= :f5""",
        """INSERT INTO solidstack_ready_executions (job_id, queue_name, priority, created_at)
           SELECT id, queue_name, priority, created_at FROM solidstack_jobs WHERE id > :f5""",
    ]
    process_id = storage.register_process("worker", "bench-worker", now, metadata={"queues": "*",
                                                                                   "thread_pool_size": 3})
    with db.transaction() as conn:
        for sql in statements:
            conn.execute(db.statement(sql), {**p, "error": ERROR, "process_id": process_id})
    if not sqlite:
        with db.transaction() as conn:
            conn.execute("SELECT setval(pg_get_serial_sequence('solidstack_jobs', 'id'), %(n)s)", {"n": jobs})
        conn = db.connection()
        for table in ("jobs", "ready_executions", "scheduled_executions", "failed_executions",
                      "claimed_executions", "blocked_executions", "failed_attempts"):
            conn.execute(f"ANALYZE solidstack_{table}")
    else:
        db.execute("ANALYZE")
    return {"finished": finished, "failed": failed, "scheduled": scheduled, "claimed": claimed, "blocked": blocked,
            "ready": jobs - f5}


def pages(storage: QueueStorage, jobs: int, counts: dict[str, int]) -> list[tuple[str, str]]:
    from solidstack.queue.admin.inspect import QueueInspector

    middle_finished = counts["finished"] // 2
    deep = f"{QueueInspector(storage).job(middle_finished).finished_at!r}:{middle_finished}"  # a page's cursor
    return [
        ("queues (main page)", "/default/"),
        *((f"jobs: {s}", f"/default/jobs/{s}") for s in ("ready", "scheduled", "claimed", "blocked", "failed",
                                                          "finished")),
        ("finished, a page deep in (keyset)", f"/default/jobs/finished?after={deep}"),
        ("ready, filtered by class", "/default/jobs/ready?class_name=Report3Job"),
        ("ready, filtered by queue", "/default/jobs/ready?queue=queue2"),
        ("ready, arguments search (common)", "/default/jobs/ready?search=example.com"),
        ("ready, arguments search (one job)", f"/default/jobs/ready?search=user{jobs - 5}@"),
        ("finished in the last hour", "/default/jobs/finished?range=1h"),
        ("failed, filtered by class", "/default/jobs/failed?class_name=Report7Job"),
        ("a failed job", f"/default/job/{counts['finished'] + 1}"),
        ("a finished job", f"/default/job/{middle_finished}"),
        ("processes", "/default/processes"),
        ("recurring tasks", "/default/recurring"),
        ("cache and cable", "/default/stats"),
        ("live snapshot (live.json)", "/default/live.json"),
        ("/metrics (for machines)", "/metrics"),
    ]


def time_pages(storage: QueueStorage, jobs: int, counts: dict[str, int], repeat: int) -> list[tuple[str, float,
                                                                                                      float]]:
    app = dashboard_app(storage, allow_unauthenticated=True, cache=NullStore(), cable=MemoryPubSub())
    results = []
    with TestClient(app) as client:
        for label, path in pages(storage, jobs, counts):
            assert client.get(path).status_code == 200, path  # warm: the page's statements are prepared
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                response = client.get(path)
                times.append((time.perf_counter() - start) * 1000)
                assert response.status_code == 200, (path, response.status_code)
            results.append((label, statistics.median(times), max(times)))
    return results


def run(engine: str, jobs: int, repeat: int, workdir: Path, vacuum: bool) -> list[tuple[str, float, float]]:
    from solidstack.db import SQLiteDatabase

    name = None
    if engine == "sqlite":
        db: Any = SQLiteDatabase(workdir / "bench_queue.sqlite3")
    else:
        import psycopg

        from solidstack.config.database import DatabaseConfig
        from solidstack.db import connect

        server = os.environ.get("SOLIDSTACK_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432").rstrip("/")
        name = f"dashbench_{secrets.token_hex(4)}"
        with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
        db = connect(DatabaseConfig(name="queue", adapter="postgresql", database="", source="bench",
                                    options={"url": f"{server}/{name}"}))
    try:
        migrate(db, package_migrations("solidstack.queue", db.dialect))
        storage = QueueStorage(db)
        start = time.perf_counter()
        counts = fill(storage, jobs)
        if name is not None and vacuum:
            # As autovacuum would soon after such a load (this test server runs with autovacuum off): VACUUM
            # sets the visibility map, without which every index-only count also reads the table's pages.
            with psycopg.connect(f"{server}/{name}", autocommit=True) as conn:
                conn.execute("VACUUM (ANALYZE)")
        print(f"{engine}: filled {jobs:,} jobs in {time.perf_counter() - start:.1f} s: {counts}", flush=True)
        return time_pages(storage, jobs, counts, repeat)
    finally:
        db.close()
        if name is not None:
            import psycopg

            with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-vacuum", action="store_true", help="PostgreSQL: time the pages without a VACUUM")
    args = parser.parse_args()
    engines = ["sqlite", "postgresql"] if args.engine == "both" else [args.engine]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for engine in engines:
            results[engine] = run(engine, args.jobs, args.repeat, Path(tmp), not args.no_vacuum)
    labels = [label for label, _, _ in next(iter(results.values()))]
    print(f"\n| page ({args.jobs:,} jobs) | " + " | ".join(f"{e} median ms | {e} worst ms" for e in engines) + " |")
    print("|---|" + "---:|---:|" * len(engines))
    for i, label in enumerate(labels):
        cells = []
        for engine in engines:
            _, median, worst = results[engine][i]
            cells += [f"{median:.1f}", f"{worst:.1f}"]
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
