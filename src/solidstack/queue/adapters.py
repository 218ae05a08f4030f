"""Queue adapters, chosen per environment as ``config.active_job.queue_adapter`` is in Rails.

- ``solid_queue`` (default): jobs are stored in the queue database and run by workers.
- ``inline``: jobs run at once, in the caller, for scripts and consoles (a ``wait`` is ignored).
- ``test``: jobs are recorded, not run; see :mod:`solidstack.queue.testing`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from solidstack.config import App, current_app
from solidstack.db import connect
from solidstack.queue import events
from solidstack.queue.config import QueueConfig, database_entry, load_queue_config
from solidstack.queue.features import hooks
from solidstack.queue.features.concurrency import to_new_jobs
from solidstack.queue.storage import QueueStorage

if TYPE_CHECKING:
    from solidstack.queue.job import Job

log = logging.getLogger("solidstack.queue")


class Adapter(Protocol):
    name: str

    def enqueue_all(self, jobs: Sequence[Job]) -> None: ...


class SolidQueueAdapter:
    """Stores jobs in the queue database, all of one call in one transaction."""

    name = "solid_queue"

    def __init__(self, storage: QueueStorage) -> None:
        self.storage = storage

    def enqueue_all(self, jobs: Sequence[Job]) -> None:
        # A batch, unique jobs, rate limits or tracing in use in this process, and wanted by these jobs:
        if hooks.FEATURES and hooks.enqueue(self.storage, jobs):
            if hooks.batches_collecting():
                return  # stored when the batch's block ends
            ids = [job.provider_job_id for job in jobs if job.provider_job_id is not None]
        else:
            # Serialize everything before touching the database: one bad argument enqueues nothing.
            rows = to_new_jobs(jobs)
            ids = self.storage.enqueue(rows, time.time())
            for job, job_id in zip(jobs, ids, strict=True):
                job.provider_job_id = job_id
        if events.wanted("enqueue"):
            for job in jobs:
                events.instrument("enqueue", job_id=job.provider_job_id, job_class=type(job).name(),
                                  queue=job.queue_name, scheduled_at=job.scheduled_at)
        if ids:
            log.debug("enqueued %d job(s), ids %d..%d", len(ids), ids[0], ids[-1])


class InlineAdapter:
    """Runs each job at once in the caller; exceptions propagate as with ``perform_now``."""

    name = "inline"

    def enqueue_all(self, jobs: Sequence[Job]) -> None:
        for job in jobs:
            job.serialize_arguments()  # the same argument checks as a real enqueue
            job.perform_now()


class TestAdapter:
    """Records jobs instead of running them."""

    __test__ = False  # not a pytest test class
    name = "test"

    def __init__(self) -> None:
        self.enqueued: list[Job] = []
        self.performed: list[Job] = []
        self._lock = threading.Lock()

    def enqueue_all(self, jobs: Sequence[Job]) -> None:
        for job in jobs:
            job.serialize_arguments()
        with self._lock:
            self.enqueued.extend(jobs)


_adapter: Adapter | None = None
_storage: QueueStorage | None = None
_lock = threading.Lock()


def storage_for(app: App, config: QueueConfig) -> QueueStorage:
    """The queue storage on the database ``config`` names for ``app``."""
    return QueueStorage(connect(database_entry(app, config)))


def queue_storage() -> QueueStorage:
    """The queue storage of the current app (its queue database)."""
    global _storage
    with _lock:
        if _storage is None:
            app = current_app()
            _storage = storage_for(app, load_queue_config(app))
        return _storage


def _build(name: str) -> Adapter:
    if name == "inline":
        return InlineAdapter()
    if name == "test":
        return TestAdapter()
    if name == "solid_queue":
        return SolidQueueAdapter(queue_storage())
    raise ValueError(f"unknown queue adapter {name!r} (known: solid_queue, inline, test)")


def current_adapter() -> Adapter:
    """The adapter set with :func:`use_adapter`, else the one ``queue.yml`` names for the environment."""
    global _adapter
    if _adapter is not None:
        return _adapter
    adapter = _build(load_queue_config(current_app()).adapter)
    with _lock:
        if _adapter is None:
            _adapter = adapter
        return _adapter


def use_adapter(adapter: Adapter | str | None) -> Adapter | None:
    """Set the adapter by object or name (``None``: back to the configured one); returns it."""
    global _adapter
    if isinstance(adapter, str):
        adapter = _build(adapter)
    _adapter = adapter
    return adapter


def reset() -> None:
    """Forget the adapter and storage (after ``solidstack.configure``)."""
    global _adapter, _storage
    with _lock:
        _adapter = None
        _storage = None
