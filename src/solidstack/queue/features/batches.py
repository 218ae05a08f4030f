"""Batches: a set of jobs tracked as one, with callback jobs when they are done.

::

    with Batch(on_success=Report, on_failure=Alert("ops"), on_finish=Cleanup) as batch:
        Import.perform_later(1)
        Import.perform_later(2)
    Batch.find(batch.id).pending

Jobs enqueued inside the block are collected and stored when it ends, with the batch row, in one transaction: a
block that raises stores nothing. A job of the batch adds more jobs to it with ``with Batch.current():``.

Callbacks are job classes (enqueued with the batch id as their one argument) or job instances (enqueued with
their own arguments): ``on_failure`` when the first job of the batch fails for good, ``on_success`` when all
succeeded, ``on_finish`` when all are done either way. Each is enqueued exactly once: a job's outcome is counted
by one ``UPDATE ... RETURNING`` on the batch row (serialized by SQLite's single writer or PostgreSQL's row lock),
so of two jobs finishing at once exactly one sees ``pending`` reach zero, and exactly one sees ``failed`` reach
one. Counting is idempotent per job (``solidstack_batch_jobs.status`` moves from ``pending`` once): a job run
again after its process died is not counted twice.
"""

from __future__ import annotations

import contextvars
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from solidstack.queue._sql import feature_queries
from solidstack.queue.features import hooks, ratelimit, unique
from solidstack.queue.rows import NewJob
from solidstack.queue.serialization import dump_arguments, load_payload

if TYPE_CHECKING:
    from solidstack.queue.job import Job
    from solidstack.queue.storage import QueueStorage

log = logging.getLogger("solidstack.queue")

_collecting: contextvars.ContextVar[Batch | None] = contextvars.ContextVar("solidstack_batch", default=None)
#: The batch of the job being performed here (set by the worker from the job's row).
running_batch: contextvars.ContextVar[int | None] = contextvars.ContextVar("solidstack_running_batch",
                                                                          default=None)
CALLBACKS = ("on_success", "on_failure", "on_finish")


class BatchError(RuntimeError):
    """A batch cannot take more jobs (it is finished) or does not exist."""


def collecting() -> Batch | None:
    """The batch whose ``with`` block is open here, if any."""
    return _collecting.get()


def _callback(option: str, value: Any, description: str) -> dict[str, Any] | None:
    """The stored form of a callback; a TypeError naming the option when it is not a registered job."""
    from solidstack.queue.job import Job, registered_jobs

    if value is None:
        return None
    cls = value if isinstance(value, type) else type(value)
    if not (isinstance(cls, type) and issubclass(cls, Job)) or registered_jobs().get(cls.name()) is not cls:
        raise TypeError(f"batch {description!r}: {option}= must be a registered job class or job instance, "
                        f"got {value!r}")
    stored: dict[str, Any] = {"class": cls.name(), "queue": cls.queue_as, "priority": cls.priority}
    if not isinstance(value, type):
        stored.update(arguments=value.serialize_arguments(), queue=value.queue_name, priority=value.priority)
    return stored


@dataclass(frozen=True)
class BatchStatus:
    """A batch as stored: its counts and whether it is finished."""

    id: int
    description: str | None
    total: int
    pending: int
    succeeded: int
    failed: int
    finished_at: float | None
    created_at: float

    @property
    def finished(self) -> bool:
        return self.finished_at is not None

    @property
    def status(self) -> str:
        """``pending``, ``succeeded`` or ``failed`` (finished with at least one failure)."""
        if self.finished_at is None:
            return "pending"
        return "failed" if self.failed else "succeeded"


def _status(row: Any) -> BatchStatus:
    return BatchStatus(row["id"], row["description"], row["total"], row["pending"], row["succeeded"],
                       row["failed"], row["finished_at"], row["created_at"])


class Batch:
    """A new batch (callbacks as keyword arguments), or an existing one (:meth:`current`, :meth:`open`)."""

    def __init__(self, *, on_success: Any = None, on_failure: Any = None, on_finish: Any = None,
                 description: str | None = None, storage: QueueStorage | None = None) -> None:
        self.description = description
        # Checked here, when the batch is defined: a bad callback never reaches the database.
        self.callbacks = {option: _callback(option, value, description or "(no description)")
                          for option, value in zip(CALLBACKS, (on_success, on_failure, on_finish), strict=True)}
        self.storage = storage
        self.id: int | None = None
        self.jobs: list[Job] = []
        self._token: contextvars.Token[Batch | None] | None = None
        hooks.use_features()

    @classmethod
    def open(cls, batch_id: int, *, storage: QueueStorage | None = None) -> Batch:
        """An existing batch, to add jobs to with ``with``."""
        batch = cls(storage=storage)
        batch.id = batch_id
        return batch

    @classmethod
    def current(cls, *, storage: QueueStorage | None = None) -> Batch | None:
        """The batch of the job running here (None outside a batched job)."""
        batch_id = running_batch.get()
        return None if batch_id is None else cls.open(batch_id, storage=storage)

    @staticmethod
    def find(batch_id: int, *, storage: QueueStorage | None = None) -> BatchStatus | None:
        """The stored status of batch ``batch_id`` (None when there is none)."""
        storage = storage or _default_storage()
        row = storage.db.query_one(feature_queries(storage.db)["batch_get"], {"id": batch_id})
        return _status(row) if row else None

    @staticmethod
    def recent(limit: int = 20, *, storage: QueueStorage | None = None) -> list[BatchStatus]:
        storage = storage or _default_storage()
        return [_status(row) for row in storage.db.query(feature_queries(storage.db)["batch_recent"],
                                                         {"limit": limit})]

    def status(self) -> BatchStatus | None:
        if self.id is None:
            return None
        return self.find(self.id, storage=self.storage)

    # -- collecting and storing ------------------------------------------------------------------------------

    def collect(self, jobs: Sequence[Job]) -> None:
        self.jobs.extend(jobs)

    def __enter__(self) -> Batch:
        if self._token is not None:
            raise BatchError("a batch's with block cannot be nested in itself")
        self._token = _collecting.set(self)
        return self

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        assert self._token is not None
        _collecting.reset(self._token)
        self._token = None
        jobs, self.jobs = self.jobs, []
        if kind is not None:
            return  # nothing was stored: the block's jobs are dropped with it
        from solidstack.queue.adapters import SolidQueueAdapter, current_adapter

        storage = self.storage
        if storage is None:
            adapter = current_adapter()
            if not isinstance(adapter, SolidQueueAdapter):
                adapter.enqueue_all(jobs)  # inline and test adapters: the jobs, without batch bookkeeping
                return
            storage = adapter.storage
        self.storage = storage
        if not jobs:
            return  # an empty block stores no batch (it could never finish)
        hooks.store(storage, jobs, batch=self)

    def begin(self, conn: Any, storage: QueueStorage, now: float) -> int:
        """In the enqueue's transaction: the batch row inserted (new batch) or checked open (existing)."""
        sql = feature_queries(storage.db)
        if self.id is None:
            callbacks = self.callbacks
            carrier = _trace_context(self.description) if any(callbacks.values()) else None
            if carrier is not None:  # the callbacks' runs link to the span that stored the batch
                callbacks = {option: {**value, "trace": carrier} if value else None
                             for option, value in callbacks.items()}
            row = conn.execute(sql["batch_insert"], {
                "description": self.description, "now": now,
                **{option: json.dumps(value) if value else None for option, value in callbacks.items()},
            }).fetchone()
            self.id = int(row[0])
        return self.id

    def record(self, conn: Any, storage: QueueStorage, job_ids: Sequence[int], now: float) -> None:
        """In the enqueue's transaction: the new jobs counted into the batch."""
        sql = feature_queries(storage.db)
        if conn.execute(sql["batch_add"], {"id": self.id, "n": len(job_ids), "now": now}).fetchone() is None:
            raise BatchError(f"batch {self.id} is finished or does not exist: it takes no more jobs")
        conn.executemany(sql["batch_job_insert"], [{"job_id": job_id, "batch_id": self.id} for job_id in job_ids])


def _trace_context(description: str | None) -> dict[str, str] | None:
    """With tracing on: the context of the span current where the batch is stored (a request's, a job's), or of
    a PRODUCER span made for the batch when there is none, for its callbacks to link to."""
    if hooks.tracer() is None:
        return None
    from solidstack.queue.features import tracing

    carrier = tracing.current_carrier()
    if carrier is None:
        span = tracing.batch_span(description)
        carrier = tracing.carrier_of(span)
        span.end()
    return carrier


def _default_storage() -> QueueStorage:
    from solidstack.queue.adapters import queue_storage

    return queue_storage()


def _fire(conn: Any, storage: QueueStorage, batch_id: int, stored: str | None, now: float) -> int | None:
    """Enqueue a callback (in the caller's transaction, which decided it is due exactly once); returns its job id.

    Through the features' enqueue (:func:`.hooks.store`), as any job of its class: a ``unique_for`` callback class
    is unique, a rate limited one limited; its trace context is the batch's (its run links to the span that
    stored the batch)."""
    import uuid

    from solidstack.queue.job import registered_jobs, restore

    if not stored:
        return None
    callback = json.loads(stored)
    arguments = callback.get("arguments") or dump_arguments((batch_id,), {}, job=callback["class"])
    if registered_jobs().get(callback["class"]) is None:
        # The class is not imported in this process: its row as stored, with the batch's trace context.
        if callback.get("trace"):
            arguments = hooks._with_meta(arguments, {"trace": callback["trace"]})
        row = NewJob(callback["queue"], callback["class"], arguments, callback["priority"], str(uuid.uuid4()))
        return storage.enqueue([row], now)[0]
    args, kwargs, timeout = load_payload(arguments)
    job = restore(callback["class"], args, kwargs, job_id=str(uuid.uuid4()), queue_name=callback["queue"],
                  priority=callback["priority"], executions=0, provider_job_id=0, timeout=timeout)
    job.provider_job_id = None
    try:
        hooks.store(storage, [job], trace=callback.get("trace") or None)
    except (unique.UniqueKeyError, ratelimit.RateLimitKeyError) as exc:
        # Its class's key function failed on it: the callback is still enqueued (once), without that feature,
        # rather than leaving the finish that completes the batch unable to commit.
        log.error("batch %d: callback %s: %s; enqueued without its unique key or rate limit", batch_id,
                  callback["class"], exc)
        if callback.get("trace"):
            arguments = hooks._with_meta(arguments, {"trace": callback["trace"]})
        row = NewJob(callback["queue"], callback["class"], arguments, callback["priority"], job.job_id)
        return storage.enqueue([row], now)[0]
    return job.provider_job_id


class FinishCounter:
    """Counts batched jobs as succeeded inside the transaction that finishes them (``QueueStorage.on_finish``): no
    transaction of its own, and the count commits or rolls back with the finish. The worker registers the batched
    jobs it runs (:meth:`expect`); finishes of other jobs cost a set lookup."""

    def __init__(self, storage: QueueStorage) -> None:
        import threading

        self.storage = storage
        self._expected: set[int] = set()
        self._due: set[int] = set()
        self._lock = threading.Lock()

    def expect(self, job_id: int) -> None:
        self._expected.add(job_id)  # one C call: atomic under the GIL (nothing iterates the set)

    def forget(self, job_id: int) -> None:
        with self._lock:
            self._expected.discard(job_id)

    def batched_among(self, job_ids: Sequence[int]) -> list[int]:
        """The batched jobs among ``job_ids`` (PostgreSQL's one-statement cycle counts them in its statement,
        decision 0061; they stay expected until :meth:`counted`)."""
        with self._lock:
            if not self._expected:
                return []
            return [job_id for job_id in job_ids if job_id in self._expected]

    def counted(self, finished: Sequence[int], complete: Sequence[int], now: float) -> None:
        """After a one-statement cycle: ``finished`` (the jobs it finished) were counted by it, and the batches
        in ``complete`` reached zero there: their callbacks are enqueued now, each in a transaction of its own
        (a compare-and-set on the batch row: once, whoever comes first). One that fails here is tried again
        after the next cycle, and by the dispatcher's sweep should this process die first."""
        with self._lock:
            self._expected.difference_update(finished)
            due = self._due | set(complete)
            self._due = set()
        for batch_id in sorted(due):
            try:
                complete_counted(self.storage, batch_id, now)
            except Exception:
                log.exception("batch %d: its callbacks could not be enqueued yet; tried again", batch_id)
                with self._lock:
                    self._due.add(batch_id)

    def __call__(self, conn: Any, job_ids: Sequence[int], now: float) -> None:
        with self._lock:
            if not self._expected:
                return
            ours = [job_id for job_id in job_ids if job_id in self._expected]
            self._expected.difference_update(ours)
        if ours:
            count_succeeded(conn, self.storage, ours, now)


def count_succeeded(conn: Any, storage: QueueStorage, job_ids: Sequence[int], now: float) -> None:
    """In the caller's transaction: count finished batched jobs, one statement for all their batches, and fire
    the callbacks they complete (in batch id order)."""
    sql = feature_queries(storage.db)
    rows = conn.execute(sql["batch_count_finished"], {"ids": storage.db.array(job_ids), "now": now}).fetchall()
    for counts in sorted(rows, key=lambda row: row["id"]):
        _complete(conn, storage, sql, counts["id"], counts, failed_now=False, now=now)


def _complete(conn: Any, storage: QueueStorage, sql: dict[str, str], batch_id: int, counts: Any, *,
              failed_now: bool, now: float) -> None:
    """After a counted UPDATE: the callbacks this count completes. Only one count sees each threshold (the
    counters are one UPDATE ... RETURNING each, serialized on the batch row), and each callback is further guarded
    by a compare-and-set on the batch row in the same transaction (``failure_job_id`` and ``finished_at`` set only
    from NULL): of two transactions that both thought a callback due, one enqueues it."""
    if failed_now and counts["failed"] == 1 and conn.execute(sql["batch_claim_failure"],
                                                             {"id": batch_id}).fetchone() is not None:
        failure_job = _fire(conn, storage, batch_id, counts["on_failure"], now)
        if failure_job is not None:  # else it stays 0: taken, nothing enqueued
            conn.execute(sql["batch_set_failure_job"], {"id": batch_id, "job_id": failure_job})
    if counts["pending"] == 0:
        if conn.execute(sql["batch_finished"], {"id": batch_id, "now": now}).fetchone() is None:
            return  # finished by another count already: its callbacks are enqueued
        if counts["failed"] == 0:
            _fire(conn, storage, batch_id, counts["on_success"], now)
        _fire(conn, storage, batch_id, counts["on_finish"], now)


def complete_counted(storage: QueueStorage, batch_id: int, now: float) -> bool:
    """The callbacks of a batch counted to zero outside a transaction that could enqueue them (decision 0061),
    enqueued in one transaction with the compare-and-set that marks it finished: False when it was already."""
    sql = feature_queries(storage.db)
    with storage.db.transaction() as conn:
        counts = conn.execute(sql["batch_complete"], {"id": batch_id, "now": now}).fetchone()
        if counts is None:
            return False  # finished by another (the sweep, or this process before a retry)
        if counts["failed"] == 0:
            _fire(conn, storage, batch_id, counts["on_success"], now)
        _fire(conn, storage, batch_id, counts["on_finish"], now)
    return True


def complete_stranded(storage: QueueStorage, now: float, limit: int = 500) -> int:
    """The dispatcher's upkeep: batches counted to zero whose worker died before enqueueing their callbacks."""
    rows = storage.db.query(feature_queries(storage.db)["batch_stranded"], {"limit": limit})
    return sum(complete_counted(storage, row[0], now) for row in rows)


def job_done(storage: QueueStorage, job_id: int, outcome: str, now: float) -> None:
    """Count a batched job's outcome (``succeeded`` or ``failed``) and fire the callbacks it completes."""
    sql = feature_queries(storage.db)
    with storage.db.transaction() as conn:
        row = conn.execute(sql["batch_job_done"], {"job_id": job_id, "status": outcome}).fetchone()
        if row is None:
            return  # not in a batch, or counted already (a run again after its process died)
        batch_id = row[0]
        counts = conn.execute(sql[f"batch_count_{outcome}"], {"id": batch_id, "now": now}).fetchone()
        _complete(conn, storage, sql, batch_id, counts, failed_now=outcome == "failed", now=now)


def count_uncounted_failures(storage: QueueStorage, now: float, limit: int = 500) -> int:
    """The dispatcher's upkeep: batched jobs failed for good without a worker counting them (their process died
    each time, and the pruning failed them) are counted as failed, firing the callbacks they complete."""
    rows = storage.db.query(feature_queries(storage.db)["batch_jobs_failed_uncounted"], {"limit": limit})
    for row in rows:
        job_done(storage, row[0], "failed", now)
    return len(rows)
