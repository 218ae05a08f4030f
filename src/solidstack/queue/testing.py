"""Helpers for app tests that use the ``test`` queue adapter (``adapter: test`` in queue.yml).

Jobs are recorded instead of run; assert on them, or perform them in the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from solidstack.queue.adapters import TestAdapter, current_adapter, use_adapter
from solidstack.queue.job import Job


def test_adapter() -> TestAdapter:
    """The current adapter, which must be the test adapter."""
    adapter = current_adapter()
    if not isinstance(adapter, TestAdapter):
        raise RuntimeError(f"the queue adapter is {adapter.name!r}, not 'test' (set adapter: test in queue.yml)")
    return adapter


test_adapter.__test__ = False  # type: ignore[attr-defined]


@contextmanager
def recording() -> Iterator[TestAdapter]:
    """Use a fresh test adapter inside the block, whatever is configured."""
    previous = current_adapter()
    adapter = TestAdapter()
    use_adapter(adapter)
    try:
        yield adapter
    finally:
        use_adapter(previous)


def enqueued_jobs(job_class: type[Job] | None = None) -> list[Job]:
    """Jobs enqueued and not yet performed, of one class or all."""
    jobs = test_adapter().enqueued
    return [job for job in jobs if job_class is None or isinstance(job, job_class)]


def assert_enqueued(job_class: type[Job], *args: Any, count: int | None = None, **kwargs: Any) -> None:
    """Assert that ``job_class`` was enqueued (with these arguments, when given; ``count`` times, when given)."""
    matching = [
        job for job in enqueued_jobs(job_class)
        if (not args and not kwargs) or (job.args == args and job.kwargs == kwargs)
    ]
    if count is None and not matching:
        raise AssertionError(f"no {job_class.__name__} enqueued with {args!r} {kwargs!r}; "
                             f"enqueued: {enqueued_jobs()!r}")
    if count is not None and len(matching) != count:
        raise AssertionError(f"expected {count} {job_class.__name__} enqueued, found {len(matching)}")


def perform_enqueued_jobs() -> int:
    """Perform every recorded job (and any they enqueue) in this thread; returns how many ran."""
    adapter = test_adapter()
    ran = 0
    while adapter.enqueued:
        job = adapter.enqueued.pop(0)
        job.perform_now()
        adapter.performed.append(job)
        ran += 1
    return ran


def clear_enqueued_jobs() -> None:
    test_adapter().enqueued.clear()
