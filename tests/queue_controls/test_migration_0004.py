"""Migration 0004 rebuilds the execution tables keyed by job: a queue migrated from 0003 keeps every job's state."""

from __future__ import annotations

from pathlib import Path

from solidstack.db import SQLiteDatabase, migrate, package_migrations
from solidstack.queue import QueueStorage
from solidstack.queue.rows import NewJob


def _job(name: str, **extra: object) -> NewJob:
    return NewJob("default", name, "[]", 0, name, **extra)  # type: ignore[arg-type]


def test_jobs_in_every_state_survive_the_rebuild(tmp_path: Path) -> None:
    db = SQLiteDatabase(tmp_path / "q.sqlite3")
    migrations = package_migrations("solidstack.queue", "sqlite")
    before = [m for m in migrations if m.number < 4]
    migrate(db, before)
    storage = QueueStorage(db)
    now = 1_000.0
    pid = storage.register_process("Worker", "w", now)
    ready, scheduled, claimed, failed, blocked_1, blocked_2 = storage.enqueue(
        [_job("Ready"), _job("Scheduled", scheduled_at=now + 60), _job("Claimed"), _job("Failed"),
         _job("Limited", concurrency_key="k", concurrency_limit=1), _job("Limited", concurrency_key="k",
                                                                          concurrency_limit=1)], now)
    taken = {row.id for row in storage.claim(pid, ["*"], 2, now)}
    assert taken == {ready, claimed}
    storage.release([ready], pid, now)
    assert {row.id for row in storage.claim(pid, ["*"], 2, now)} == {ready, failed}
    storage.release([ready], pid, now)
    # Failed as the storage of 0003's time recorded it (today's fail() also writes migration 0008's attempts).
    with db.transaction() as conn:
        conn.execute("DELETE FROM solidstack_claimed_executions WHERE job_id = ?", (failed,))
        conn.execute("INSERT INTO solidstack_failed_executions (job_id, error, created_at) VALUES (?, ?, ?)",
                     (failed, '{"exception_class": "RuntimeError", "message": "boom"}', now))
    states = {job_id: storage.job_state(job_id)["state"] for job_id in  # type: ignore[index]
              (ready, scheduled, claimed, failed, blocked_1, blocked_2)}

    assert migrate(db, migrations) == [m.version for m in migrations if m.number >= 4]

    after = {job_id: storage.job_state(job_id)["state"] for job_id in states}  # type: ignore[index]
    assert after == states == {ready: "ready", scheduled: "scheduled", claimed: "claimed", failed: "failed",
                               blocked_1: "ready", blocked_2: "blocked"}
    assert storage.failed_jobs()[0].error["message"] == "boom"
    # And the queue goes on: the claimed job finishes, the blocked one gets the slot after the limited one.
    assert storage.finish([claimed], pid, now) == [claimed]
    assert [row.id for row in storage.claim(pid, ["*"], 5, now)] == [ready, blocked_1]
    storage.finish([blocked_1], pid, now)
    assert [row.id for row in storage.claim(pid, ["*"], 5, now)] == [blocked_2]
