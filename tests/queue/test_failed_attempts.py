"""Every failed attempt of a job is kept (migration 0008, decision 0048): written by the transaction of the failure,
retry or death, capped per job, deleted with the job; and a finished job keeps its start time. On both engines."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from solidstack.config import App
from solidstack.queue import Job, Runner, Worker, WorkerConfig, queue_storage, retry_on, use_adapter
from solidstack.queue.adapters import SolidQueueAdapter
from solidstack.queue.admin.inspect import QueueInspector
from solidstack.queue.features.outcomes import JobTimeout
from solidstack.queue.retention import clear_finished_jobs
from solidstack.queue.storage import ATTEMPTS_KEPT, NewJob, QueueStorage
from waiting import wait_for

NOW = 1_800_000_000.0


@pytest.fixture
def storage(engine_storage: QueueStorage) -> QueueStorage:
    return engine_storage


def new(at: float | None = None, queue: str = "default") -> NewJob:
    return NewJob(queue, "Flaky", '{"args":[],"kwargs":{}}', 0, str(uuid.uuid4()), at)


def error(n: int) -> dict[str, Any]:
    return {"exception_class": "app.errors.Boom", "message": f"boom <{n}>",
            "backtrace": ["Traceback (most recent call last):\n", f'  File "app.py", line {n}, in perform\n',
                          f"app.errors.Boom: boom <{n}>\n"]}


def stored_attempts(storage: QueueStorage) -> int:
    row = storage.db.query_one("SELECT COUNT(*) AS n FROM solidstack_failed_attempts")
    assert row is not None
    return int(row["n"])


def claim_one(storage: QueueStorage, pid: int, now: float, queue: str = "*") -> int:
    rows = storage.claim(pid, [queue], 1, now)
    assert len(rows) == 1
    return rows[0].id


def test_each_failed_attempt_is_kept_with_its_error_process_and_times(storage: QueueStorage) -> None:
    pid = storage.register_process("worker", "worker-1", NOW)
    [job_id] = storage.enqueue([new()], NOW)
    assert claim_one(storage, pid, NOW + 1) == job_id
    assert storage.retry_later(job_id, pid, 1, NOW + 5, NOW + 2, error=error(1))  # retried in 3 s
    assert storage.dispatch_due(NOW + 5, 10) == 1
    assert claim_one(storage, pid, NOW + 6) == job_id
    assert storage.retry_later(job_id, pid, 2, NOW + 7, NOW + 7, error=error(2))  # retried at once
    assert claim_one(storage, pid, NOW + 8) == job_id
    assert storage.fail(job_id, pid, error(3), NOW + 9)

    attempts = QueueInspector(storage).attempts(job_id)
    assert [(a.attempt, a.outcome) for a in attempts] == [(1, "retried"), (2, "retried"), (3, "failed")]
    assert [(a.started_at, a.failed_at) for a in attempts] == [(NOW + 1, NOW + 2), (NOW + 6, NOW + 7),
                                                             (NOW + 8, NOW + 9)]
    first = attempts[0]
    assert first.exception_class == "app.errors.Boom" and first.message == "boom <1>"
    assert first.backtrace == "".join(error(1)["backtrace"])
    assert (first.process_id, first.process_name, first.pid) == (pid, "worker-1", storage.processes()[0]["pid"])
    assert first.process is not None and first.process.startswith("worker-1 (pid ")
    # The job's page reads them with the job; the failed execution is still the last error.
    detail = QueueInspector(storage).job(job_id)
    assert detail is not None and detail.state == "failed" and detail.error["message"] == "boom <3>"
    assert [a.message for a in detail.attempts] == ["boom <1>", "boom <2>", "boom <3>"]


def test_a_retry_that_is_not_a_failure_keeps_nothing_and_a_lost_claim_writes_nothing(storage: QueueStorage) -> None:
    pid = storage.register_process("worker", "worker-1", NOW)
    other = storage.register_process("worker", "worker-2", NOW)
    [job_id] = storage.enqueue([new()], NOW)
    claim_one(storage, pid, NOW + 1)
    assert storage.retry_later(job_id, pid, 0, NOW + 60, NOW + 2)  # a rate limit's wait: no error
    assert stored_attempts(storage) == 0
    storage.dispatch_due(NOW + 60, 10)
    claim_one(storage, pid, NOW + 61)
    # Another process does not hold the claim: its late failure and retry are not recorded.
    assert not storage.fail(job_id, other, error(1), NOW + 62)
    assert not storage.retry_later(job_id, other, 1, NOW + 63, NOW + 62, error=error(2))
    assert stored_attempts(storage) == 0


def test_attempts_are_capped_per_job_newest_kept(storage: QueueStorage) -> None:
    assert ATTEMPTS_KEPT == 25 and storage.attempts_kept == ATTEMPTS_KEPT
    storage.attempts_kept = 3
    pid = storage.register_process("worker", "worker-1", NOW)
    [job_id, other_id] = storage.enqueue([new(), new(queue="other")], NOW)
    for n in range(1, 7):
        claim_one(storage, pid, NOW + n, "default")
        assert storage.retry_later(job_id, pid, n, NOW + n, NOW + n, error=error(n))
    claim_one(storage, pid, NOW + 10, "other")  # the other job: its one attempt is not trimmed by the first's
    assert storage.fail(other_id, pid, error(99), NOW + 10)
    assert [a.attempt for a in QueueInspector(storage).attempts(job_id)] == [4, 5, 6]
    assert [a.message for a in QueueInspector(storage).attempts(other_id)] == ["boom <99>"]


def test_process_deaths_are_attempts_and_the_last_one_fails_the_job(storage: QueueStorage) -> None:
    [job_id] = storage.enqueue([new()], NOW)
    first = storage.register_process("worker", "worker-1", NOW)
    claim_one(storage, first, NOW + 1)
    again, failed = storage.deregister_process(first, NOW + 2, died=True, reason="process worker-1 died",
                                               max_deaths=2)
    assert (again, failed) == ([job_id], [])
    # The second process's row is gone before anyone notices: its claim is an orphan.
    second = storage.register_process("worker", "worker-2", NOW + 3)
    claim_one(storage, second, NOW + 4)
    storage.db.execute(storage.sql["delete_process"], {"id": second})
    assert storage.release_orphaned_claims(NOW + 5, max_deaths=2) == ([], [job_id])

    attempts = QueueInspector(storage).attempts(job_id)
    assert [(a.attempt, a.outcome, a.exception_class) for a in attempts] == [
        (1, "died", "ProcessDiedError"), (1, "failed", "ProcessDiedError")]
    assert attempts[0].process_name == "worker-1" and attempts[0].started_at == NOW + 1
    assert "process worker-1 died" in attempts[0].message
    assert attempts[1].process_id == second and attempts[1].process_name is None  # its row was gone
    assert attempts[1].started_at == NOW + 4
    assert storage.job_state(job_id)["state"] == "failed"  # type: ignore[index]


def test_attempts_go_with_their_job_never_orphaned(storage: QueueStorage) -> None:
    pid = storage.register_process("worker", "worker-1", NOW)
    discarded, retried, finished, dropped = storage.enqueue([new(), new(), new(), new()], NOW)
    for job_id in (discarded, retried, finished, dropped):
        assert claim_one(storage, pid, NOW + 1) == job_id
        storage.fail(job_id, pid, error(job_id), NOW + 2)
    assert stored_attempts(storage) == 4
    # Retried by hand: its history stays (it is the same job); the next failure adds to it.
    assert storage.retry_failed([retried, finished, dropped], NOW + 3) == 3
    assert stored_attempts(storage) == 4
    assert storage.discard_failed([discarded]) == 1
    assert stored_attempts(storage) == 3
    for _ in range(3):
        job_id = claim_one(storage, pid, NOW + 4)
        if job_id == retried:
            storage.fail(job_id, pid, error(7), NOW + 5)
        else:
            storage.finish([job_id], pid, NOW + 5, preserve=job_id == finished)
    # Finished without keeping the job: its attempts went with it.
    assert [a.job_id for a in QueueInspector(storage).attempts(dropped)] == []
    assert [a.message for a in QueueInspector(storage).attempts(retried)] == [f"boom <{retried}>", "boom <7>"]
    assert clear_finished_jobs(storage, finished_before=NOW + 6) == 1
    assert QueueInspector(storage).attempts(finished) == []
    assert storage.discard_failed(None) == 1
    assert stored_attempts(storage) == 0


def test_a_finished_job_keeps_its_start_and_the_minute_its_latency(storage: QueueStorage) -> None:
    pid = storage.register_process("worker", "worker-1", NOW)
    base = NOW - NOW % 60  # the start of a minute
    waited, scheduled = storage.enqueue([new(), new(at=base + 20)], base)
    assert storage.claim(pid, ["*"], 1, base + 2)[0].id == waited
    storage.finish([waited], pid, base + 3)
    storage.dispatch_due(base + 20, 10)
    # A busy worker finishes in the next claim's transaction (one statement on PostgreSQL).
    assert storage.claim(pid, ["*"], 5, base + 21)[0].id == scheduled
    assert storage.claim(pid, ["*"], 5, base + 22, finished=[scheduled]) == []
    inspector = QueueInspector(storage)
    assert inspector.job(waited).started_at == base + 2  # type: ignore[union-attr]
    assert inspector.job(scheduled).started_at == base + 21  # type: ignore[union-attr]
    minute = inspector.finished_minutes(base)["default"][int(base // 60)]
    assert (minute.finished, minute.started) == (2, 2)
    assert minute.latency_mean == pytest.approx(1.5) and minute.latency_max == pytest.approx(2.0)
    assert inspector.finished_per_minute(base) == {"default": {int(base // 60): 2}}


def test_jobs_result_on_the_command_line_lists_the_attempts(app: App) -> None:
    storage = queue_storage()
    pid = storage.register_process("worker", "worker-1", NOW)
    [job_id] = storage.enqueue([new()], NOW)
    claim_one(storage, pid, NOW + 1)
    storage.retry_later(job_id, pid, 1, NOW + 2, NOW + 2, error=error(1))
    claim_one(storage, pid, NOW + 3)
    storage.fail(job_id, pid, error(2), NOW + 4)
    env = {**os.environ, "SOLIDSTACK_ROOT": str(app.root), "SOLIDSTACK_ENV": "test"}
    out = subprocess.run([str(Path(sys.executable).parent / "solidstack"), "jobs", "result", str(job_id)],
                         capture_output=True, text=True, timeout=60, env=env, cwd=app.root)
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert shown["status"] == "failed"
    assert [(a["attempt"], a["outcome"], a["message"]) for a in shown["attempts"]] == [
        (1, "retried", "boom <1>"), (2, "failed", "boom <2>")]
    assert 'line 2, in perform' in shown["attempts"][1]["backtrace"]
    assert shown["attempts"][0]["process"].startswith("worker-1 (pid ")


def test_a_job_retried_by_hand_is_due_from_its_retry(storage: QueueStorage) -> None:
    pid = storage.register_process("worker", "worker-1", NOW)
    base = NOW - NOW % 60
    [job_id] = storage.enqueue([new()], base - 600)
    claim_one(storage, pid, base - 599)
    storage.fail(job_id, pid, error(1), base - 598)
    assert storage.retry_failed([job_id], base + 10) == 1
    claim_one(storage, pid, base + 13)
    storage.finish([job_id], pid, base + 14)
    minute = QueueInspector(storage).finished_minutes(base)["default"][int(base // 60)]
    assert minute.latency_mean == pytest.approx(3.0)  # from the retry, not from the enqueue ten minutes before


@retry_on(ValueError, wait=0, attempts=3)
class FaAlwaysFailingJob(Job):
    def perform(self) -> None:
        raise ValueError(f"run {self.executions} <failed>")


@retry_on(JobTimeout, wait=0, attempts=2)
class FaTimingOutJob(Job):
    timeout = 0.3

    async def perform(self) -> None:
        await asyncio.sleep(5)


@pytest.fixture
def worker_storage(engine_storage: QueueStorage) -> Iterator[QueueStorage]:
    use_adapter(SolidQueueAdapter(engine_storage))
    yield engine_storage
    use_adapter(None)


def test_a_real_worker_keeps_the_error_of_every_retried_and_timed_out_run(worker_storage: QueueStorage) -> None:
    storage = worker_storage
    failing, timing_out = FaAlwaysFailingJob.perform_later(), FaTimingOutJob.perform_later()
    worker = Worker(storage, WorkerConfig(threads=2, polling_interval=0.05, async_capacity=5))
    runner = Runner(worker, storage, heartbeat_interval=5.0, shutdown_timeout=3.0)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    assert runner.started.wait(10)
    try:
        assert wait_for(lambda: all(storage.job_state(job.provider_job_id)["state"] == "failed"  # type: ignore[index]
                                    for job in (failing, timing_out)), 30)
    finally:
        runner.stop()
        thread.join(15)
    inspector = QueueInspector(storage)
    runs = inspector.attempts(failing.provider_job_id)  # type: ignore[arg-type]
    assert [(a.attempt, a.outcome, a.message) for a in runs] == [
        (1, "retried", "run 1 <failed>"), (2, "retried", "run 2 <failed>"), (3, "failed", "run 3 <failed>")]
    assert all("in perform" in a.backtrace and a.process_id == worker.process_id for a in runs)
    assert all(a.started_at is not None and a.started_at <= a.failed_at for a in runs)
    timeouts = inspector.attempts(timing_out.provider_job_id)  # type: ignore[arg-type]
    assert [(a.attempt, a.outcome) for a in timeouts] == [(1, "retried"), (2, "failed")]
    assert all(a.exception_class.endswith("JobTimeout") and "ran past its timeout of 0.3 s" in a.message
               for a in timeouts)
