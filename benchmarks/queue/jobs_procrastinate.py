"""procrastinate's benchmark task, over ``BENCH_PG_DSN`` with its default psycopg connector.

The worker is procrastinate's CLI at its defaults: ``procrastinate --app jobs_procrastinate.app worker``
(concurrency 1, LISTEN/NOTIFY on).
"""

from __future__ import annotations

import os

import procrastinate
from record import record

app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=os.environ.get("BENCH_PG_DSN", "")))


@app.task(name="noop")
async def noop(sent_ns: int) -> None:
    record(sent_ns)
