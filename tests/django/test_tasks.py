"""SolidQueueBackend: Django's task backend contract on solidstack's queue, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.tasks import TaskResultStatus, default_task_backend, task_backends
from django.tasks.exceptions import InvalidTask, InvalidTaskBackend, TaskResultDoesNotExist
from django.tasks.signals import task_enqueued, task_finished, task_started
from djproject import tasks as t

from solidstack.django.tasks import SolidQueueBackend, solid_priority
from solidstack.queue import Worker, WorkerConfig, queue_storage
from solidstack.queue.processes.liveness import hostname


def drain(rounds: int = 200) -> None:
    """Run a real worker role in this process until nothing is ready, claimed or scheduled-and-due."""
    storage = queue_storage()
    worker = Worker(storage, WorkerConfig(queues=("*",), threads=1))
    worker.process_id = storage.register_process("Worker", "test-worker", time.time())
    try:
        for _ in range(rounds):
            worker.poll(time.time())
            deadline = time.monotonic() + 10
            while worker.idle_threads < worker.config.threads and time.monotonic() < deadline:
                time.sleep(0.002)
            counts = storage.counts()
            if not counts["ready"] and not counts["claimed"]:
                worker.poll(time.time())  # finishes what ran
                return
        raise AssertionError(f"queue did not drain: {storage.counts()}")
    finally:
        worker.shutdown(2)


def test_flags_and_backend() -> None:
    backend = task_backends["default"]
    assert isinstance(backend, SolidQueueBackend)
    assert backend.supports_defer and backend.supports_async_task
    assert backend.supports_get_result and backend.supports_priority


def test_priority_mapping_keeps_all_201_values_in_order() -> None:
    mapped = [solid_priority(p) for p in range(-100, 101)]
    # Higher Django priority runs sooner; solidstack runs lower numbers first: the order is exactly reversed.
    assert sorted(mapped) == list(reversed(mapped)) and len(set(mapped)) == 201


def test_enqueue_run_and_result(project: Path) -> None:
    result = t.add.enqueue(2, 3)
    assert result.status == TaskResultStatus.READY and result.backend == "default"
    stored = default_task_backend.get_result(result.id)
    assert stored.status == TaskResultStatus.READY and stored.args == [2, 3] and stored.enqueued_at is not None
    assert stored.task.func is t.add.func
    drain()
    assert t.performed() == [["add", 2, 3]]
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL and result.finished_at is not None
    assert result.return_value == 5
    assert result.enqueued_at <= result.finished_at
    assert t.add.get_result(result.id).status == TaskResultStatus.SUCCESSFUL


def test_higher_priority_runs_first(project: Path) -> None:
    t.later.enqueue("l")
    t.add.enqueue(1, 1)
    t.urgent.enqueue("u")
    t.add.using(priority=100).enqueue(9, 9)
    drain()
    assert [row[0] for row in t.performed()] == ["add", "urgent", "add", "later"]
    assert t.performed()[0] == ["add", 9, 9]


def test_failed_task_has_its_error(project: Path) -> None:
    result = t.boom.enqueue()
    drain()
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert [e.exception_class_path for e in result.errors] == ["builtins.ValueError"]
    assert "boom!" in result.errors[0].traceback and result.errors[0].exception_class is ValueError
    with pytest.raises(ValueError, match="Task failed"):
        _ = result.return_value


def test_run_after_defers(project: Path) -> None:
    result = t.add.using(run_after=datetime.now(UTC) + timedelta(hours=1)).enqueue(1, 2)
    assert queue_storage().counts()["scheduled"] == 1
    drain()
    assert t.performed() == []
    assert default_task_backend.get_result(result.id).status == TaskResultStatus.READY


def test_context_gets_the_attempt(project: Path) -> None:
    result = t.with_context.enqueue("c")
    drain()
    assert t.performed() == [["context", "c", 1, result.id]]
    assert default_task_backend.get_result(result.id).return_value == 1


def test_async_task_runs(project: Path) -> None:
    t.async_add.enqueue(4, 5)
    drain()
    assert t.performed() == [["async_add", 4, 5]]


def test_retry_option_runs_again_until_it_succeeds(project: Path) -> None:
    result = t.flaky.enqueue("f")
    drain()
    assert [row[2] for row in t.performed()] == [1, 2, 3]
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL and result.attempts == 3 and result.return_value == 3
    # Each failed attempt's error, in order (decision 0048), and the process that ran it.
    assert [e.exception_class_path for e in result.errors] == ["djproject.tasks.Flaky"] * 2
    assert "attempt 1" in result.errors[0].traceback and "attempt 2" in result.errors[1].traceback
    assert "Traceback (most recent call last)" in result.errors[0].traceback
    assert result.worker_ids[:2] == [f"{hostname()}:{os.getpid()}"] * 2
    assert result.started_at is not None and result.enqueued_at <= result.started_at <= result.finished_at


def test_discard_option_set_through_options_decorator(project: Path) -> None:
    result = t.discards.enqueue()
    drain()
    assert t.performed() == [["discards"]]
    assert default_task_backend.get_result(result.id).status == TaskResultStatus.SUCCESSFUL


def test_signals_fire(project: Path) -> None:
    seen: list[tuple[str, str]] = []

    def on(name: str):
        def receiver(sender, task_result, **kwargs):
            seen.append((name, task_result.status))
        return receiver

    receivers = [(task_enqueued, on("enqueued")), (task_started, on("started")), (task_finished, on("finished"))]
    for signal, receiver in receivers:
        signal.connect(receiver)
    try:
        t.add.enqueue(1, 2)
        t.boom.enqueue()
        drain()
    finally:
        for signal, receiver in receivers:
            signal.disconnect(receiver)
    assert seen == [("enqueued", "READY"), ("enqueued", "READY"), ("started", "RUNNING"),
                    ("finished", "SUCCESSFUL"), ("started", "RUNNING"), ("finished", "FAILED")]


def test_aenqueue_and_aget_result(project: Path) -> None:
    async def go():
        result = await t.add.aenqueue(1, 1)
        return result, await default_task_backend.aget_result(result.id)

    result, fetched = asyncio.run(go())
    assert fetched.id == result.id and fetched.status == TaskResultStatus.READY and fetched.args == [1, 1]


def test_unknown_result_raises(project: Path) -> None:
    for result_id in ("999999", "nope"):
        with pytest.raises(TaskResultDoesNotExist):
            default_task_backend.get_result(result_id)


# -- bad input: Django's own exceptions, naming the task and the problem -------------------------------------


def test_bad_input_is_invalid_task(project: Path) -> None:
    with pytest.raises(InvalidTask, match=r"djproject.tasks.add: argument 0 .* is not JSON"):
        t.add.enqueue(object(), 1)
    with pytest.raises(InvalidTask, match=r"djproject.tasks.add: argument 0 \(1, 2\) would come back as \[1, 2\]"):
        t.add.enqueue((1, 2), 1)
    with pytest.raises(InvalidTask, match=r"djproject.tasks.add: keyword argument 'b'"):
        t.add.enqueue(1, b={1: "x"})
    with pytest.raises(InvalidTask, match=r"djproject.tasks.add: Queue 'nowhere' is not valid"):
        t.add.using(queue_name="nowhere")
    with pytest.raises(InvalidTask, match=r"djproject.tasks.add: priority must be a whole number between"):
        t.add.using(priority=101)
    assert queue_storage().counts()["ready"] == 0


def test_task_not_at_module_level_is_refused() -> None:
    from django.tasks import task

    with pytest.raises(InvalidTask, match=r"inner: Task function must be defined at a module level"):
        @task
        def inner() -> None: ...


def test_bad_option_is_refused() -> None:
    from django.tasks import task

    with pytest.raises(InvalidTask, match="retry_on takes exception classes"):
        task(retry_on=("nope",))(t.record)


def test_unknown_backend_option() -> None:
    with pytest.raises(InvalidTaskBackend, match=r"TASKS\['x'\]: unknown OPTIONS speed"):
        SolidQueueBackend("x", {"OPTIONS": {"speed": 11}})


def test_a_cancelled_task_reads_as_failed(project: Path) -> None:
    result = t.add.enqueue(1, 2)
    queue_storage().cancel([int(result.id)], time.time())
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert [e.exception_class_path for e in result.errors] == ["solidstack.queue.features.outcomes.JobCancelled"]
