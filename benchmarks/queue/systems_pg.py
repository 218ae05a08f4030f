"""The queues on PostgreSQL, behind the interface of ``systems.py``: each on its own fresh database.

Every ``setup()`` creates a database with a random name on the server of ``BENCH_PG_URL`` (default
``postgresql://postgres@127.0.0.1:5432``) and ``close()`` drops it, so no system sees another's rows, NOTIFY
channels or statistics. Beside the common interface, a system here can:

- ``enqueue_series(count)``: enqueue ``count`` jobs one call per job the way its users would (pgqueuer's
  ``await queries.enqueue`` in one coroutine, not one event loop turn per call from sync code);
- ``disconnect()``: close this process's connections, so the server's per-database counters are final, and
  ``reconnect()`` to go on;
- ``analyze()``: ``ANALYZE`` the database (this server runs with autovacuum off: without it, tables have no
  statistics, and a bulk-loaded queue is planned blind).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import time
from urllib.parse import urlsplit, urlunsplit

from systems import BIN, HERE, PY, System

SERVER = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432")


def dsn(database: str) -> str:
    parts = urlsplit(SERVER)
    return urlunsplit(parts._replace(path=f"/{database}"))


def admin():  # type: ignore[no-untyped-def]
    """An autocommit connection to the server's ``postgres`` database (never to a benchmark's own)."""
    import psycopg

    return psycopg.connect(dsn("postgres"), autocommit=True)


def create_database() -> str:
    name = f"bench_{secrets.token_hex(4)}"
    with admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_database(name: str) -> None:
    with admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def commits(name: str) -> int:
    """Committed transactions of a database so far (as flushed to the statistics: see ``settle``)."""
    with admin() as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (name,)).fetchone()
    return int(row[0]) if row else 0


def settle(name: str, timeout: float = 20.0) -> int:
    """``commits(name)`` once no session is connected to the database.

    A backend flushes its counters to ``pg_stat_database`` at most once a second while busy and up to 10 s
    late while idle (PostgreSQL 15); at exit it flushes them all. So a count is exact only when every session
    of the database has ended: the benchmark closes its own and stops the workers before reading.
    """
    deadline = time.monotonic() + timeout
    with admin() as conn:
        while True:
            (left,) = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)).fetchone()
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    time.sleep(0.05)
    return commits(name)


class PgSystem(System):
    """A system on its own PostgreSQL database."""

    database = ""

    def setup(self) -> None:
        self.database = create_database()
        self.url = dsn(self.database)

    def env(self) -> dict[str, str]:
        return {**super().env(), "BENCH_PG_DSN": getattr(self, "url", "")}

    def enqueue_series(self, count: int) -> None:
        for _ in range(count):
            self.enqueue_one(0)

    def analyze(self) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("ANALYZE")

    def disconnect(self) -> None: ...
    def reconnect(self) -> None: ...

    def close(self) -> None:
        self.disconnect()
        if self.database:
            drop_database(self.database)
            self.database = ""


class PgQueuer(PgSystem):
    """pgqueuer on asyncpg, its worker at the defaults of ``pgq run`` (batch size 10, one process)."""

    name, backend, bulk = "pgqueuer", "PostgreSQL", True

    def setup(self) -> None:
        super().setup()
        self.reconnect()
        self.loop.run_until_complete(self.queries.install())

    def reconnect(self) -> None:
        import asyncpg
        from pgqueuer import Queries

        self.loop = asyncio.new_event_loop()
        self.conn = self.loop.run_until_complete(asyncpg.connect(self.url))
        self.queries = Queries.from_asyncpg_connection(self.conn)

    def enqueue_one(self, sent_ns: int) -> None:
        self.loop.run_until_complete(self.queries.enqueue("noop", b"%d" % sent_ns))

    def enqueue_series(self, count: int) -> None:
        async def series() -> None:
            for _ in range(count):
                await self.queries.enqueue("noop", b"0")

        self.loop.run_until_complete(series())

    def enqueue_bulk(self, count: int) -> None:
        self.loop.run_until_complete(self.queries.enqueue(["noop"] * count, [b"0"] * count, [0] * count))

    def worker_cmd(self) -> list[str]:
        return [PY, str(HERE / "jobs_pgqueuer.py")]

    def disconnect(self) -> None:
        if getattr(self, "conn", None) is not None:
            self.loop.run_until_complete(self.conn.close())
            self.conn = None
            self.loop.close()


class Procrastinate(PgSystem):
    """procrastinate with its psycopg connector; its CLI worker at its defaults (concurrency 1), logging at
    WARNING (its default INFO writes two lines per job; the SQLite suite quiets huey and Celery the same way).
    """

    name, backend, bulk = "procrastinate", "PostgreSQL", True

    def setup(self) -> None:
        super().setup()
        os.environ["BENCH_PG_DSN"] = self.url
        sys.modules.pop("jobs_procrastinate", None)
        import jobs_procrastinate

        self.app = jobs_procrastinate.app
        self.task = jobs_procrastinate.noop
        self.reconnect()
        self.app.schema_manager.apply_schema()

    def reconnect(self) -> None:
        self.app.open()
        self.opened = True

    def enqueue_one(self, sent_ns: int) -> None:
        self.task.defer(sent_ns=sent_ns)

    def enqueue_bulk(self, count: int) -> None:
        self.task.batch_defer(*({"sent_ns": 0} for _ in range(count)))

    def worker_cmd(self) -> list[str]:
        return [str(BIN / "procrastinate"), "--app", "jobs_procrastinate.app", "--log-level", "warning", "worker"]

    def disconnect(self) -> None:
        if getattr(self, "opened", False):
            self.app.close()
            self.opened = False


class SolidPg(PgSystem):
    """solidstack's queue on PostgreSQL: the worker process of ``jobs_solid.py`` (one Runner around one Worker with
    the default 3 threads, as a forked child of ``solidstack jobs`` runs), NOTIFY wake-ups."""

    name, backend, bulk = "solidstack", "PostgreSQL", True
    threads = 3

    def setup(self) -> None:
        from solidstack.db import migrate, package_migrations
        from solidstack.db.postgresql import PostgreSQLDatabase
        from solidstack.queue import QueueStorage, SolidQueueAdapter

        super().setup()
        self.db = PostgreSQLDatabase(self.url)
        migrate(self.db, package_migrations("solidstack.queue", "postgresql"))
        self.storage = QueueStorage(self.db)
        self.adapter = SolidQueueAdapter(self.storage)
        self.activate()
        import jobs_solid

        self.job = jobs_solid.NoopJob

    def activate(self) -> None:
        from solidstack.queue import use_adapter

        use_adapter(self.adapter)

    def enqueue_one(self, sent_ns: int) -> None:
        self.job.perform_later(sent_ns)

    def enqueue_bulk(self, count: int) -> None:
        from solidstack.queue import Job

        Job.perform_all_later([self.job(0) for _ in range(count)])

    def worker_cmd(self) -> list[str]:
        return [PY, str(HERE / "jobs_solid.py"), self.url, str(self.threads)]

    def disconnect(self) -> None:
        if getattr(self, "db", None) is not None:
            self.db.close()  # the pool and the listener; the next use opens a new pool

    def close(self) -> None:
        from solidstack.queue import use_adapter

        use_adapter(None)
        super().close()
        self.db = None


class SolidPg10(SolidPg):
    """solidstack on PostgreSQL with 10 worker threads: claims of up to 10 jobs, as pgqueuer's default batch."""

    name = "solidstack 10 threads"
    threads = 10


def label(system: type[System] | System) -> str:
    return f"{system.name} ({system.backend})"


__all__ = ["HERE", "PY", "PgQueuer", "PgSystem", "Procrastinate", "SolidPg", "SolidPg10", "commits", "settle"]
