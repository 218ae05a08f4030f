"""The row a job is stored as, shared by the storage and whatever builds rows (adapters, scheduler)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NewJob:
    """A job about to be enqueued."""

    queue_name: str
    class_name: str
    arguments: str
    priority: int
    active_job_id: str
    scheduled_at: float | None = None
    concurrency_key: str | None = None
    #: Set with ``concurrency_key`` by ``limits_concurrency`` (see :mod:`.concurrency`).
    concurrency_limit: int | None = None
    concurrency_duration: float | None = None
    concurrency_on_conflict: str | None = None
