"""Fixtures for the opt-in job features (batches, unique jobs, rate limits, tracing): the queue storage on each
engine with the solid_queue adapter on it, and a worker stepped in this process."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from solidstack.queue import SolidQueueAdapter, Worker, WorkerConfig, events, use_adapter
from solidstack.queue.storage import QueueStorage


@pytest.fixture
def storage(engine_storage: QueueStorage) -> Iterator[QueueStorage]:
    """The queue on SQLite and on PostgreSQL, with ``perform_later`` storing into it."""
    use_adapter(SolidQueueAdapter(engine_storage))
    try:
        yield engine_storage
    finally:
        use_adapter(None)
        events.clear_hooks()


@pytest.fixture
def work(storage: QueueStorage) -> Iterator[Callable[..., None]]:
    """``work()`` runs every job that is ready (and scheduled ones that come due) on a worker of two threads,
    until nothing is ready, scheduled within ``horizon`` seconds, or running."""
    worker = Worker(storage, WorkerConfig(threads=2, polling_interval=0.01))

    def run(horizon: float = 0.0, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            storage.dispatch_due(time.time(), 100)
            worker.poll(time.time())
            while worker.idle_threads < worker.config.threads and time.monotonic() < deadline:
                time.sleep(0.002)
            counts = storage.counts()
            if counts.get("ready") or counts.get("claimed"):
                continue
            upcoming = storage.next_scheduled_at()
            if upcoming is None or upcoming > time.time() + horizon:
                return
            time.sleep(0.01)
        raise AssertionError(f"jobs did not drain: {storage.counts()}")

    yield run
    worker.shutdown(5.0)
