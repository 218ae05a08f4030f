"""Results and cancellation: what a finished job returned, and jobs cancelled before or while they run.

A job's return value is stored as typed JSON (:mod:`solidstack.typed`, as its arguments are) in its ``jobs``
row, written in the transaction that finishes it, and kept while finished jobs are kept. A job returning None
writes nothing: the batched finish of a busy worker costs what it did.

Cancelling a job that waits (ready, scheduled, blocked) removes it from its state table and finishes it with
``cancelled_at`` set: it stays visible as *cancelled* until finished jobs are cleared (decision 0031). A job
running when it is cancelled gets ``cancelled_at`` alone; its worker reads it (see :mod:`.watchdog`), cancels
an async job on its loop and sets ``cancelled`` on a plain one, and the job is then finished as cancelled.

The SQL is in ``sql/<dialect>/outcomes.sql``; the logic is here, once for both engines.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from solidstack.queue._sql import file_queries
from solidstack.queue.serialization import SerializationError
from solidstack.typed import TypedValueError, from_json, to_json

if TYPE_CHECKING:
    from solidstack.queue.storage import QueueStorage

#: Statuses a job can be in, as :meth:`Outcomes.job_result` reports them.
STATUSES = ("ready", "scheduled", "blocked", "claimed", "failed", "finished", "cancelled")
#: Statuses after which nothing more happens to a job (unless a failed one is retried).
DONE = ("failed", "finished", "cancelled")
#: Waiting for a result: the first pause between reads, doubled up to the last.
WAIT_FIRST = 0.005
WAIT_MAX = 0.5


class JobTimeout(Exception):
    """A job ran past its ``timeout``; it is recorded as failed with this error (``retry_on(JobTimeout)``)."""


class JobCancelled(Exception):
    """Reading the result of a job that was cancelled."""


class JobFailed(Exception):
    """Reading the result of a job that failed; ``error`` is its failed execution's error record."""

    def __init__(self, message: str, error: dict[str, Any] | None) -> None:
        super().__init__(message)
        self.error = error or {}


class CancelError(LookupError):
    """A job cannot be cancelled: unknown, or already done. The message names the job id."""


class ResultTimeout(TimeoutError):
    """A job did not finish within the wait for its result."""


@dataclass(frozen=True)
class JobResult:
    """What is known of one job: its status (one of :data:`STATUSES`), return value, timestamps and error.

    ``value`` is the decoded return value (None until the job finished, or when it returned None); ``error`` is
    the failed execution's record (``exception_class``, ``message``, ``backtrace``) when ``status`` is failed.
    Times are Unix seconds.
    """

    id: int
    class_name: str
    queue_name: str
    active_job_id: str
    status: str
    value: Any
    executions: int
    created_at: float
    scheduled_at: float | None
    claimed_at: float | None
    finished_at: float | None
    failed_at: float | None
    cancelled_at: float | None
    error: dict[str, Any] | None

    @property
    def done(self) -> bool:
        """Finished, cancelled or failed."""
        return self.status in DONE


def dump_result(value: Any, job: str) -> str | None:
    """The stored form of a return value (None for None); raises ``SerializationError`` naming the job."""
    if value is None:
        return None
    try:
        return json.dumps(to_json(value, "return value", what="a job result"), separators=(",", ":"),
                          ensure_ascii=False, allow_nan=False)
    except (TypedValueError, ValueError) as exc:
        raise SerializationError(f"{job}: its return value cannot be stored: {exc}") from None


def load_result(text: str | None) -> Any:
    return None if text is None else from_json(json.loads(text))


def check_timeout(value: Any, *, job: str, option: str = "timeout") -> float | None:
    """A timeout in seconds (a number or ``timedelta``), or None; anything not a positive finite duration is
    refused naming the job and the option."""
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{job}: {option} must be a positive finite number of seconds or a timedelta, "
                         f"got {value!r}")
    return float(seconds)


class Outcomes:
    """Results and cancellation on one queue storage (``storage.outcomes``)."""

    def __init__(self, storage: QueueStorage) -> None:
        self.storage = storage
        self.db = storage.db
        self.sql = file_queries(self.db, "outcomes.sql")

    def store_results(self, conn: Any, results: dict[int, str], process_id: int | None) -> None:
        """Inside the finishing transaction, before the claims go: the return values of jobs that ran."""
        conn.executemany(self.sql["store_result"], [{"id": job_id, "result": text, "process_id": process_id}
                                                    for job_id, text in results.items()])

    def job_result(self, job_id: int) -> JobResult | None:
        """The job's status, return value, timestamps and error; None when no job has that id (or it was
        deleted: finished jobs not preserved, or cleared)."""
        row = self.db.query_one(self.sql["job_result"], {"id": job_id})
        if row is None:
            return None
        data = dict(row)
        error = data.pop("error")
        return JobResult(**{key: value for key, value in data.items() if key != "result"},
                         value=load_result(data["result"]), error=json.loads(error) if error else None)

    def wait(self, job_id: int, timeout: float | None) -> JobResult:
        """The job once it is done (finished, cancelled or failed), reading with backoff; raises
        :class:`ResultTimeout` after ``timeout`` seconds (None: no limit; 0: read once) and ``LookupError`` for
        an unknown job."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = WAIT_FIRST
        while True:
            found = self.job_result(job_id)
            if found is None:
                raise LookupError(f"job {job_id}: no such job (unknown, or finished and not kept)")
            if found.done:
                return found
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise ResultTimeout(f"job {job_id} ({found.class_name}) is {found.status}, not done after "
                                    f"{timeout} s")
            time.sleep(pause if left is None else min(pause, left))
            pause = min(pause * 2, WAIT_MAX)

    def cancel(self, job_ids: Sequence[int], now: float) -> dict[int, str]:
        """Cancel jobs; returns for each id what happened: ``cancelled`` (it was waiting: now finished as
        cancelled), ``cancelling`` (it is running: its worker is told), or why not: ``unknown``, ``finished``,
        ``already cancelled``, ``failed``."""
        outcome: dict[int, str] = {}
        with self.db.transaction() as conn:
            for job_id in job_ids:
                outcome[job_id] = self._cancel_one(conn, job_id, now)
        return outcome

    def _cancel_one(self, conn: Any, job_id: int, now: float) -> str:
        # On PostgreSQL a worker may claim the job (or the dispatcher make it ready) between the read and the
        # delete: the delete then finds no row, and the job is read again in its new state.
        for _ in range(3):
            row = conn.execute(self.sql["job_result"], {"id": job_id}).fetchone()
            status = "unknown" if row is None else row["status"]
            if status in ("ready", "scheduled", "blocked"):
                query = f"cancel_{'waiting' if status == 'ready' else status}"
                if conn.execute(self.sql[query], {"id": job_id}).fetchone() is None:
                    continue
                if status == "ready" and self.storage.gate.release(conn, [job_id], now):
                    self.storage.announce_ready()  # its concurrency slot went to a blocked job
                conn.execute(self.sql["mark_cancelled"], {"id": job_id, "now": now, "finish": True})
                return "cancelled"
            if status == "claimed":
                conn.execute(self.sql["mark_cancelled"], {"id": job_id, "now": now, "finish": False})
                return "cancelling"
            return "already cancelled" if status == "cancelled" else status
        return "cancelling" if status == "claimed" else status

    def cancelled_among(self, job_ids: Sequence[int]) -> set[int]:
        """Which of these (running) jobs were cancelled."""
        if not job_ids:
            return set()
        return {row[0] for row in self.db.query(self.sql["cancelled_among"], {"ids": self.db.array(job_ids)})}


def refusal(job_id: int, status: str) -> str:
    """Why a job cannot be cancelled, naming it."""
    if status == "unknown":
        return f"job {job_id}: no such job (unknown id, or finished and not kept)"
    if status == "failed":
        return f"job {job_id}: it failed already (discard it with `solidstack jobs discard {job_id}`)"
    return f"job {job_id}: it is {status.removeprefix('already ')} already"


def current_storage() -> QueueStorage:
    """The storage jobs are enqueued into: the current adapter's, else the current app's queue database."""
    from solidstack.queue.adapters import current_adapter, queue_storage

    storage = getattr(current_adapter(), "storage", None)
    return storage if storage is not None else queue_storage()


def result_of(storage: QueueStorage, job_id: int, timeout: float | None = 0) -> Any:
    """The return value of job ``job_id``, waiting up to ``timeout`` seconds (0: read once; None: no limit) for
    it to be done. Raises :class:`ResultTimeout` (not done yet), :class:`JobFailed`, :class:`JobCancelled`, or
    ``LookupError`` (no such job)."""
    found = storage.outcomes.wait(job_id, timeout)
    if found.status == "cancelled":
        raise JobCancelled(f"job {job_id} ({found.class_name}) was cancelled")
    if found.status == "failed":
        error = found.error or {}
        raise JobFailed(f"job {job_id} ({found.class_name}) failed: {error.get('exception_class', '?')}: "
                        f"{error.get('message', '')}", error)
    return found.value


def cancel(*job_ids: int, storage: QueueStorage | None = None) -> dict[int, str]:
    """Cancel jobs by id (the current app's queue unless ``storage``): a waiting job is finished as cancelled,
    a running one is told (an async job is cancelled on its loop, a plain one sees ``self.cancelled``).

    Returns ``{id: "cancelled" | "cancelling"}``; raises :class:`CancelError` naming every id that is unknown or
    already done (the others are cancelled all the same).
    """
    outcome = (storage or current_storage()).cancel(list(job_ids), time.time())
    refused = [refusal(job_id, status) for job_id, status in outcome.items()
               if status not in ("cancelled", "cancelling")]
    if refused:
        raise CancelError("; ".join(refused))
    return outcome
