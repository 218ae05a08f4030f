"""Pause/resume (with a live worker), queue size and latency, clearing, and retention of finished jobs."""

from __future__ import annotations

import threading
import time

import pytest

from solidstack.config import App
from solidstack.queue import Job, queue_storage
from solidstack.queue.admin.queues import Queue, queues
from solidstack.queue.config import WorkerConfig
from solidstack.queue.processes.runner import Runner
from solidstack.queue.processes.worker import Worker
from solidstack.queue.retention import clear_finished_jobs
from solidstack.queue.storage import QueueStorage
from waiting import wait_for

from .conftest import NOW, new_job, state

DONE: list[str] = []


@pytest.fixture
def storage(engine_storage: QueueStorage) -> QueueStorage:
    """This module's storage tests run on SQLite and on PostgreSQL."""
    return engine_storage


class Queue2PausableJob(Job):
    def perform(self, tag: str) -> None:
        DONE.append(tag)


def test_pause_and_resume_with_a_live_worker(app: App) -> None:
    storage = queue_storage()
    worker = Worker(storage, WorkerConfig(queues=("*",), threads=2, polling_interval=0.02))
    runner = Runner(worker, storage, heartbeat_interval=5.0, shutdown_timeout=2.0)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        assert runner.started.wait(5)
        Queue2PausableJob.set(queue="slow").perform_later("before")
        assert wait_for(lambda: "before" in DONE)
        Queue("slow", storage).pause()
        paused = Queue2PausableJob.set(queue="slow").perform_later("paused")
        Queue2PausableJob.set(queue="other").perform_later("other")
        assert wait_for(lambda: "other" in DONE)
        time.sleep(0.2)  # ten polls: the paused queue is skipped
        assert "paused" not in DONE
        assert state(storage, paused.provider_job_id or 0) == "ready"
        assert [(q.name, q.size, q.paused) for q in queues(storage)] == [("slow", 1, True)]
        Queue("slow", storage).resume()
        assert wait_for(lambda: "paused" in DONE)
    finally:
        runner.stop()
        thread.join(5)
    assert not thread.is_alive()


def test_size_latency_and_clear(storage: QueueStorage) -> None:
    storage.enqueue([new_job("mail"), new_job("mail"), new_job("other")], NOW)
    storage.enqueue([new_job("mail", at=NOW + 60)], NOW)  # scheduled: not counted
    mail = Queue("mail", storage)
    assert (mail.size, mail.latency(NOW + 5)) == (2, 5.0)
    assert Queue("empty", storage).latency(NOW) == 0.0
    assert mail.clear(batch_size=1) == 2
    assert (mail.size, Queue("other", storage).size) == (0, 1)
    assert storage.counts()["scheduled"] == 1


def test_retention_deletes_only_finished_jobs_older_than_the_cutoff(storage: QueueStorage) -> None:
    day = 86400.0
    old = storage.enqueue([new_job() for _ in range(5)], NOW - 3 * day)
    storage.claim(1, ["*"], 5, NOW - 3 * day)
    storage.finish(old[:4], 1, NOW - 2 * day)
    storage.fail(old[4], 1, {"message": "boom"}, NOW - 2 * day)  # failed: kept
    recent = storage.enqueue([new_job()], NOW - 3 * day)
    storage.claim(1, ["*"], 1, NOW - 3 * day)
    storage.finish(recent, 1, NOW - 3600)  # finished an hour ago: kept
    waiting = storage.enqueue([new_job(), new_job(at=NOW + 60)], NOW - 3 * day)  # ready and scheduled: kept
    assert clear_finished_jobs(storage, older_than=day, batch_size=3, now=NOW) == 4
    remaining = {row[0] for row in storage.db.query("SELECT id FROM solidstack_jobs")}
    assert remaining == {old[4], *recent, *waiting}
    assert clear_finished_jobs(storage, older_than=day, now=NOW) == 0
