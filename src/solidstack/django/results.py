"""A Django ``TaskResult`` read back from the queue's tables.

From the queue's public read of a job (``QueueStorage.job_result``: status, return value, timestamps, error),
its failed attempts (``QueueInspector.attempts``: one ``TaskError`` each, in order, and the process that ran each;
decision 0048) and one read of what those do not carry (arguments, the process holding the claim). A run that
succeeded or is going on is not an attempt record: ``worker_ids`` names its process while it runs and holds
``"unknown"`` for a finished run (decision 0701).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from django.tasks.base import TaskError, TaskResult, TaskResultStatus
from django.tasks.exceptions import TaskResultDoesNotExist

from solidstack.db.queries import to_pyformat
from solidstack.queue import QueueStorage
from solidstack.queue.admin.inspect import QueueInspector
from solidstack.queue.serialization import load_arguments

from .jobs import registered_task

# One read of a job, its claim and its failure; the named queries of queue/sql hold no such read yet.
_READ = """
SELECT j.id, j.class_name, j.arguments, j.created_at, j.updated_at, j.finished_at, j.executions, j.started_at,
       c.created_at AS claimed_at, p.name AS process_name, p.hostname AS process_host, p.pid AS process_pid,
       f.error AS error, f.created_at AS failed_at,
       CASE
         WHEN j.finished_at IS NOT NULL THEN 'finished'
         WHEN f.job_id IS NOT NULL THEN 'failed'
         WHEN c.job_id IS NOT NULL THEN 'claimed'
         ELSE 'waiting'
       END AS state
FROM solidstack_jobs j
LEFT JOIN solidstack_claimed_executions c ON c.job_id = j.id
LEFT JOIN solidstack_processes p ON p.id = c.process_id
LEFT JOIN solidstack_failed_executions f ON f.job_id = j.id
WHERE j.id = :id
"""

_STATUS = {"finished": TaskResultStatus.SUCCESSFUL, "failed": TaskResultStatus.FAILED,
           "claimed": TaskResultStatus.RUNNING, "waiting": TaskResultStatus.READY}


def _time(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


def read_result(storage: QueueStorage, result_id: str, backend_alias: str) -> TaskResult:
    """The result of job ``result_id``; ``TaskResultDoesNotExist`` when there is no such task here."""
    try:
        job_id = int(result_id)
    except (TypeError, ValueError):
        raise TaskResultDoesNotExist(f"no task result {result_id!r}: ids are job numbers") from None
    sql = to_pyformat(_READ) if storage.db.paramstyle == "pyformat" else _READ
    row = storage.db.query_one(sql, {"id": job_id})
    if row is None:
        raise TaskResultDoesNotExist(f"no task result {result_id!r} (never enqueued, or cleared as finished)")
    task = registered_task(row["class_name"])
    if task is None:
        raise TaskResultDoesNotExist(f"task result {result_id!r} is job {row['class_name']!r}, which is not a "
                                     "Django task imported in this process")
    args, kwargs = load_arguments(row["arguments"])
    state = row["state"]
    # ``executions`` counts the runs that ended in a retry; the run now going, finished or failed is one more.
    attempts = int(row["executions"]) + (0 if state == "waiting" else 1)
    worker_ids = ["unknown"] * attempts
    # One TaskError per failed attempt, oldest first (a run whose process died is one too).
    failures = QueueInspector(storage).attempts(job_id)
    for failure in failures:
        if 0 < failure.attempt <= attempts and failure.pid is not None:
            worker_ids[failure.attempt - 1] = f"{failure.hostname}:{failure.pid}"
    if state == "claimed" and row["process_name"]:
        worker_ids[-1] = f"{row['process_host']}:{row['process_pid']}"
    errors = [TaskError(exception_class_path=failure.exception_class,
                        traceback=failure.backtrace or failure.message) for failure in failures]
    if not errors and state == "failed" and row["error"]:  # failed before the attempts were kept (migration 0008)
        error = json.loads(row["error"])
        errors.append(TaskError(exception_class_path=error.get("exception_class", ""),
                                traceback="".join(error.get("backtrace") or [error.get("message", "")])))
    outcome = storage.job_result(job_id)
    if outcome is not None and outcome.status == "cancelled":
        errors = [TaskError(exception_class_path="solidstack.queue.features.outcomes.JobCancelled",
                            traceback=f"job {job_id} was cancelled")]
        state = "failed"
    finished_at = _time(row["finished_at"] if state == "finished" else row["failed_at"] or row["finished_at"])
    result = TaskResult(
        task=task, id=str(job_id), status=_STATUS[state], enqueued_at=_time(row["created_at"]),
        started_at=_time(row["claimed_at"] if state == "claimed" else row["started_at"] if state == "finished"
                         else failures[-1].started_at if state == "failed" and failures else None),
        finished_at=finished_at,
        last_attempted_at=_time(row["claimed_at"] or row["started_at"]) or (finished_at if attempts else None),
        args=list(args), kwargs=dict(kwargs), backend=backend_alias, errors=errors, worker_ids=worker_ids)
    if state == "finished" and outcome is not None:
        object.__setattr__(result, "_return_value", outcome.value)  # TaskResult is frozen; Django sets it so too
    return result

