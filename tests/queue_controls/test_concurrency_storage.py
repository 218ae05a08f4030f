"""Concurrency limits in the storage: slots, blocked jobs, release on finish/fail/retry, expiry upkeep."""

from __future__ import annotations

import pytest

from solidstack.queue import Job
from solidstack.queue.features.concurrency import (
    ConcurrencyKeyError,
    concurrency_of,
    limits_concurrency,
    to_new_job,
    to_new_jobs,
)
from solidstack.queue.storage import QueueStorage

from .conftest import NOW, new_job, state


@pytest.fixture
def storage(engine_storage: QueueStorage) -> QueueStorage:
    """This module's storage tests run on SQLite and on PostgreSQL."""
    return engine_storage


def test_limit_blocks_then_finish_releases_in_priority_order(storage: QueueStorage) -> None:
    a, b, c, d = storage.enqueue([new_job(key="k", limit=2), new_job(key="k", limit=2),
                                  new_job(key="k", limit=2, priority=5), new_job(key="k", limit=2, priority=1)], NOW)
    assert [state(storage, i) for i in (a, b, c, d)] == ["ready", "ready", "blocked", "blocked"]
    claimed = storage.claim(1, ["*"], 10, NOW)
    assert [row.id for row in claimed] == [a, b]
    storage.finish([a], 1, NOW + 1)
    assert state(storage, d) == "ready"  # priority 1 before priority 5
    assert state(storage, c) == "blocked"
    storage.fail(b, 1, {"message": "x"}, NOW + 2)
    assert state(storage, c) == "ready"


def test_other_keys_and_unlimited_jobs_are_not_affected(storage: QueueStorage) -> None:
    ids = storage.enqueue([new_job(key="a"), new_job(key="b"), new_job(), new_job(key="a")], NOW)
    assert [state(storage, i) for i in ids] == ["ready", "ready", "ready", "blocked"]


def test_discard_on_conflict(storage: QueueStorage) -> None:
    first, second = storage.enqueue([new_job(key="k", on_conflict="discard")] * 2, NOW)
    assert state(storage, first) == "ready"
    assert state(storage, second) == "finished"


def test_scheduled_jobs_take_slots_when_dispatched(storage: QueueStorage) -> None:
    running = storage.enqueue([new_job(key="k")], NOW)[0]
    later = storage.enqueue([new_job(key="k", at=NOW + 10)], NOW)[0]
    assert state(storage, later) == "scheduled"
    assert storage.dispatch_due(NOW + 11, 100) == 1
    assert state(storage, later) == "blocked"
    storage.claim(1, ["*"], 1, NOW + 11)
    storage.finish([running], 1, NOW + 12)
    assert state(storage, later) == "ready"


def test_retry_frees_the_slot_and_takes_one_again(storage: QueueStorage) -> None:
    first, second = storage.enqueue([new_job(key="k"), new_job(key="k")], NOW)
    storage.claim(1, ["*"], 1, NOW)
    storage.retry_later(first, 1, 1, NOW, NOW)  # run again now: the slot went to the blocked job first
    assert state(storage, second) == "ready"
    assert state(storage, first) == "blocked"


def test_expired_slots_release_blocked_jobs_in_upkeep(storage: QueueStorage) -> None:
    held, waiting = storage.enqueue([new_job(key="k", duration=60), new_job(key="k", duration=60)], NOW)
    storage.claim(1, ["*"], 1, NOW)  # its process dies without finishing
    assert storage.gate.maintain(NOW + 30) == 0
    assert state(storage, waiting) == "blocked"
    assert storage.gate.maintain(NOW + 61) == 1
    assert state(storage, waiting) == "ready"
    assert state(storage, held) == "claimed"


def test_bulk_enqueue_respects_the_limit(storage: QueueStorage) -> None:
    ids = storage.enqueue([new_job(key="k", limit=3) for _ in range(10)], NOW)
    states = [state(storage, i) for i in ids]
    assert states.count("ready") == 3 and states.count("blocked") == 7


@limits_concurrency(to=2, key=lambda job: job.args[0])
class PerAccountJob(Job):
    def perform(self, account: int) -> None:
        pass


@limits_concurrency(key=lambda job: job.args[5])
class BadKeyJob(Job):
    def perform(self, *args: int) -> None:
        pass


def test_decorator_builds_key_from_the_job() -> None:
    row = to_new_job(PerAccountJob(42))
    assert (row.concurrency_key, row.concurrency_limit, row.concurrency_on_conflict) == ("PerAccountJob/42", 2,
                                                                                       "block")
    assert concurrency_of(Job()) is None


def test_a_key_that_raises_names_the_job() -> None:
    with pytest.raises(ConcurrencyKeyError, match="BadKeyJob: its concurrency key raised IndexError"):
        to_new_job(BadKeyJob(1))


class NamedJob(Job):
    job_name = "stored_name"

    def perform(self, *args: object) -> None:
        pass


def test_rows_of_a_mixed_bulk_are_each_jobs_own_row() -> None:
    """to_new_jobs looks a class up once per call (decision 0077): each row is still to_new_job's, in order,
    limited and unlimited classes interleaved, with per-job queue, priority and schedule."""
    jobs: list[Job] = []
    for i in range(6):
        jobs += [PerAccountJob(i % 3), NamedJob(i, "x"), Job()]
    jobs[4].queue_name, jobs[4].priority, jobs[4].scheduled_at = "other", 7, NOW + 60
    rows = to_new_jobs(jobs)
    assert rows == [to_new_job(job) for job in jobs]
    assert [row.class_name for row in rows[:3]] == ["PerAccountJob", "stored_name", "Job"]
    assert rows[0].concurrency_key == "PerAccountJob/0" and rows[3].concurrency_key == "PerAccountJob/1"
    assert rows[1].concurrency_key is None and (rows[4].queue_name, rows[4].priority) == ("other", 7)


def test_a_bad_key_in_a_bulk_names_the_job_and_stores_nothing(storage: QueueStorage) -> None:
    from solidstack.queue import SolidQueueAdapter

    with pytest.raises(ConcurrencyKeyError, match="BadKeyJob"):
        SolidQueueAdapter(storage).enqueue_all([NamedJob(1)] * 5 + [BadKeyJob(1)] + [NamedJob(2)])
    assert storage.db.query_one("SELECT count(*) AS n FROM solidstack_jobs")["n"] == 0


def test_bad_decorator_arguments() -> None:
    with pytest.raises(ValueError, match="on_conflict"):
        limits_concurrency(on_conflict="wait")
    with pytest.raises(ValueError, match="to="):
        limits_concurrency(to=0)
