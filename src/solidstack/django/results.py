"""A Django ``TaskResult`` read back from the queue's tables.

From the queue's public read of a job (``QueueStorage.job_result``: status, return value, timestamps, error)
and one read of what that does not carry (arguments, the process holding the claim). Not kept by the queue:
the errors of attempts that were retried (only the last failure's) and which process ran earlier attempts
(``worker_ids`` holds ``"unknown"`` for them), see decision 0701.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from django.tasks.base import TaskError, TaskResult, TaskResultStatus
from django.tasks.exceptions import TaskResultDoesNotExist

from solidstack.db.queries import to_pyformat
from solidstack.queue import QueueStorage
from solidstack.queue.serialization import load_arguments

from .jobs import registered_task

# One read of a job, its claim and its failure; the named queries of queue/sql hold no such read yet.
_READ = """
SELECT j.id, j.class_name, j.arguments, j.created_at, j.updated_at, j.finished_at, j.executions,
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
    if state == "claimed" and row["process_name"]:
        worker_ids[-1] = f"{row['process_host']}:{row['process_pid']}"
    errors: list[TaskError] = []
    if state == "failed" and row["error"]:
        error = json.loads(row["error"])
        errors.append(TaskError(exception_class_path=error.get("exception_class", ""),
                                traceback="".join(error.get("backtrace") or [error.get("message", "")])))
    outcome = storage.job_result(job_id)
    if outcome is not None and outcome.status == "cancelled":
        errors = [TaskError(exception_class_path="solidstack.queue.outcomes.JobCancelled",
                            traceback=f"job {job_id} was cancelled")]
        state = "failed"
    finished_at = _time(row["finished_at"] if state == "finished" else row["failed_at"] or row["finished_at"])
    result = TaskResult(
        task=task, id=str(job_id), status=_STATUS[state], enqueued_at=_time(row["created_at"]),
        started_at=_time(row["claimed_at"]) if state == "claimed" else None,
        finished_at=finished_at, last_attempted_at=_time(row["claimed_at"]) or (finished_at if attempts else None),
        args=list(args), kwargs=dict(kwargs), backend=backend_alias, errors=errors, worker_ids=worker_ids)
    if state == "finished" and outcome is not None:
        object.__setattr__(result, "_return_value", outcome.value)  # TaskResult is frozen; Django sets it so too
    return result

