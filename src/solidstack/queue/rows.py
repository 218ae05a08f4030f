"""The row a job is stored as, shared by the storage and whatever builds rows (adapters, scheduler)."""

from __future__ import annotations

from typing import NamedTuple


class NewJob(NamedTuple):
    """A job about to be enqueued.

    A tuple, in the column order of the ``insert_job`` query: a bulk enqueue binds each one as it is (a frozen
    dataclass and a dict per row cost ~2 µs a job of ~13).
    """

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
