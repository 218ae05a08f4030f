"""Migration 0010 numbers the rate limit starts per key and rebuilds the unique keys: a queue migrated from 0007
keeps its windows and its held keys, on both engines."""

from __future__ import annotations

import time
from pathlib import Path

from engines import fresh_database
from solidstack.db import migrate, package_migrations
from solidstack.queue import QueueStorage
from solidstack.queue.features.ratelimit import acquire


def test_starts_and_keys_survive_the_rebuild(engine: str, tmp_path: Path) -> None:
    with fresh_database(engine, tmp_path) as db:
        _check(db)


def _check(db: object) -> None:
    migrations = package_migrations("solidstack.queue", db.dialect)  # type: ignore[attr-defined]
    migrate(db, [m for m in migrations if m.number <= 7])  # type: ignore[arg-type]
    now = time.time()
    with db.transaction() as conn:  # type: ignore[attr-defined]
        for key, at in (("a", now - 3), ("b", now - 2), ("a", now - 1), ("a", now - 0.5)):
            conn.execute(_sql(db, "INSERT INTO solidstack_rate_limit_starts (key, started_at) VALUES (?, ?)"),
                         (key, at))
        conn.execute(_sql(db, "INSERT INTO solidstack_unique_keys (key, job_id, expires_at, created_at) "
                              "VALUES (?, ?, ?, ?)"), ("K/1", 42, now + 60, now))
    migrate(db, migrations)  # type: ignore[arg-type]
    rows = db.query("SELECT key, seq FROM solidstack_rate_limit_starts ORDER BY key, seq")  # type: ignore[attr-defined]
    assert [tuple(row) for row in rows] == [("a", 1), ("a", 2), ("a", 3), ("b", 1)]
    storage = QueueStorage(db)  # type: ignore[arg-type]
    # The window goes on from the old starts: three of "a" in the last 10 s, so a limit of 3 is full until the
    # oldest (now - 3) leaves it; a limit of 4 takes one more, numbered 4.
    assert acquire(storage, "a", 3, 10.0, now) == now - 3 + 10.0
    assert acquire(storage, "a", 4, 10.0, now) is None
    assert db.query_one("SELECT max(seq) FROM solidstack_rate_limit_starts WHERE key = 'a'")[0] == 4  # type: ignore[attr-defined,index]
    held = db.query_one("SELECT job_id, expires_at FROM solidstack_unique_keys WHERE key = 'K/1'")  # type: ignore[attr-defined]
    assert held[0] == 42 and abs(held[1] - (now + 60)) < 1e-6


def _sql(db: object, text: str) -> str:
    return text if db.dialect == "sqlite" else text.replace("?", "%s")  # type: ignore[attr-defined]
