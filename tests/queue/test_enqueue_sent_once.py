"""A PostgreSQL enqueue is sent once: when the connection is lost after the server committed it (the reply never
arrives), ``perform_later`` raises instead of sending the statement again on another connection, which would
enqueue the job twice (decision 0065). The loss is real: a TCP proxy between the pool and the server drops the
connection the moment the server answers the enqueue."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dropping_proxy import DroppingProxy
from engines import database_config, pg_url_parts, postgres_database, require_postgres
from solidstack.db import DatabaseUnavailable, connect, migrate, package_migrations
from solidstack.queue import QueueStorage
from solidstack.queue.rows import NewJob


@pytest.fixture(autouse=True)
def _no_idle_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """The armed proxy cuts the next statement sent: on a machine slow enough that the pool's idle check (a
    round trip after 2 s idle) ran first, the check would take the cut instead of the write under test."""
    monkeypatch.setattr("solidstack.db.postgresql.CHECK_IDLE_AFTER", 3600.0)


def _count(url: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM solidstack_jobs").fetchone()
        assert row is not None
        return int(row[0])


@pytest.mark.parametrize("jobs", [1, 3], ids=["one", "bulk"])
def test_an_enqueue_whose_answer_is_lost_raises_and_is_not_sent_again(tmp_path: Path, jobs: int) -> None:
    require_postgres()
    with postgres_database() as url:
        parts = pg_url_parts(url)
        proxy = DroppingProxy(parts["host"], int(parts["port"]))
        proxied = proxy.url(url)
        db = connect(database_config("postgresql", tmp_path, proxied, pool=2))
        migrate(db, package_migrations("solidstack.queue", "postgresql"))
        storage = QueueStorage(db)
        new = [NewJob("default", "EmailJob", "[]", 0, f"key-{i}") for i in range(jobs)]
        assert len(storage.enqueue(new, time.time())) == jobs  # the pool has a live connection
        proxy.armed.set()
        with pytest.raises(DatabaseUnavailable):
            storage.enqueue(new, time.time())
        assert proxy.dropped.is_set()
        # The lost statement had committed: it is there once, not twice.
        assert _count(url) == 2 * jobs
        # And the next enqueue works, on a fresh connection.
        storage.enqueue(new, time.time())
        assert _count(url) == 3 * jobs
        db.close()
        proxy.close()


