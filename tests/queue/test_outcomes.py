"""Results, cancel, timeouts and async capacity, on SQLite and PostgreSQL: the storage operations, and a real
worker (a Runner in a thread: the batched finish of the hot path, the watchdog) running real jobs."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest

from solidstack.queue import Job, Runner, Worker, WorkerConfig, retry_on, use_adapter
from solidstack.queue.adapters import SolidQueueAdapter
from solidstack.queue.features.outcomes import (
    CancelError,
    JobCancelled,
    JobFailed,
    JobTimeout,
    ResultTimeout,
    cancel,
    result_of,
)
from solidstack.queue.storage import NewJob, QueueStorage
from waiting import wait_for

NOW = 1_800_000_000.0
started = threading.Event()


@pytest.fixture
def storage(engine_storage: QueueStorage) -> Iterator[QueueStorage]:
    use_adapter(SolidQueueAdapter(engine_storage))
    started.clear()
    yield engine_storage
    use_adapter(None)


class OcValueJob(Job):
    def perform(self, n: int) -> Any:
        return {"n": n, "day": date(2026, 1, 2), "amount": Decimal("1.50")} if n else None


class OcBadResultJob(Job):
    def perform(self) -> Any:
        return object()


class OcPatientJob(Job):
    """Checks ``self.cancelled`` as a long plain job should."""

    def perform(self, seconds: float) -> str:
        started.set()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.cancelled:
                return "stopped"
            time.sleep(0.01)
        return "ran out"


class OcAsyncSleepJob(Job):
    async def perform(self, seconds: float) -> str:
        started.set()
        await asyncio.sleep(seconds)
        return "slept"


class OcSlowJob(Job):
    timeout = 0.3

    def perform(self, seconds: float) -> None:
        time.sleep(seconds)


@retry_on(JobTimeout, wait=60, attempts=2)
class OcRetriedSlowJob(Job):
    timeout = timedelta(seconds=0.3)

    async def perform(self) -> None:
        await asyncio.sleep(5)


@contextlib.contextmanager
def running(storage: QueueStorage, **config: Any) -> Iterator[Worker]:
    worker = Worker(storage, WorkerConfig(**{"threads": 2, "polling_interval": 0.05, **config}))
    runner = Runner(worker, storage, heartbeat_interval=5.0, shutdown_timeout=3.0)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    assert runner.started.wait(10)
    try:
        yield worker
    finally:
        runner.stop()
        thread.join(15)
        assert not thread.is_alive()


def new(name: str = "J") -> NewJob:
    return NewJob("default", name, '{"args":[],"kwargs":{}}', 0, str(uuid.uuid4()))


# -- results ---------------------------------------------------------------------------------------------------

def test_a_return_value_is_kept_typed_and_none_costs_nothing(storage: QueueStorage) -> None:
    value_job, none_job = OcValueJob.perform_later(1), OcValueJob.perform_later(0)
    with running(storage):
        assert result_of(storage, value_job.provider_job_id, timeout=10) == {
            "n": 1, "day": date(2026, 1, 2), "amount": Decimal("1.50")}
        assert result_of(storage, none_job.provider_job_id, timeout=10) is None
    found = storage.job_result(value_job.provider_job_id)
    assert found is not None and found.status == "finished" and found.finished_at is not None
    raw = storage.db.query_one(storage.db.statement("SELECT result FROM solidstack_jobs WHERE id = ?"),
                               (none_job.provider_job_id,))
    assert raw[0] is None  # nothing written for None


def test_results_in_the_batched_finish_only_for_claims_still_held(storage: QueueStorage) -> None:
    a, b = storage.enqueue([new(), new()], NOW)
    claimed = storage.claim(7, ["*"], 2, NOW)
    assert [row.id for row in claimed] == [a, b]
    storage.release([b], 7, NOW)  # b went back to ready: a late finish must not write its result
    storage.claim(7, ["*"], 0, NOW, finished=[a, b], results={a: '"A"', b: '"B"'})
    assert storage.job_result(a).value == "A" and storage.job_result(a).status == "finished"
    assert storage.job_result(b).value is None and storage.job_result(b).status == "ready"


def test_an_unserializable_return_value_fails_the_job_naming_it(storage: QueueStorage) -> None:
    job = OcBadResultJob.perform_later()
    with running(storage), pytest.raises(JobFailed) as failed:
        result_of(storage, job.provider_job_id, timeout=10)
    assert f"OcBadResultJob (job {job.provider_job_id})" in str(failed.value)
    assert "SerializationError" in failed.value.error["exception_class"]


def test_waiting_for_a_result_times_out_and_unknown_ids_are_named(storage: QueueStorage) -> None:
    job = OcValueJob.perform_later(1)
    started_at = time.monotonic()
    with pytest.raises(ResultTimeout, match=f"job {job.provider_job_id} .*ready"):
        result_of(storage, job.provider_job_id, timeout=0.2)
    assert 0.2 <= time.monotonic() - started_at < 2
    with pytest.raises(LookupError, match="job 999999"):
        result_of(storage, 999999)
    assert storage.job_result(999999) is None


# -- cancel ----------------------------------------------------------------------------------------------------

def test_cancel_waiting_jobs_records_them_cancelled(storage: QueueStorage) -> None:
    ready, scheduled = storage.enqueue([new(), new()._replace(scheduled_at=NOW + 60)], NOW)
    assert storage.cancel([ready, scheduled], NOW) == {ready: "cancelled", scheduled: "cancelled"}
    assert storage.counts()["ready"] == 0 and storage.counts()["scheduled"] == 0
    for job_id in (ready, scheduled):
        found = storage.job_result(job_id)
        assert (found.status, found.cancelled_at, found.finished_at) == ("cancelled", NOW, NOW)
    with pytest.raises(JobCancelled):
        result_of(storage, ready)


def test_cancel_refuses_unknown_and_done_jobs_naming_them(storage: QueueStorage) -> None:
    done, failed, waiting = storage.enqueue([new(), new(), new()], NOW)
    storage.claim(1, ["*"], 2, NOW)
    storage.finish([done], 1, NOW)
    storage.fail(failed, 1, {"exception_class": "E", "message": "m"}, NOW)
    with pytest.raises(CancelError) as refused:
        cancel(done, failed, 424242, waiting, storage=storage)
    message = str(refused.value)
    assert f"job {done}: it is finished already" in message
    assert f"job {failed}: it failed already" in message and "job 424242: no such job" in message
    assert storage.job_result(waiting).status == "cancelled"  # the others are cancelled all the same
    with pytest.raises(CancelError, match=f"job {waiting}: it is cancelled already"):
        cancel(waiting, storage=storage)


def test_cancel_a_blocked_job_and_a_limited_ready_one_which_frees_its_slot(storage: QueueStorage) -> None:
    limited = new()._replace(concurrency_key="k", concurrency_limit=1, concurrency_duration=60.0)
    first, second = storage.enqueue([limited, limited._replace(active_job_id=str(uuid.uuid4()))], NOW)
    third = storage.enqueue([limited._replace(active_job_id=str(uuid.uuid4()))], NOW)[0]
    assert storage.job_result(second).status == "blocked"
    assert storage.cancel([third], NOW) == {third: "cancelled"}  # blocked: leaves the blocked table
    assert storage.counts()["blocked"] == 1
    assert storage.cancel([first], NOW) == {first: "cancelled"}
    assert storage.job_result(second).status == "ready"
    assert storage.cancel([second], NOW) == {second: "cancelled"}


def test_a_running_plain_job_sees_cancelled_and_stops(storage: QueueStorage) -> None:
    job = OcPatientJob.perform_later(30)
    with running(storage):
        assert started.wait(10)
        assert job.cancel() == "cancelling"
        assert storage.job_result(job.provider_job_id).status == "claimed"
        with pytest.raises(JobCancelled):
            result_of(storage, job.provider_job_id, timeout=10)
    assert storage.job_result(job.provider_job_id).value == "stopped"


def test_a_running_async_job_is_cancelled_on_its_loop(storage: QueueStorage) -> None:
    job = OcAsyncSleepJob.perform_later(30)
    with running(storage, async_capacity=10):
        assert started.wait(10)
        begun = time.monotonic()
        assert OcAsyncSleepJob.cancel(job.provider_job_id) == "cancelling"
        with pytest.raises(JobCancelled):
            result_of(storage, job.provider_job_id, timeout=10)
        assert time.monotonic() - begun < 5


# -- timeouts --------------------------------------------------------------------------------------------------

def test_a_plain_job_past_its_timeout_fails_with_job_timeout_and_frees_its_claim(storage: QueueStorage) -> None:
    slow = OcSlowJob.perform_later(2)
    quick = OcSlowJob.set(timeout=5).perform_later(0.5)  # one enqueue's own timeout, over the class's
    with running(storage) as worker:
        with pytest.raises(JobFailed) as failed:
            result_of(storage, slow.provider_job_id, timeout=10)
        assert failed.value.error["exception_class"].endswith("JobTimeout")
        assert "ran past its timeout of 0.3 s" in failed.value.error["message"]
        assert storage.claimed_by(worker.process_id) in ([], [quick.provider_job_id])
        assert result_of(storage, quick.provider_job_id, timeout=10) is None  # 0.5 s under its 5 s
        time.sleep(1.8)  # the abandoned thread returns: its outcome is dropped, the job stays failed
        assert storage.job_result(slow.provider_job_id).status == "failed"


def test_an_async_job_past_its_timeout_is_retried_by_retry_on(storage: QueueStorage) -> None:
    job = OcRetriedSlowJob.perform_later()
    with running(storage, async_capacity=5):
        assert wait_for(lambda: storage.job_result(job.provider_job_id).status == "scheduled", 10)
    found = storage.job_result(job.provider_job_id)
    assert found.executions == 1  # the retry_on(JobTimeout) rule scheduled it again


@pytest.mark.parametrize("bad", [0, -1, float("inf"), float("nan"), "30", timedelta(0), True])
def test_a_timeout_that_is_not_a_positive_duration_is_refused_naming_job_and_option(bad: Any) -> None:
    with pytest.raises(ValueError, match="OcBadTimeoutJob: timeout must be a positive"):
        type("OcBadTimeoutJob", (Job,), {"timeout": bad, "perform": lambda self: None})
    with pytest.raises(ValueError, match=r"OcValueJob: set\(timeout=...\) must be a positive"):
        OcValueJob.set(timeout=bad)


# -- async capacity --------------------------------------------------------------------------------------------

def test_async_capacity_runs_many_async_jobs_at_once(storage: QueueStorage) -> None:
    jobs = Job.perform_all_later([OcAsyncSleepJob(0.1) for _ in range(1000)])
    begun = time.monotonic()
    with running(storage, threads=3, async_capacity=100):
        assert wait_for(lambda: storage.counts()["finished"] == 1000, 60)
        elapsed = time.monotonic() - begun
    # 1,000 jobs of 0.1 s: 100 s one at a time, 33 s on 3 threads; with 100 at once ~1.1 s (measured, see
    # benchmarks/queue/async_capacity.py). A generous bound: the test machine is shared.
    assert elapsed < 8, elapsed
    assert result_of(storage, jobs[-1].provider_job_id) == "slept"


@pytest.mark.parametrize(("value", "reason"), [("0", "at least 1"), ("lots", "whole number"), ("-5", "at least 1"),
                                                  ("1000000", "at most 100,000")])
def test_async_capacity_is_validated_in_queue_yml(app_root: Any, value: str, reason: str) -> None:
    from solidstack.config import App
    from solidstack.config.errors import ConfigError
    from solidstack.queue.config import load_queue_config

    (app_root / "config" / "queue.yml").write_text(f"test:\n  workers: [{{async_capacity: {value}}}]\n")
    with pytest.raises(ConfigError, match=reason) as info:
        load_queue_config(App(app_root, "test"))
    assert info.value.key == "workers[0].async_capacity"
    (app_root / "config" / "queue.yml").write_text("test:\n  workers: [{threads: 2, async_capacity: 100}]\n")
    assert load_queue_config(App(app_root, "test")).workers[0].async_capacity == 100
