"""Fixtures for the queue's controls: a migrated queue database on a real SQLite file, and a clean event bus."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from solidstack.queue import events
from solidstack.queue.storage import NewJob, QueueStorage

NOW = 1_800_000_000.0




@pytest.fixture(autouse=True)
def _clean_events() -> Iterator[None]:
    yield
    events.clear_hooks()


def new_job(queue: str = "default", priority: int = 0, at: float | None = None, name: str = "J",
            key: str | None = None, limit: int = 1, on_conflict: str = "block", duration: float = 180.0) -> NewJob:
    return NewJob(queue, name, '{"args":[],"kwargs":{}}', priority, str(uuid.uuid4()), at, key,
                  limit if key else None, duration if key else None, on_conflict if key else None)


def state(storage: QueueStorage, job_id: int) -> str:
    row = storage.job_state(job_id)
    assert row is not None
    return row["state"]
