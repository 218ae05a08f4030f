"""Each Django task runs as a solidstack job: one job class per task, registered under the task's module path.

A worker runs only tasks whose module it imported (``manage.py solidstack jobs`` imports every installed app's
``tasks`` module): the stored name is looked up in solidstack's job registry, never imported from the database.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.tasks.base import TaskContext, TaskError, TaskResult, TaskResultStatus
from django.tasks.signals import task_finished, task_started
from django.utils.json import normalize_json

from solidstack.queue import Job, discard_on, limits_concurrency, retry_on

if TYPE_CHECKING:
    from django.tasks import Task

_classes: dict[str, type[TaskJob]] = {}
_lock = threading.Lock()


def worker_id() -> str:
    """This process's id in ``TaskResult.worker_ids`` (host and pid; a forked worker has its own)."""
    return f"{socket.gethostname()}:{os.getpid()}"


class TaskJob(Job):
    """The job that runs one Django task; subclassed per task by :func:`job_class_for`."""

    job_name = "solidstack.django.TaskJob"
    task: Task

    def perform(self, *args: Any, **kwargs: Any) -> Any:
        task = type(self).task
        backend = task.get_backend()
        now = datetime.now(UTC)
        # One worker id per attempt, as Django counts attempts (TaskContext.attempt == len(worker_ids)); the
        # queue keeps no record of which process ran the earlier attempts.
        result = TaskResult(task=task, id=str(self.provider_job_id or self.job_id), status=TaskResultStatus.RUNNING,
                            enqueued_at=None, started_at=now, finished_at=None, last_attempted_at=now,
                            args=list(args), kwargs=dict(kwargs), backend=task.backend, errors=[],
                            worker_ids=["unknown"] * (self.executions - 1) + [worker_id()])
        task_started.send(type(backend), task_result=result)
        try:
            if task.takes_context:
                value = task.call(TaskContext(task_result=result), *args, **kwargs)
            else:
                value = task.call(*args, **kwargs)
            value = normalize_json(value)
        except Exception as exc:
            if self.outcome_of(exc).status == "failed":  # the last attempt: Django's task is finished
                kind = type(exc)
                import traceback

                result.errors.append(TaskError(exception_class_path=f"{kind.__module__}.{kind.__qualname__}",
                                               traceback="".join(traceback.format_exception(exc))))
                _finish(result, TaskResultStatus.FAILED)
                task_finished.send(type(backend), task_result=result)
            raise
        _finish(result, TaskResultStatus.SUCCESSFUL)
        object.__setattr__(result, "_return_value", value)
        task_finished.send(type(backend), task_result=result)
        return value


def _finish(result: TaskResult, status: TaskResultStatus) -> None:
    object.__setattr__(result, "status", status)
    object.__setattr__(result, "finished_at", datetime.now(UTC))


def _concurrency_key(key: Callable[..., Any] | str | None) -> Callable[[Any], Any] | str | None:
    if key is None or isinstance(key, str):
        return key
    return lambda job: key(*job.args, **job.kwargs)  # the task's own arguments, not the job


def job_class_for(task: Task) -> type[TaskJob]:
    """The job class of ``task`` (made and registered on first use; the module-level task is kept)."""
    path = task.module_path
    with _lock:
        cls = _classes.get(path)
        if cls is not None:
            return cls
        cls = type(f"{task.func.__name__}_job", (TaskJob,), {
            "job_name": path, "task": task, "__module__": task.func.__module__,
            "__qualname__": f"{task.func.__qualname__}_job", "_rescue_rules": ()})
        options = task_options(task)
        if options.get("discard_on"):
            cls = discard_on(*options["discard_on"])(cls)
        if options.get("retry_on"):
            cls = retry_on(*options["retry_on"], wait=options.get("retry_wait", 3.0),
                           attempts=options.get("retry_attempts", 5))(cls)
        if options.get("concurrency_limit"):
            limit = dict(options["concurrency_limit"])
            limit["key"] = _concurrency_key(limit.get("key"))
            cls = limits_concurrency(**limit)(cls)
        _classes[path] = cls
        return cls


def registered_task(path: str) -> Task | None:
    """The task registered under ``path`` in this process, if any."""
    cls = _classes.get(path)
    return cls.task if cls is not None else None


#: Options a task may carry beyond Django's: on Django 6.1 as ``@task(...)`` keywords (SolidTask's fields), on
#: 6.0 through :func:`solidstack.django.tasks.options` on the function.
OPTION_NAMES = ("retry_on", "retry_attempts", "retry_wait", "discard_on", "concurrency_limit")


def task_options(task: Task) -> dict[str, Any]:
    options = dict(getattr(task.func, "__solidstack_options__", {}))
    for name in OPTION_NAMES:
        value = getattr(task, name, None)
        if value not in (None, ()):
            options[name] = value
    return options
