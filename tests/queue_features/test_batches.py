"""Batches on both engines: callbacks once each, counts, reopening from inside a job, the finishing race."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from solidstack.queue import Batch, Job
from solidstack.queue.features.batches import count_succeeded, job_done
from solidstack.queue.storage import QueueStorage

RAN: list[tuple[str, tuple]] = []
_lock = threading.Lock()


def ran(name: str, *args: object) -> None:
    with _lock:
        RAN.append((name, args))


@pytest.fixture(autouse=True)
def _clear() -> None:
    RAN.clear()


class Q3BatchStep(Job):
    def perform(self, n: int, fail: bool = False) -> None:
        ran("step", n)
        if fail:
            raise RuntimeError(f"step {n} failed")


class Q3BatchParent(Job):
    def perform(self, children: int) -> None:
        ran("parent", children)
        with Batch.current() as batch:  # the jobs enqueued here join this job's batch
            for n in range(children):
                Q3BatchStep.perform_later(100 + n)
        assert batch.id is not None


class Q3OnSuccess(Job):
    def perform(self, batch_id: int) -> None:
        ran("success", batch_id)


class Q3OnFailure(Job):
    def perform(self, batch_id: int) -> None:
        ran("failure", batch_id)


class Q3OnFinish(Job):
    def perform(self, note: str) -> None:
        ran("finish", note)


def callbacks() -> list[str]:
    return sorted(name for name, _ in RAN if name in ("success", "failure", "finish"))


def test_all_succeed_fires_success_and_finish_once(storage: QueueStorage, work: Callable[..., None]) -> None:
    with Batch(on_success=Q3OnSuccess, on_failure=Q3OnFailure, on_finish=Q3OnFinish("done"),
               description="three steps") as batch:
        jobs = [Q3BatchStep.perform_later(n) for n in range(3)]
        assert all(job.provider_job_id is None for job in jobs)  # stored when the block ends
    assert all(job.provider_job_id is not None for job in jobs)
    status = batch.status()
    assert (status.total, status.pending, status.succeeded, status.failed, status.status) == (3, 3, 0, 0, "pending")
    work()
    assert callbacks() == ["finish", "success"]
    assert ("success", (batch.id,)) in RAN and ("finish", ("done",)) in RAN
    status = Batch.find(batch.id, storage=storage)
    assert (status.total, status.pending, status.succeeded, status.failed, status.status) == (
        3, 0, 3, 0, "succeeded")


def test_first_failure_fires_on_failure_once_then_finish(storage: QueueStorage, work: Callable[..., None]) -> None:
    with Batch(on_success=Q3OnSuccess, on_failure=Q3OnFailure, on_finish=Q3OnFinish("end")) as batch:
        Q3BatchStep.perform_later(1, fail=True)
        Q3BatchStep.perform_later(2, fail=True)
        Q3BatchStep.perform_later(3)
    work()
    assert callbacks() == ["failure", "finish"]
    status = batch.status()
    assert (status.pending, status.succeeded, status.failed, status.status) == (0, 1, 2, "failed")


def test_jobs_reopening_their_batch_add_to_it_before_it_can_finish(storage: QueueStorage,
                                                                    work: Callable[..., None]) -> None:
    with Batch(on_success=Q3OnSuccess) as batch:
        Q3BatchParent.perform_later(2)
    work()
    assert sorted(args[0] for name, args in RAN if name == "step") == [100, 101]
    assert callbacks() == ["success"]
    status = batch.status()
    assert (status.total, status.succeeded, status.pending) == (3, 3, 0)


def test_a_block_that_raises_stores_nothing(storage: QueueStorage) -> None:
    with pytest.raises(RuntimeError, match="boom"), Batch(on_finish=Q3OnFinish("x")):
        Q3BatchStep.perform_later(1)
        raise RuntimeError("boom")
    assert storage.counts()["ready"] == 0
    assert Batch.recent(storage=storage) == []


def test_a_bad_argument_in_a_batch_stores_nothing(storage: QueueStorage) -> None:
    with pytest.raises(TypeError, match="Q3BatchStep"), Batch(on_finish=Q3OnFinish("x")):
        Q3BatchStep.perform_later(1)
        Q3BatchStep.perform_later(object())
    assert storage.counts()["ready"] == 0
    assert Batch.recent(storage=storage) == []


@pytest.mark.parametrize("bad", [int, print, "Q3OnSuccess", object()])
def test_a_callback_that_is_not_a_job_fails_when_the_batch_is_defined(bad: object) -> None:
    with pytest.raises(TypeError, match=r"batch 'nightly': on_failure= must be a registered job"):
        Batch(on_failure=bad, description="nightly")


def test_last_two_jobs_finishing_at_once_fire_each_callback_once(storage: QueueStorage) -> None:
    """Two threads (two connections) count the last two jobs of a batch at the same instant, many times over (as
    failures, as successes, and as successes inside finish transactions): on_success and on_finish are enqueued
    once per batch, on_failure once when both fail."""
    rounds = 25
    for failing, in_finish in ((False, False), (True, False), (False, True)):
        batches = []
        for _ in range(rounds):
            with Batch(on_success=Q3OnSuccess, on_failure=Q3OnFailure, on_finish=Q3OnFinish("r")) as batch:
                a = Q3BatchStep.perform_later(1)
                b = Q3BatchStep.perform_later(2)
            batches.append((batch, a.provider_job_id, b.provider_job_id))
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def count(job_ids: list[int], barrier: threading.Barrier, outcome: str, errors: list[BaseException],
                  in_finish: bool) -> None:
            try:
                for job_id in job_ids:
                    barrier.wait(10)
                    if in_finish:  # as a worker's finish transaction counts successes
                        with storage.db.transaction() as conn:
                            count_succeeded(conn, storage, [job_id], 1.0)
                    else:
                        job_done(storage, job_id, outcome, 1.0)
            except BaseException as exc:
                errors.append(exc)

        outcome = "failed" if failing else "succeeded"
        threads = [threading.Thread(target=count, args=([ids[i] for _, *ids in batches], barrier, outcome, errors,
                                                         in_finish)) for i in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors
        names = [row["class_name"] for row in storage.db.query(
            "SELECT class_name FROM solidstack_jobs WHERE class_name LIKE 'Q3On%'")]
        expected = {"Q3OnFinish": rounds, "Q3OnFailure" if failing else "Q3OnSuccess": rounds}
        assert {name: names.count(name) for name in set(names)} == expected
        for batch, *_ in batches:
            status = batch.status()
            assert status.pending == 0 and status.finished
        storage.db.execute("DELETE FROM solidstack_jobs WHERE class_name LIKE 'Q3On%'")


def test_counting_a_job_twice_counts_it_once(storage: QueueStorage) -> None:
    with Batch(on_finish=Q3OnFinish("x")) as batch:
        a = Q3BatchStep.perform_later(1)
        Q3BatchStep.perform_later(2)
    job_done(storage, a.provider_job_id, "succeeded", 1.0)
    job_done(storage, a.provider_job_id, "succeeded", 2.0)  # run again after its process died
    status = batch.status()
    assert (status.pending, status.succeeded) == (1, 1)


def test_a_job_failed_by_process_deaths_is_counted_by_the_dispatcher(storage: QueueStorage) -> None:
    import time

    from solidstack.queue import Dispatcher

    with Batch(on_failure=Q3OnFailure, on_finish=Q3OnFinish("after deaths")) as batch:
        doomed = Q3BatchStep.perform_later(1)
    pid = storage.register_process("Worker", "doomed", time.time())
    storage.claim(pid, ["*"], 10, time.time())
    storage.deregister_process(pid, time.time(), died=True, reason="killed", max_deaths=1)
    assert storage.job_state(doomed.provider_job_id)["state"] == "failed"
    assert batch.status().pending == 1  # no worker lived to count it
    Dispatcher(storage).poll(time.time())
    status = batch.status()
    assert (status.pending, status.failed, status.status) == (0, 1, "failed")
    names = [row[0] for row in storage.db.query("SELECT class_name FROM solidstack_jobs ORDER BY id")]
    assert names == ["Q3BatchStep", "Q3OnFailure", "Q3OnFinish"]


def test_adding_to_a_finished_batch_fails_and_stores_nothing(storage: QueueStorage) -> None:
    from solidstack.queue import BatchError

    with Batch() as batch:
        only = Q3BatchStep.perform_later(1)
    job_done(storage, only.provider_job_id, "succeeded", 1.0)
    assert batch.status().finished
    before = storage.counts()["ready"]
    with pytest.raises(BatchError, match=f"batch {batch.id} is finished"), Batch.open(batch.id, storage=storage):
        Q3BatchStep.perform_later(2)  # inserted, then rolled back with the batch's refusal
    assert storage.counts()["ready"] == before
    assert batch.status().total == 1
