"""Where the opt-in job features meet the enqueue path and the worker, so that neither pays for what it does not use.

Batches (:mod:`.batches`), unique jobs (:mod:`.unique`), rate limits (:mod:`.ratelimit`) and tracing
(:mod:`.tracing`) each switch :data:`FEATURES` on the first time they are used (a class decorated, a batch
opened, OpenTelemetry found). Until then the adapter's enqueue tests one module global and the worker one
substring of the row it already holds: the plain path is the one it was.

What a job needs at run time rides in its stored arguments, under a top-level ``"meta"`` key beside ``"args"``
and ``"kwargs"`` (which :func:`~.serialization.load_arguments` ignores): its batch, its rate limit key, its trace
context. A job carries them in its row, as it carries its concurrency key, so the worker needs no table lookup to
know what applies to it, and no schema change was needed for the trace context.

Every line a job logs carries its id and class: :data:`current_job` is set around ``perform`` and
:class:`JobLogFilter` adds it to each record.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib.util
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from solidstack.queue._sql import feature_queries
from solidstack.queue.features.concurrency import to_new_jobs

if TYPE_CHECKING:
    from solidstack.queue.job import Job
    from solidstack.queue.storage import JobRow, QueueStorage

log = logging.getLogger("solidstack.queue")

#: ``(job id, class name)`` of the job this thread or task is performing, else None.
current_job: contextvars.ContextVar[tuple[int, str] | None] = contextvars.ContextVar("solidstack_job", default=None)

#: True once any feature was used in this process: the enqueue path looks here before anything else.
FEATURES = False
_tracing: bool | None = None


def use_features() -> None:
    """Called by a feature when it is first used (a decorated class, an opened batch)."""
    global FEATURES
    FEATURES = True


def tracing_enabled() -> bool:
    """OpenTelemetry is installed (the ``otel`` extra) and ``SOLIDSTACK_TRACING`` is not ``0``.

    Looked up once, without importing it: without the extra, tracing costs nothing.
    """
    global _tracing
    if _tracing is None:
        try:
            found = importlib.util.find_spec("opentelemetry") is not None
        except (ImportError, ValueError):
            found = False
        _tracing = found and os.environ.get("SOLIDSTACK_TRACING", "1") != "0"
        if _tracing:
            use_features()
    return _tracing


def tracer() -> Any:
    """The OpenTelemetry tracer jobs are traced with, or None: tracing is off, or on but no tracer provider is
    set (then no span is made and no trace context stored)."""
    if not tracing_enabled():
        return None
    global _tracing_module
    if _tracing_module is None:
        from solidstack.queue.features import tracing

        _tracing_module = tracing
    return _tracing_module.tracer()


_tracing_module: Any = None


def set_tracing(enabled: bool | None) -> None:
    """Switch tracing on or off for this process (``None``: decide again from the environment)."""
    global _tracing
    _tracing = enabled
    if enabled:
        use_features()


class JobLogFilter(logging.Filter):
    """Adds ``job_id``, ``job_class`` and ``job`` (``"[ClassName job 12] "``, or ``""`` outside a job) to every
    record. Attach it to a handler; ``solidstack jobs`` does, and prints ``%(job)s`` before each message."""

    def filter(self, record: logging.LogRecord) -> bool:
        running = current_job.get()
        if running is None:
            # A line about a job logged outside its run (the worker's "Performed ...") names it in ``extra``.
            job_id, job_class = getattr(record, "job_id", None), getattr(record, "job_class", None)
            record.job_id, record.job_class = job_id, job_class
            record.job = f"[{job_class} job {job_id}] " if job_id is not None else ""
        else:
            record.job_id, record.job_class = running
            record.job = f"[{running[1]} job {running[0]}] "
        return True


# -- enqueue -------------------------------------------------------------------------------------------------


def batches_collecting() -> bool:
    """A batch's ``with`` block is open here (its jobs are stored when it ends)."""
    return batches.collecting() is not None


def enqueue(storage: QueueStorage, jobs: Sequence[Job]) -> bool:
    """Enqueue ``jobs`` with the features their classes ask for: into the open batch, unique, rate limited,
    traced. One transaction; a bad key or argument raises before anything is written. ``False`` when none
    applies (classes without a feature, in a process where others have one): the caller enqueues them plainly."""
    batch = batches.collecting()
    if batch is not None:
        batch.collect(jobs)  # stored with the batch when its block ends
        return True
    # Looked up once per class in the call: a bulk enqueue is most often one class (decision 0077).
    featured = _featured(type(jobs[0])) if len(jobs) == 1 else any(map(_featured, {type(job) for job in jobs}))
    if not featured and tracer() is None:
        return False
    store(storage, jobs)
    return True


def _featured(cls: type) -> bool:
    return getattr(cls, "_unique", None) is not None or getattr(cls, "_rate_limit", None) is not None


def _with_meta(arguments: str, meta: dict[str, Any]) -> str:
    # Stored arguments are always a JSON object ending in "}": the meta goes in as its last member.
    return arguments[:-1] + ',"meta":' + json.dumps(meta, separators=(",", ":")) + "}"


def store(storage: QueueStorage, jobs: Sequence[Job], *, batch: Any = None,
          trace: dict[str, str] | None = None) -> None:
    """Store ``jobs`` (and, with ``batch``, the batch row or its extension) in one transaction (the caller's, when
    one is open). ``trace``: the trace context the jobs carry instead of a producer span each (a batch's
    callbacks carry the batch's)."""
    now = time.time()
    spans = None
    if trace is None and tracer() is not None:
        from solidstack.queue.features import tracing

        spans = tracing.producer_spans(jobs)
    try:
        # Everything that can fail on bad input runs before the transaction: nothing is half written.
        rows = to_new_jobs(jobs)
        keys = [unique.key_of(job, row.arguments) for job, row in zip(jobs, rows, strict=True)]
        rates = [ratelimit.rate_of(job) for job in jobs]
        if batch is None and not any(keys):
            # Only meta to add (a rate, a trace context): the plain enqueue, atomic by itself (PostgreSQL: one
            # statement in autocommit), with no transaction around it.
            _add_meta(rows, None, rates, spans, trace)
            ids = storage.enqueue(rows, now)
            for job, job_id in zip(jobs, ids, strict=True):
                job.provider_job_id = job_id
            return
        if (batch is None and len(jobs) == 1 and rows[0].scheduled_at is None and rows[0].concurrency_key is None
                and keys[0] is not None):
            queries = feature_queries(storage.db)
            if "unique_enqueue" in queries and not storage.db.in_transaction():
                # PostgreSQL: one unique plain job is one statement in autocommit (decision 0060).
                _add_meta(rows, None, rates, spans, trace)
                unique.enqueue_one(storage, jobs[0], rows[0], keys[0], now)
                return
            if "unique_take_if_free" in queries:
                # SQLite: inserted, then its key taken in one statement unless held (decision 0063).
                _add_meta(rows, None, rates, spans, trace)
                unique.enqueue_taking(storage, jobs[0], rows[0], keys[0], now)
                return
        original = [job.job_id for job in jobs]
        batch_id = batch.id if batch is not None else None
        for attempt in range(unique.ATTEMPTS):
            try:
                _store_in_transaction(storage, jobs, list(rows), keys, rates, spans, trace, batch, now)
                return
            except unique.KeyRace:
                # A one-statement enqueue took a key this transaction read (PostgreSQL): the transaction rolled
                # back whole (a caller's open transaction too: the race is raised to it); decide again.
                if attempt == unique.ATTEMPTS - 1 or storage.db.in_transaction():
                    raise
                for job, active_job_id in zip(jobs, original, strict=True):
                    job.job_id, job.provider_job_id = active_job_id, None
                    job.__dict__.pop("duplicate", None)
                if batch is not None:
                    batch.id = batch_id  # a new batch's row rolled back with it
    finally:
        if spans is not None:
            from solidstack.queue.features import tracing

            tracing.end_producer_spans(jobs, spans)


def _store_in_transaction(storage: QueueStorage, jobs: Sequence[Job], rows: list[Any], keys: Sequence[Any],
                          rates: Sequence[Any], spans: Any, trace: dict[str, str] | None, batch: Any,
                          now: float) -> None:
    """:func:`store`'s transaction: the batch, the unique keys decided, the jobs inserted."""
    seen: dict[str, int | None] = {}
    with storage.db.transaction() as conn:
        batch_id = batch.begin(conn, storage, now) if batch is not None else None
        _add_meta(rows, batch_id, rates, spans, trace)
        keep = unique.hold_keys(conn, storage, jobs, keys, now, seen) if any(keys) else None
        ids = storage.enqueue(rows if keep is None else [rows[index] for index in keep], now)
        if keep is None:
            for job, job_id in zip(jobs, ids, strict=True):
                job.provider_job_id = job_id
        else:
            for index, job_id in zip(keep, ids, strict=True):
                jobs[index].provider_job_id = job_id
            unique.record(conn, storage, [(keys[index], job_id) for index, job_id in zip(keep, ids, strict=True)],
                          now, seen)
        if batch is not None:
            batch.record(conn, storage, ids, now)


def _add_meta(rows: list[Any], batch_id: int | None, rates: Sequence[Any], spans: Any,
              trace: dict[str, str] | None) -> None:
    """Put each row's run-time needs (batch, rate, trace context) in its stored arguments' ``meta``."""
    if batch_id is None and spans is None and trace is None and not any(rates):
        return
    for index, row in enumerate(rows):
        meta: dict[str, Any] = {}
        if batch_id is not None:
            meta["batch"] = batch_id
        if rates[index] is not None:
            meta["rate"] = rates[index]
        if spans is not None:
            meta["trace"] = spans[index][1]
        elif trace is not None:
            meta["trace"] = trace
        if meta:
            rows[index] = row._replace(arguments=_with_meta(row.arguments, meta))


def maintain(storage: QueueStorage, now: float, limit: int) -> None:
    """The dispatcher's upkeep of the features' tables (with its concurrency upkeep): batched jobs failed by
    process deaths counted, batches counted to zero by a worker that died before enqueueing their callbacks
    completed, lapsed unique keys deleted. Three small reads when there is nothing to do."""
    counted = batches.count_uncounted_failures(storage, now, limit)
    if counted:
        log.info("counted %d batched job(s) failed by process deaths", counted)
    stranded = batches.complete_stranded(storage, now, limit)
    if stranded:
        log.info("enqueued the callbacks of %d batch(es) whose worker died before it could", stranded)
    unique.clear_expired(storage, now)


# -- the worker ----------------------------------------------------------------------------------------------


def _meta(arguments: str) -> dict[str, Any] | None:
    # A substring test first: a plain job's row is not parsed a second time. The meta is the last member of the
    # stored object (see _with_meta), so only its own text is parsed: `,"meta":` cannot occur inside a JSON string
    # (a quote there is escaped), and one found in a nested object leaves that object's closing brace after its
    # value, which the parse of the tail then refuses; a nested "meta" costs one full parse, as before.
    at = arguments.rfind(',"meta":')
    if at < 0:
        return None
    if arguments.startswith('{"batch":', at + 8) and arguments.endswith("}}"):
        number = arguments[at + 17:-2]  # a batched job's meta alone, {"batch":N}: no JSON parse
        if number.isdigit():
            return {"batch": int(number)}
    try:
        meta = json.loads(arguments[at + 8:-1])
    except ValueError:
        meta = json.loads(arguments).get("meta")
    return meta if isinstance(meta, dict) else None


class Run:
    """One run of a job that uses a feature: its rate limit before, its span around, its batch after."""

    def __init__(self, row: JobRow, job: Job, meta: dict[str, Any]) -> None:
        self.row, self.job, self.meta = row, job, meta
        self.batch_id: int | None = meta.get("batch")
        self.counter: batches.FinishCounter | None = None

    def admit(self, storage: QueueStorage, process_id: int | None, now: float) -> bool:
        """False when the job is over its rate limit: it was rescheduled for when a slot frees. A batched job
        that may run is registered to be counted by the transaction that finishes it."""
        if "rate" in self.meta and not self._admit(storage, process_id, now):
            return False
        if self.batch_id is not None:
            counter = storage.on_finish
            if not isinstance(counter, batches.FinishCounter):
                counter = _finish_counter(storage)
            self.counter = counter
            counter.expect(self.row.id)
        return True

    def _admit(self, storage: QueueStorage, process_id: int | None, now: float) -> bool:
        rate = self.meta.get("rate")
        if not rate:
            return True
        limiter = storage.on_claim
        if isinstance(limiter, ratelimit.ClaimLimiter) and limiter.admitted(self.row.id):
            return True  # its claim took its start
        if rate is _RATE_UNREAD:  # its meta was not parsed (run_for): the limit is needed now
            parsed = _meta(self.row.arguments)
            rate = parsed.get("rate") if parsed else None
            if not rate:
                return True
        limiter = _claim_limiter(storage)
        # Claimed before this process's limiter was installed: a start of its own, in a transaction of its own.
        key, limit, period = rate
        run_at = ratelimit.acquire(storage, key, int(limit), float(period), now, clock=time.time)
        if run_at is None:
            return True
        # Back to scheduled with its run count unchanged: waiting for a slot is not a run.
        storage.retry_later(self.row.id, process_id, self.row.executions, run_at, now)
        log.info("%s (job %d) over its rate limit %s; runs at %.3f", self.row.class_name, self.row.id, key, run_at)
        return False

    def call(self, perform: Callable[[], Any]) -> Any:
        """Run ``perform`` inside the run's batch and span; returns what it returned. An ``async def`` job's
        coroutine is returned wrapped (:func:`follow_context`): it runs on the worker's loop in this context, its
        batch and span current there, and its span ends when it does."""
        token = None
        if self.batch_id is not None:
            token = batches.running_batch.set(self.batch_id)  # Batch.current() inside the job
        try:
            tracer_ = tracer()
            if tracer_ is None:
                value = perform()
                return follow_context(value) if value is not None and asyncio.iscoroutine(value) else value
            from solidstack.queue.features import tracing

            span = tracing.start_consumer_span(tracer_, self.row, self.job, self.meta.get("trace"))
            active = tracing.activate(span)
            try:
                value = perform()
                if asyncio.iscoroutine(value):
                    return follow_context(value, span)  # the span ends with the coroutine, on the loop
            except BaseException as exc:
                tracing.end_span(span, exc)
                raise
            finally:
                tracing.deactivate(active)
            tracing.end_span(span)
            return value
        finally:
            if token is not None:
                batches.running_batch.reset(token)

    def done(self, storage: QueueStorage, status: str, now: float) -> None:
        """After the run: ``status`` is the outcome (``finished``, ``discarded``, ``failed``, ``retry``).

        A success is counted by the finish's own transaction (:class:`~.batches.FinishCounter`); a failure for
        good here, after the failure was recorded."""
        if self.counter is None or status in ("finished", "discarded"):
            return
        self.counter.forget(self.row.id)
        if status == "failed":
            batches.job_done(storage, self.row.id, "failed", now)


_counter_lock = threading.Lock()
_Hook = TypeVar("_Hook")


def _installed(storage: QueueStorage, hook: str, kind: type[_Hook]) -> _Hook:
    """The storage's ``hook`` (``on_finish`` / ``on_claim``), a ``kind`` made for it by the first job that needs
    it (once, whichever thread gets there first)."""
    current = getattr(storage, hook)
    if not isinstance(current, kind):
        with _counter_lock:
            current = getattr(storage, hook)
            if not isinstance(current, kind):
                current = kind(storage)  # type: ignore[call-arg]  # both kinds are made from the storage
                setattr(storage, hook, current)
    return current


def _finish_counter(storage: QueueStorage) -> batches.FinishCounter:
    """The storage's finish hook that counts batched jobs, installed by the first batched job run with it."""
    return _installed(storage, "on_finish", batches.FinishCounter)


def follow_context(coroutine: Any, span: Any = None) -> Any:
    """``coroutine`` (an ``async def`` job's), to run on the worker's event loop in a copy of this context: the
    loop's task starts from the loop thread's context, so without this ``Batch.current()``, the current span and
    the job named on log lines would not follow the job there. With ``span``, the span ends when it does."""
    return _in_context(coroutine, contextvars.copy_context(), span)


async def _in_context(coroutine: Any, context: contextvars.Context, span: Any) -> Any:
    for var, value in context.items():  # in the task's own context: nothing leaks to the loop or other tasks
        var.set(value)
    if span is None:
        return await coroutine
    from solidstack.queue.features import tracing

    try:
        value = await coroutine
    except BaseException as exc:
        tracing.end_span(span, exc)
        raise
    tracing.end_span(span)
    return value


def _claim_limiter(storage: QueueStorage) -> ratelimit.ClaimLimiter:
    """The storage's claim hook that admits rate limited jobs, installed by the first one run with it."""
    return _installed(storage, "on_claim", ratelimit.ClaimLimiter)


#: Metas parsed by the claim (rate limits read them there), by job id, with the stored arguments they were parsed
#: from, for the run to take instead of parsing the row again. An entry is taken only for the same arguments text
#: (the claim's row object): one left by a claim that rolled back, or by a claim of another database in this
#: process whose ids collide, is never taken for another row.
parsed_meta: dict[int, tuple[str, dict[str, Any]]] = {}


def run_for(row: JobRow, job: Job, storage: QueueStorage | None = None) -> Run | None:
    """The features of this run, or None when it needs none: a plain job (the worker's only cost for one), or a
    rate limited one whose claim took its start (``storage``'s claim hook admitted it), tracing off."""
    meta = None
    if parsed_meta:
        entry = parsed_meta.pop(row.id, None)
        if entry is not None and entry[0] is row.arguments:
            meta = entry[1]
    if meta is None:
        arguments = row.arguments
        at = arguments.rfind(',"meta":')
        if at < 0:
            meta = None
        elif arguments.startswith('{"rate":', at + 8) and '"trace":' not in arguments[at:]:
            # A rate alone (a batch comes first, a trace after): the claim admitted it, most likely, and then
            # nothing of it is needed; Run._admit parses it only if not.
            meta = {"rate": _RATE_UNREAD}
        elif arguments.startswith('{"batch":', at + 8) and arguments.endswith("}}") and (
                number := arguments[at + 17:-2]).isdigit():
            meta = {"batch": int(number)}  # a batch alone (as _meta reads it, without a second search)
        else:
            meta = _meta(arguments)
    if meta is None:
        if tracer() is None:
            return None
        meta = {}
    elif len(meta) == 1 and "rate" in meta and storage is not None:
        # A rate alone, its start taken by the claim: nothing is left to do around its perform (no batch to
        # count, no span), so it runs as a plain job does, without a Run (decision 0070).
        limiter = storage.on_claim
        if isinstance(limiter, ratelimit.ClaimLimiter) and limiter.admitted(row.id):
            if tracer() is None:
                return None
            return Run(row, job, {**meta, "rate": None})  # admitted: its span only
    return Run(row, job, meta)


#: A run's rate, not parsed yet (see run_for).
_RATE_UNREAD = ["unread"]


# The features' modules import this one (for use_features): imported last, so that either may be imported first.
from solidstack.queue.features import batches, ratelimit, unique  # noqa: E402

# With the otel extra installed (and SOLIDSTACK_TRACING not 0), the enqueue path looks at the features from the
# first job on: a producer span needs no class to ask for it. Without it, FEATURES stays off (nothing imported).
tracing_enabled()
