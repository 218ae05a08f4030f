"""The queues under test, each behind the same small interface, so every measurement runs the same way.

A system is set up fresh in a work folder, enqueues jobs from this process (``enqueue_one`` as an app would,
one call per job), and names the command of one worker process. Peers run with their defaults except where
noted: RQ's ``SimpleWorker`` (its default worker forks once per job), Dramatiq with ``--processes 1``,
Celery with ``--pool solo`` (one process), huey's consumer with its default single worker.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PY = sys.executable
BIN = Path(PY).parent


def redis_flush() -> None:
    import redis

    redis.Redis(host="127.0.0.1", port=6379).flushdb()


class System:
    name = "?"
    backend = "?"
    bulk = False

    def __init__(self, work: Path) -> None:
        self.work = work

    def env(self) -> dict[str, str]:
        return {"PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}

    def setup(self) -> None: ...
    def enqueue_one(self, sent_ns: int) -> None: ...
    def enqueue_bulk(self, count: int) -> None: raise NotImplementedError
    def worker_cmd(self) -> list[str]: ...
    def close(self) -> None: ...


class Solid(System):
    name, backend, bulk = "solidstack", "SQLite", True

    def setup(self) -> None:
        from solidstack.db import SQLiteDatabase, migrate, package_migrations
        from solidstack.queue import QueueStorage, SolidQueueAdapter, use_adapter

        self.path = self.work / "queue.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        db = SQLiteDatabase(self.path)
        migrate(db, package_migrations("solidstack.queue", "sqlite"))
        self.storage = QueueStorage(db)
        self.adapter = SolidQueueAdapter(self.storage)
        use_adapter(self.adapter)
        import jobs_solid

        self.job = jobs_solid.NoopJob

    def enqueue_one(self, sent_ns: int) -> None:
        self.job.perform_later(sent_ns)

    def activate(self) -> None:
        """Make this system's database the one jobs are enqueued to (several exist in the scale run)."""
        from solidstack.queue import use_adapter

        use_adapter(self.adapter)

    def enqueue_bulk(self, count: int) -> None:
        from solidstack.queue import Job

        self.activate()
        Job.perform_all_later([self.job(0) for _ in range(count)])

    def worker_cmd(self) -> list[str]:
        return [PY, str(HERE / "jobs_solid.py"), str(self.path)]

    def close(self) -> None:
        from solidstack.queue import use_adapter

        use_adapter(None)


class SolidPostgres(Solid):
    """solidstack on a fresh PostgreSQL database (``SOLIDSTACK_BENCH_PG_URL``, default the local server)."""

    name, backend, bulk = "solidstack", "PostgreSQL", True
    server = os.environ.get("SOLIDSTACK_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432")

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(f"{self.server}/postgres", autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def setup(self) -> None:
        from solidstack.db import migrate, package_migrations
        from solidstack.db.postgresql import PostgreSQLDatabase
        from solidstack.queue import QueueStorage, SolidQueueAdapter, use_adapter

        self.dbname = f"solidstack_bench_{os.getpid()}_{id(self) % 10_000}"
        self._admin(f"DROP DATABASE IF EXISTS {self.dbname} WITH (FORCE)")
        self.path = f"{self.server}/{self.dbname}"  # type: ignore[assignment]
        db = PostgreSQLDatabase(self.path, name="queue")
        migrate(db, package_migrations("solidstack.queue", "postgresql"))
        self.storage = QueueStorage(db)
        self.adapter = SolidQueueAdapter(self.storage)
        use_adapter(self.adapter)
        import jobs_solid

        self.job = jobs_solid.NoopJob

    def close(self) -> None:
        self.storage.db.close()
        self._admin(f"DROP DATABASE IF EXISTS {self.dbname} WITH (FORCE)")
        super().close()


class HueySqlite(System):
    name, backend = "huey", "SQLite"

    def env(self) -> dict[str, str]:
        return {**super().env(), "BENCH_HUEY": f"sqlite:{self.work / 'huey.sqlite3'}"}

    def setup(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.work / 'huey.sqlite3'}{suffix}").unlink(missing_ok=True)
        os.environ.update(self.env())
        sys.modules.pop("jobs_huey", None)
        import jobs_huey

        self.task = jobs_huey.noop

    def enqueue_one(self, sent_ns: int) -> None:
        self.task(sent_ns)

    def worker_cmd(self) -> list[str]:
        return [str(BIN / "huey_consumer"), "jobs_huey.huey", "-q"]


class HueyRedis(HueySqlite):
    name, backend = "huey", "Redis"

    def env(self) -> dict[str, str]:
        return {**System.env(self), "BENCH_HUEY": "redis"}

    def setup(self) -> None:
        redis_flush()
        os.environ.update(self.env())
        sys.modules.pop("jobs_huey", None)
        import jobs_huey

        self.task = jobs_huey.noop


class RQ(System):
    name, backend, bulk = "RQ", "Redis", True

    def setup(self) -> None:
        import redis
        from rq import Queue

        redis_flush()
        import jobs_rq

        self.fn = jobs_rq.noop
        self.queue = Queue("default", connection=redis.Redis(host="127.0.0.1", port=6379))

    def enqueue_one(self, sent_ns: int) -> None:
        self.queue.enqueue(self.fn, sent_ns)

    def enqueue_bulk(self, count: int) -> None:
        from rq import Queue

        self.queue.enqueue_many([Queue.prepare_data(self.fn, (0,)) for _ in range(count)])

    def worker_cmd(self) -> list[str]:
        return [str(BIN / "rq"), "worker", "-q", "-w", "rq.worker.SimpleWorker", "--url", "redis://127.0.0.1:6379",
                "default"]


class Dramatiq(System):
    name, backend = "Dramatiq", "Redis"

    def setup(self) -> None:
        redis_flush()
        import jobs_dramatiq

        self.actor = jobs_dramatiq.noop

    def enqueue_one(self, sent_ns: int) -> None:
        self.actor.send(sent_ns)

    def worker_cmd(self) -> list[str]:
        return [str(BIN / "dramatiq"), "jobs_dramatiq", "--processes", "1"]


class Celery(System):
    name, backend = "Celery", "Redis"

    def setup(self) -> None:
        redis_flush()
        import jobs_celery

        self.task = jobs_celery.noop

    def enqueue_one(self, sent_ns: int) -> None:
        self.task.delay(sent_ns)

    def worker_cmd(self) -> list[str]:
        return [str(BIN / "celery"), "-A", "jobs_celery", "worker", "--pool", "solo", "--loglevel", "WARNING",
                "--without-heartbeat", "--without-gossip", "--without-mingle"]


ALL = (Solid, HueySqlite, HueyRedis, RQ, Dramatiq, Celery)


def label(system: type[System] | System) -> str:
    return f"{system.name} ({system.backend})"
