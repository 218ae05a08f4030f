"""``django.tasks`` on solidstack's queue: ``TASKS = {"default": {"BACKEND":
"solidstack.django.tasks.SolidQueueBackend"}}``.

A task is enqueued as a solidstack job (one transaction in the queue database) and run by ``manage.py solidstack
jobs``. Django's priority (-100..100, higher sooner) is stored negated, as solidstack runs lower numbers first:
the 201 values keep their order. Result ids are the job numbers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.core import checks
from django.db import transaction
from django.tasks import Task, TaskResult, TaskResultStatus
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.exceptions import InvalidTask, InvalidTaskBackend
from django.tasks.signals import task_enqueued
from django.utils.json import normalize_json

from solidstack.queue import SerializationError, queue_storage

from .jobs import OPTION_NAMES, job_class_for, registered_task
from .results import read_result

__all__ = ["SolidQueueBackend", "SolidTask", "enqueue_on_commit", "options", "solid_priority"]

#: OPTIONS the backend knows (none yet: the queue's settings are in queue.yml or SOLIDSTACK["QUEUE"]).
KNOWN_OPTIONS: frozenset[str] = frozenset()


def solid_priority(django_priority: int) -> int:
    """Django's priority (higher runs sooner) as solidstack's (lower runs sooner)."""
    return -django_priority


@dataclass(frozen=True, slots=True, kw_only=True)
class SolidTask(Task):
    """The backend's ``task_class``: Django's Task plus solidstack's options, set as ``@task(...)`` keywords on
    Django 6.1 (6.0's ``@task`` passes no extra keywords: use :func:`options` there).

    ``retry_on``: exception classes to retry on, ``retry_attempts`` runs in all (default 5), ``retry_wait``
    seconds or ``"polynomially_longer"``; ``discard_on``: exception classes that end the task quietly;
    ``concurrency_limit``: ``{"to": 1, "key": callable(*args, **kwargs) or str, "duration": 180}``.
    """

    retry_on: tuple[type[BaseException], ...] = ()
    retry_attempts: int | None = None
    retry_wait: float | str | None = None
    discard_on: tuple[type[BaseException], ...] = ()
    concurrency_limit: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        Task.__post_init__(self)  # Django's validation (slots: no zero-argument super())
        # Registered as a job at definition (module import), so a worker that imported the module runs it.
        job_class_for(self)


def options(**values: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Set solidstack's task options on the function, under ``@task`` (works on Django 6.0 and 6.1)::

        @task
        @options(retry_on=(ConnectionError,), retry_attempts=3)
        def send(): ...
    """
    unknown = sorted(set(values) - set(OPTION_NAMES))
    if unknown:
        raise TypeError(f"unknown solidstack task option(s) {', '.join(unknown)} (known: {', '.join(OPTION_NAMES)})")

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        func.__solidstack_options__ = values  # type: ignore[attr-defined]
        return func

    return decorate


class SolidQueueBackend(BaseTaskBackend):
    """Django's task backend contract on solidstack's queue (SQLite or PostgreSQL)."""

    task_class = SolidTask
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        unknown = sorted(set(self.options) - KNOWN_OPTIONS)
        if unknown:
            raise InvalidTaskBackend(f"TASKS[{alias!r}]: unknown OPTIONS {', '.join(unknown)} for "
                                     f"{type(self).__name__} (it takes none: the queue is set in queue.yml or "
                                     "settings.SOLIDSTACK['QUEUE'])")

    def validate_task(self, task: Task) -> None:
        try:
            super().validate_task(task)
        except InvalidTask as exc:
            raise InvalidTask(f"task {task.module_path}: {exc}") from None
        if isinstance(task, SolidTask):
            self._validate_options(task)

    def _validate_options(self, task: SolidTask) -> None:
        for name in ("retry_on", "discard_on"):
            for kind in getattr(task, name):
                if not (isinstance(kind, type) and issubclass(kind, BaseException)):
                    raise InvalidTask(f"task {task.module_path}: {name} takes exception classes, got {kind!r}")
        if task.retry_attempts is not None and (not isinstance(task.retry_attempts, int) or task.retry_attempts < 1):
            raise InvalidTask(f"task {task.module_path}: retry_attempts must be a whole number >= 1")
        limit = task.concurrency_limit
        if limit is not None and (not isinstance(limit, dict) or set(limit) - {"to", "key", "duration", "group",
                                                                                "on_conflict"}):
            raise InvalidTask(f"task {task.module_path}: concurrency_limit takes a dict of to, key, duration, "
                              f"group, on_conflict; got {limit!r}")

    # -- enqueue ---------------------------------------------------------------------------------------------

    def enqueue(self, task: Task, args: Any, kwargs: Any) -> TaskResult:
        self.validate_task(task)
        args, kwargs = _round_trip(task, args, kwargs)
        job = job_class_for(task)(*args, **kwargs)
        try:
            job.enqueue(queue=task.queue_name, priority=solid_priority(task.priority),
                        wait_until=task.run_after.timestamp() if task.run_after is not None else None)
        except SerializationError as exc:
            raise InvalidTask(f"task {task.module_path}: {exc}") from None
        result = TaskResult(task=task, id=str(job.provider_job_id or job.job_id), status=TaskResultStatus.READY,
                            enqueued_at=datetime.now(UTC), started_at=None, finished_at=None,
                            last_attempted_at=None, args=args, kwargs=kwargs, backend=self.alias, errors=[],
                            worker_ids=[])
        task_enqueued.send(type(self), task_result=result)
        return result

    async def aenqueue(self, task: Task, args: Any, kwargs: Any) -> TaskResult:
        # The queue's storage is sync; a thread keeps the event loop free (thread_sensitive: Django's default).
        return await sync_to_async(self.enqueue, thread_sensitive=True)(task, args, kwargs)

    # -- results ---------------------------------------------------------------------------------------------

    def get_result(self, result_id: str) -> TaskResult:
        return read_result(queue_storage(), result_id, self.alias)

    async def aget_result(self, result_id: str) -> TaskResult:
        return await sync_to_async(self.get_result, thread_sensitive=True)(result_id)

    # -- checks ----------------------------------------------------------------------------------------------

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        from .checks import backend_checks

        return backend_checks(self)


def _round_trip(task: Task, args: Any, kwargs: Any) -> tuple[list[Any], dict[str, Any]]:
    """The arguments as JSON gives them back; ``InvalidTask`` naming the argument when they would change."""
    named = [(f"argument {index}", value) for index, value in enumerate(args)]
    named += [(f"keyword argument {key!r}", value) for key, value in kwargs.items()]
    for label, value in named:
        try:
            normal = normalize_json(value)
            same = json.loads(json.dumps(normal)) == value
        except (TypeError, ValueError) as exc:
            raise InvalidTask(f"task {task.module_path}: {label} {value!r} is not JSON ({exc}); Django's tasks "
                              "take JSON arguments") from None
        if not same:
            raise InvalidTask(f"task {task.module_path}: {label} {value!r} would come back as "
                              f"{json.loads(json.dumps(normal))!r} from JSON; pass it in that form")
    return list(args), dict(kwargs)


def enqueue_on_commit(task: Task, *args: Any, using: str | None = None, **kwargs: Any) -> None:
    """Enqueue ``task`` once the surrounding ``transaction.atomic()`` on ``using`` commits; dropped on rollback.

    Outside a transaction it is enqueued at once. Use it when the task reads rows the transaction writes: a
    worker must not start before they are visible.
    """
    task.get_backend().validate_task(task)
    _round_trip(task, args, kwargs)  # bad arguments fail here, in the caller, not at commit
    transaction.on_commit(lambda: task.enqueue(*args, **kwargs), using=using)


def task_for(path: str) -> Task | None:
    """The task registered under ``path`` in this process (for recurring tasks and results)."""
    return registered_task(path)
