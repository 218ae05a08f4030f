"""pgqueuer's benchmark job and worker factory, on asyncpg (pgqueuer's own driver), over ``BENCH_PG_DSN``.

The worker runs as ``pgq run jobs_pgqueuer:create`` does, at its defaults (batch size 10, one process, uvloop
when installed): ``python jobs_pgqueuer.py`` calls ``pgqueuer.run`` itself, because pgqueuer 1.6's CLI fails
before starting with this typer version (``--log-level``'s parser hands it a str).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from pgqueuer import PgQueuer
from pgqueuer.models import Job
from record import record


@asynccontextmanager
async def create() -> AsyncIterator[PgQueuer]:
    connection = await asyncpg.connect(os.environ["BENCH_PG_DSN"])
    pgq = PgQueuer.from_asyncpg_connection(connection)

    @pgq.entrypoint("noop")
    async def noop(job: Job) -> None:
        record(int(job.payload or b"0"))

    try:
        yield pgq
    finally:
        await connection.close()


def main() -> None:
    from pgqueuer import run

    try:
        import uvloop
    except ImportError:
        import asyncio

        asyncio.run(run(create))
    else:
        uvloop.run(run(create))


if __name__ == "__main__":
    main()
