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


def test_two_worker_cycles_finishing_the_last_two_jobs_at_once_fire_each_callback_once(storage: QueueStorage,
                                                                                        ) -> None:
    """Decision 0061: two workers (two process ids, two connections) finish the last two jobs of a batch with
    their claim cycle at the same instant, many times over. On PostgreSQL the count is part of the one-statement
    cycle and the callbacks follow in a transaction of their own; on SQLite the count runs in the cycle's
    transaction. Either way on_success and on_finish are enqueued once per batch."""
    import time

    from solidstack.queue.features.batches import FinishCounter

    counter = storage.on_finish = FinishCounter(storage)
    workers = [storage.register_process("Worker", f"w{n}", time.time()) for n in (1, 2)]
    rounds = 20
    batches = []
    for _ in range(rounds):
        with Batch(on_success=Q3OnSuccess, on_finish=Q3OnFinish("cycle")) as batch:
            Q3BatchStep.perform_later(1)
            Q3BatchStep.perform_later(2)
        first = storage.claim(workers[0], ["*"], 1, time.time())
        second = storage.claim(workers[1], ["*"], 1, time.time())
        for row in first + second:
            counter.expect(row.id)
        batches.append((batch, [first[0].id, second[0].id]))
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def finish(index: int) -> None:
        try:
            for _, ids in batches:
                barrier.wait(10)
                storage.claim(workers[index], ["nothing-here"], 0, time.time(), finished=[ids[index]])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=finish, args=(index,)) for index in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    names = [row["class_name"] for row in storage.db.query(
        "SELECT class_name FROM solidstack_jobs WHERE class_name LIKE 'Q3On%'")]
    assert {name: names.count(name) for name in set(names)} == {"Q3OnSuccess": rounds, "Q3OnFinish": rounds}
    for batch, _ in batches:
        status = batch.status()
        assert (status.pending, status.succeeded, status.finished) == (0, 2, True)


def test_a_batch_counted_to_zero_by_a_worker_that_died_gets_its_callbacks_from_the_dispatcher(
        storage: QueueStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    """Decision 0061 (PostgreSQL): the cycle statement counted the batch's last job, and the process died before
    the transaction that enqueues the callbacks. The dispatcher's sweep enqueues them, once."""
    import time

    from solidstack.queue import Dispatcher
    from solidstack.queue.features import batches as batches_module

    if storage.db.dialect == "sqlite":
        pytest.skip("SQLite counts in the finishing transaction: its callbacks commit with the count")
    counter = storage.on_finish = batches_module.FinishCounter(storage)
    with Batch(on_success=Q3OnSuccess, on_finish=Q3OnFinish("stranded")) as batch:
        Q3BatchStep.perform_later(1)
    pid = storage.register_process("Worker", "dies", time.time())
    (row,) = storage.claim(pid, ["*"], 1, time.time())
    counter.expect(row.id)

    def dies(*args: object) -> bool:
        raise RuntimeError("the process died here")

    monkeypatch.setattr(batches_module, "complete_counted", dies)
    storage.claim(pid, ["*"], 0, time.time(), finished=[row.id])
    monkeypatch.undo()
    status = batch.status()
    assert (status.pending, status.succeeded, status.finished) == (0, 1, False)  # counted, callbacks not yet
    storage.on_finish = None  # the process is gone: its retry with the next cycle never comes
    for _ in range(2):
        Dispatcher(storage).poll(time.time())
    names = [row[0] for row in storage.db.query("SELECT class_name FROM solidstack_jobs ORDER BY id")]
    assert names == ["Q3BatchStep", "Q3OnSuccess", "Q3OnFinish"]
    assert batch.status().finished
