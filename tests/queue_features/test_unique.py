"""Unique jobs on both engines: duplicates return the held job; keys free on start/finish/failure/expiry."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import pytest

from solidstack.queue import Job, UniqueKeyError, unique_for
from solidstack.queue.storage import QueueStorage


@unique_for(minutes=10)
class Q3UniqueByArgs(Job):
    def perform(self, n: int) -> None:
        pass


@unique_for(600, key=lambda job: job.kwargs["account"], until="started")
class Q3UniqueUntilStarted(Job):
    def perform(self, account: str, note: str = "") -> None:
        pass


@unique_for(0.3)
class Q3UniqueShort(Job):
    def perform(self) -> None:
        raise RuntimeError("always fails")


@unique_for(600, key=lambda job: job.args[0]["missing"])
class Q3UniqueBadKey(Job):
    def perform(self, data: dict) -> None:
        pass


def jobs_of(storage: QueueStorage, name: str) -> int:
    return storage.db.query_one("SELECT COUNT(*) FROM solidstack_jobs WHERE class_name = :n"
                                if storage.db.dialect == "sqlite" else
                                "SELECT COUNT(*) FROM solidstack_jobs WHERE class_name = %(n)s", {"n": name})[0]


def test_a_duplicate_returns_the_held_job(storage: QueueStorage) -> None:
    first = Q3UniqueByArgs.perform_later(1)
    again = Q3UniqueByArgs.perform_later(1)
    other = Q3UniqueByArgs.perform_later(2)
    assert again.provider_job_id == first.provider_job_id and again.job_id == first.job_id
    assert getattr(again, "duplicate", False) and not getattr(first, "duplicate", False)
    assert other.provider_job_id != first.provider_job_id
    assert jobs_of(storage, "Q3UniqueByArgs") == 2


def test_duplicates_in_one_bulk_enqueue_are_one_job(storage: QueueStorage) -> None:
    jobs = Job.perform_all_later([Q3UniqueByArgs(7), Q3UniqueByArgs(7), Q3UniqueByArgs(8)])
    assert jobs[1].job_id == jobs[0].job_id
    assert jobs_of(storage, "Q3UniqueByArgs") == 2


def test_until_finished_holds_through_the_run_and_frees_after(storage: QueueStorage,
                                                            work: Callable[..., None]) -> None:
    first = Q3UniqueByArgs.perform_later(3)
    storage.claim(None, ["*"], 10, time.time())
    assert Q3UniqueByArgs.perform_later(3).provider_job_id == first.provider_job_id  # running: still held
    storage.finish([first.provider_job_id], None, time.time())
    assert Q3UniqueByArgs.perform_later(3).provider_job_id != first.provider_job_id


def test_until_started_frees_the_key_when_a_worker_takes_the_job(storage: QueueStorage) -> None:
    first = Q3UniqueUntilStarted.perform_later(account="a1", note="x")
    assert Q3UniqueUntilStarted.perform_later(account="a1", note="y").provider_job_id == first.provider_job_id
    storage.claim(None, ["*"], 10, time.time())
    assert Q3UniqueUntilStarted.perform_later(account="a1").provider_job_id != first.provider_job_id


def test_a_failed_job_and_an_expired_key_free_it(storage: QueueStorage, work: Callable[..., None]) -> None:
    first = Q3UniqueShort.perform_later()
    work()  # fails for good
    second = Q3UniqueShort.perform_later()
    assert second.provider_job_id != first.provider_job_id
    assert Q3UniqueShort.perform_later().provider_job_id == second.provider_job_id
    time.sleep(0.35)  # ready all along (no worker): the key lapses after unique_for
    assert Q3UniqueShort.perform_later().provider_job_id != second.provider_job_id


def test_a_job_whose_process_died_past_its_bound_frees_its_key(storage: QueueStorage) -> None:
    first = Q3UniqueByArgs.perform_later(9)
    pid = storage.register_process("Worker", "doomed", time.time())
    storage.claim(pid, ["*"], 10, time.time())
    storage.deregister_process(pid, time.time(), died=True, reason="killed", max_deaths=1)  # failed for good
    assert Q3UniqueByArgs.perform_later(9).provider_job_id != first.provider_job_id


@pytest.mark.parametrize("bad", [0, -5, timedelta(0), "10"])
def test_unique_for_a_duration_that_is_not_positive_fails_at_definition(bad: object) -> None:
    with pytest.raises(ValueError, match=r"Q3Bad: unique_for duration must be a positive"):
        @unique_for(bad)  # type: ignore[arg-type]
        class Q3Bad(Job):
            pass


def test_unique_for_a_bad_until_names_the_job() -> None:
    with pytest.raises(ValueError, match=r"Q3BadUntil: unique_for until="):
        @unique_for(10, until="forever")
        class Q3BadUntil(Job):
            pass


def test_a_key_function_that_fails_enqueues_nothing_and_holds_nothing(storage: QueueStorage) -> None:
    with pytest.raises(UniqueKeyError, match="Q3UniqueBadKey: its unique_for key raised KeyError"):
        Job.perform_all_later([Q3UniqueByArgs(11), Q3UniqueBadKey({})])
    assert storage.counts()["ready"] == 0
    assert storage.db.query_one("SELECT COUNT(*) FROM solidstack_unique_keys")[0] == 0
    assert Q3UniqueByArgs.perform_later(11).provider_job_id is not None
