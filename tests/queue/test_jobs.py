"""Jobs end to end in one process: enqueue through the adapter, run by a stepped worker."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from solidstack.config import App
from solidstack.queue import (
    Dispatcher,
    Job,
    SerializationError,
    TestAdapter,
    Worker,
    WorkerConfig,
    discard_on,
    queue_storage,
    retry_on,
    use_adapter,
)
from solidstack.queue import testing as queue_testing

performed: list[tuple[str, Any]] = []


class TjRecordJob(Job):
    def perform(self, value: Any, *, tag: str = "") -> str:
        performed.append(("record", (value, tag)))
        return f"done {value}"


class TjAsyncJob(Job):
    queue_as = "async"

    async def perform(self, value: int) -> None:
        await asyncio.sleep(0.001)
        performed.append(("async", value))


class TjFlakyError(Exception):
    pass


@retry_on(TjFlakyError, wait=10, attempts=3)
@discard_on(KeyError)
class TjFlakyJob(Job):
    def perform(self, mode: str) -> None:
        performed.append(("flaky", self.executions))
        if mode == "flaky":
            raise TjFlakyError(f"attempt {self.executions}")
        if mode == "discard":
            raise KeyError("gone")
        raise ValueError("plain failure")


class TjMailJob(Job):
    queue_as = "mailers"
    priority = 5

    def perform(self) -> None:
        performed.append(("mail", self.queue_name))


@pytest.fixture(autouse=True)
def _reset() -> None:
    performed.clear()


def drain(worker: Worker, now: float, rounds: int = 50) -> None:
    """Poll until nothing is ready and nothing runs."""
    for _ in range(rounds):
        worker.poll(now)
        deadline = time.monotonic() + 5
        while worker.idle_threads < worker.config.threads and time.monotonic() < deadline:
            time.sleep(0.001)
        if not queue_storage().counts()["ready"]:
            return
    raise AssertionError("queue did not drain")


@pytest.fixture
def worker(app: App) -> Worker:
    storage = queue_storage()
    process_id = storage.register_process("Worker", "test-worker", time.time())
    w = Worker(storage, WorkerConfig(queues=("*",), threads=2))
    w.process_id = process_id
    yield w
    w.shutdown(1)


def test_perform_later_runs_with_arguments(worker: Worker) -> None:
    job = TjRecordJob.perform_later(datetime(2026, 1, 1, tzinfo=UTC), tag="x")
    assert job.provider_job_id is not None
    drain(worker, time.time())
    assert performed == [("record", (datetime(2026, 1, 1, tzinfo=UTC), "x"))]
    assert queue_storage().job_state(job.provider_job_id)["state"] == "finished"


def test_set_queue_priority_and_wait(worker: Worker) -> None:
    now = time.time()
    later = TjRecordJob.set(wait=300).perform_later("later")
    until = TjRecordJob.set(wait_until=datetime.now(UTC) + timedelta(minutes=5)).perform_later("until")
    td = TjRecordJob.set(wait=timedelta(seconds=60)).perform_later("td")
    other = TjMailJob.set(queue="urgent", priority=1).perform_later()
    storage = queue_storage()
    assert [storage.job_state(j.provider_job_id)["state"] for j in (later, until, td)] == ["scheduled"] * 3
    assert storage.job_state(other.provider_job_id)["queue_name"] == "urgent"
    drain(worker, now)
    assert performed == [("mail", "urgent")]
    Dispatcher(storage).poll(now + 301)
    drain(worker, now + 301)
    assert sorted(v[0] for _, v in performed[1:]) == ["later", "td", "until"]


def test_perform_now_on_class_and_instance(app: App) -> None:
    assert TjRecordJob.perform_now(1) == "done 1"
    assert TjRecordJob(2, tag="t").perform_now() == "done 2"
    assert TjRecordJob.set(queue="x").perform_now(3) == "done 3"
    assert queue_storage().counts()["ready"] == 0


def test_async_perform(worker: Worker) -> None:
    TjAsyncJob.perform_later(7)
    drain(worker, time.time())
    assert performed == [("async", 7)]
    assert TjAsyncJob.perform_now(8) is None and performed[-1] == ("async", 8)


def test_perform_all_later_is_one_transaction(worker: Worker) -> None:
    jobs = Job.perform_all_later([TjRecordJob(i) for i in range(10)] + [TjMailJob()])
    assert all(job.provider_job_id for job in jobs)
    drain(worker, time.time())
    assert len(performed) == 11


def test_bad_argument_fails_at_enqueue_and_enqueues_nothing(app: App) -> None:
    with pytest.raises(SerializationError, match=r"TjRecordJob: argument 0: a _thread.lock cannot be a job argument"):
        Job.perform_all_later([TjRecordJob(1), TjRecordJob(threading.Lock())])
    assert queue_storage().counts()["ready"] == 0


def test_retry_on_then_fails_after_attempts(worker: Worker) -> None:
    job = TjFlakyJob.perform_later("flaky")
    storage = queue_storage()
    now = time.time()
    for _attempt in range(3):
        drain(worker, now)
        Dispatcher(storage).poll(now + 10_000)
        now += 10_000
    assert performed == [("flaky", 1), ("flaky", 2), ("flaky", 3)]
    state = storage.job_state(job.provider_job_id)
    assert state["state"] == "failed" and state["executions"] == 2
    (failed,) = storage.failed_jobs()
    assert failed.error["exception_class"].endswith("TjFlakyError") and failed.error["message"] == "attempt 3"
    assert any("TjFlakyError" in line for line in failed.error["backtrace"])


def test_discard_on_and_plain_failure(worker: Worker) -> None:
    discarded = TjFlakyJob.perform_later("discard")
    failing = TjFlakyJob.perform_later("fail")
    drain(worker, time.time())
    storage = queue_storage()
    assert storage.job_state(discarded.provider_job_id)["state"] == "finished"
    assert storage.job_state(failing.provider_job_id)["state"] == "failed"
    assert storage.retry_failed([failing.provider_job_id], time.time()) == 1
    assert storage.job_state(failing.provider_job_id)["state"] == "ready"


def test_unknown_job_class_fails_and_stays_retryable(worker: Worker) -> None:
    from solidstack.queue.storage import NewJob

    storage = queue_storage()
    (job_id,) = storage.enqueue([NewJob("default", "NoSuchJob", '{"args":[],"kwargs":{}}', 0, "x")], time.time())
    drain(worker, time.time())
    (failed,) = storage.failed_jobs()
    assert failed.id == job_id and "unknown job class 'NoSuchJob'" in failed.error["message"]
    assert storage.retry_failed(None, time.time()) == 1


def test_test_adapter_records_and_performs(app: App) -> None:
    with queue_testing.recording() as adapter:
        TjRecordJob.perform_later("a")
        TjRecordJob.set(wait=60).perform_later("b")
        queue_testing.assert_enqueued(TjRecordJob, "a")
        queue_testing.assert_enqueued(TjRecordJob, count=2)
        with pytest.raises(AssertionError):
            queue_testing.assert_enqueued(TjMailJob)
        assert queue_testing.perform_enqueued_jobs() == 2
        assert isinstance(adapter, TestAdapter) and len(adapter.performed) == 2
    assert [v for _, (v, _) in performed] == ["a", "b"]
    assert queue_storage().counts()["ready"] == 0


def test_adapter_from_config_per_environment(app: App) -> None:
    (app.root / "config" / "queue.yml").write_text("test:\n  adapter: inline\nproduction:\n  adapter: solid_queue\n")
    import solidstack

    solidstack.configure(app.root, "test")
    TjRecordJob.perform_later("inline!")
    assert performed == [("record", ("inline!", ""))]
    use_adapter("test")
    TjRecordJob.perform_later("recorded")
    assert len(performed) == 1 and queue_testing.enqueued_jobs()[0].args == ("recorded",)


def test_job_names_must_be_unique() -> None:
    with pytest.raises(TypeError, match="job class name 'TjRecordJob' is taken"):
        type("TjRecordJob", (Job,), {"__module__": "elsewhere", "perform": lambda self: None})


def test_job_ids_are_random_uuid4_strings() -> None:
    """Job.job_id (ActiveJob's job_id) is built from os.urandom without the uuid module (decision 0076): still a
    version 4, RFC 4122 variant UUID in its canonical form, and unique."""
    import uuid

    ids = [TjRecordJob(i).job_id for i in range(20_000)]
    assert len(set(ids)) == len(ids)
    for text in ids[:2000]:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, text)
    # Every variant digit occurs: the two bits the variant fixes are the only ones not random.
    assert {text[19] for text in ids} == set("89ab")
    assert {text[14] for text in ids} == {"4"}
