"""A claim and a finish on PostgreSQL survive a crash of the server (decision 0066).

A worker that claimed a job runs it whatever happens to the server meanwhile: if a crash could undo the claim,
the job would be ready again after recovery and another worker would run it while the first still does. And a
finish the crash undid would leave the job claimed by a process that is still alive, so nothing would ever
release it. The server here is crashed for real: ``pg_ctl stop -m immediate`` right after the commit, so WAL that
was not flushed is gone.
"""

from __future__ import annotations

import time

import psycopg

from engines import ThrowawayCluster, database_config, require_postgres
from solidstack.db import connect, migrate, package_migrations
from solidstack.queue import QueueStorage
from solidstack.queue.rows import NewJob


def _crash(cluster: ThrowawayCluster) -> None:
    cluster._run("pg_ctl", "-D", str(cluster.dir / "data"), "-w", "-t", "60", "-m", "immediate", "stop")
    cluster.start()


def _state(url: str) -> tuple[list[int], list[int], list[int]]:
    with psycopg.connect(url, autocommit=True) as conn:
        def ids(sql: str) -> list[int]:
            return sorted(row[0] for row in conn.execute(sql).fetchall())

        return (ids("SELECT job_id FROM solidstack_ready_executions"),
                ids("SELECT job_id FROM solidstack_claimed_executions"),
                ids("SELECT id FROM solidstack_jobs WHERE finished_at IS NOT NULL"))


def test_claims_and_finishes_survive_a_server_crash(tmp_path: object) -> None:
    require_postgres()
    cluster = ThrowawayCluster()
    try:
        with psycopg.connect(f"{cluster.url}/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE crash_test")
        url = f"{cluster.url}/crash_test"
        db = connect(database_config("postgresql", tmp_path, url, pool=2))  # type: ignore[arg-type]
        migrate(db, package_migrations("solidstack.queue", "postgresql"))
        storage = QueueStorage(db)
        now = time.time()
        process_id = storage.register_process("Worker", "worker-crash", now)
        ids = storage.enqueue([NewJob("default", "EmailJob", "[]", 0, f"key-{i}") for i in range(4)], now)
        # Rounds of claim -> crash: each claim (and the finish of the previous round's job) must be there after.
        finished: list[int] = []
        for round_ in range(3):
            claimed = storage.claim(process_id, ["*"], 1, time.time(), finished=finished[-1:])
            assert [job.id for job in claimed] == [ids[round_]]
            db.close()
            _crash(cluster)
            ready, held, done = _state(url)
            assert held == [ids[round_]], f"round {round_}: the claim was lost in the crash"
            assert ids[round_] not in ready
            assert done == ids[:round_], f"round {round_}: a finish was lost in the crash"
            finished.append(ids[round_])
            db = connect(database_config("postgresql", tmp_path, url, pool=2))  # type: ignore[arg-type]
            storage = QueueStorage(db)
        db.close()
    finally:
        cluster.stop()
