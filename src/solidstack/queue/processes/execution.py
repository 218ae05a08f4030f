"""Running one claimed job for a worker, and recording what became of it.

A plain job runs in the worker thread that took it. An ``async def`` job runs on the worker's event loop: with
``async_capacity`` set, the thread hands it over and is free at once (up to that many run together on the loop,
independent of ``threads``); without it, the thread waits for it, as before. Either way its ``timeout`` is an
``asyncio.timeout`` on the loop and a cancel cancels its task there (see :mod:`.watchdog`).

What a run returned is recorded once: finished (with its return value, see :mod:`.outcomes`; a busy worker
finishes in the next claim's transaction), retried or failed by its ``retry_on``/``discard_on`` rules, or failed
with :class:`~.outcomes.JobTimeout` by the watchdog at its deadline.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import CancelledError as FutureCancelled
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from solidstack.queue import events
from solidstack.queue.features.hooks import Run, current_job, follow_context, run_for
from solidstack.queue.features.outcomes import JobTimeout, dump_result
from solidstack.queue.job import Job, error_record, restore
from solidstack.queue.serialization import SerializationError, load_payload

if TYPE_CHECKING:
    from solidstack.queue.processes.worker import Worker
    from solidstack.queue.storage import JobRow

log = logging.getLogger("solidstack.queue")

#: ``run`` returns this for an async job handed to the loop: the loop records its outcome.
DETACHED = object()


class Execution:
    """Runs jobs for one worker (``worker.execution``)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def run(self, row: JobRow) -> object:
        """Run one claimed job and record its outcome; :data:`DETACHED` when it now runs on the loop."""
        worker = self.worker
        try:
            args, kwargs, timeout = load_payload(row.arguments)
            job = restore(row.class_name, args, kwargs, job_id=row.active_job_id, queue_name=row.queue_name,
                          priority=row.priority, executions=row.executions + 1, provider_job_id=row.id,
                          timeout=timeout)
        except Exception as exc:
            log.error("job %d: cannot run %s: %s", row.id, row.class_name, exc)
            self.fail(row, error_record(exc))
            return None
        # Batches, rate limits, tracing (hooks.py): None for a plain job.
        run = run_for(row, job, worker.storage)
        if run is not None and not run.admit(worker.storage, worker.process_id, worker.clock()):
            return None  # over its rate limit: rescheduled
        started = time.perf_counter()
        events.instrument("perform_start", job_id=row.id, job_class=row.class_name, queue=row.queue_name)
        worker.watchdog.start(row, job)
        token = current_job.set((row.id, row.class_name))  # every line the job logs names it
        try:
            if run is None:
                value = job.perform(*job.args, **job.kwargs)
            else:
                value = run.call(lambda: job.perform(*job.args, **job.kwargs))
            if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
                if run is None and asyncio.iscoroutine(value):
                    value = follow_context(value)  # the job's context (current_job) goes with it to the loop
                future = asyncio.run_coroutine_threadsafe(_run_async(value, job.timeout), worker.event_loop())
                worker.watchdog.attach_future(row.id, future)
                if worker.config.async_capacity:
                    worker.async_started(row.id)
                    future.add_done_callback(lambda done: self._async_done(row, job, done, started, run))
                    return DETACHED
                value = future.result()
        except BaseException as exc:  # a job's SystemExit must not take the worker down
            if worker.watchdog.settle(row.id):
                self.settle_error(row, job, exc, run)
            return None
        finally:
            current_job.reset(token)
        if worker.watchdog.settle(row.id):
            self.succeed(row, job, value, started)
        return None

    def _async_done(self, row: JobRow, job: Job, future: Future[Any], started: float, run: Run | None) -> None:
        """On the loop: an async job handed over by ``run`` ended. A success finishes with the next claim; an
        error is recorded off the loop (it writes to the database)."""
        worker = self.worker
        worker.watchdog.settle(row.id)
        try:
            value = future.result()
        except BaseException as exc:
            assert worker._loop is not None
            worker._loop.run_in_executor(None, self._settle_error_detached, row, job, exc, run)
            return
        if worker.deferred:
            self.succeed(row, job, value, started)
            worker.async_ended(row.id)
        else:
            assert worker._loop is not None
            worker._loop.run_in_executor(None, self._succeed_detached, row, job, value, started)

    def _succeed_detached(self, row: JobRow, job: Job, value: Any, started: float) -> None:
        try:
            self.succeed(row, job, value, started)
        finally:
            self.worker.async_ended(row.id)

    def _settle_error_detached(self, row: JobRow, job: Job, exc: BaseException, run: Run | None) -> None:
        try:
            self.settle_error(row, job, exc, run)
        except Exception:
            log.exception("job %d (%s): could not record its outcome", row.id, row.class_name)
        finally:
            self.worker.async_ended(row.id)

    def succeed(self, row: JobRow, job: Job, value: Any, started: float) -> None:
        """A run that returned ``value``: finished, with its return value kept."""
        worker = self.worker
        text = None
        if value is not None:
            try:
                text = dump_result(value, f"{row.class_name} (job {row.id})")
            except SerializationError as exc:
                # Retrying cannot help: the run is failed, naming the job and the value.
                log.error("%s", exc)
                self.fail(row, error_record(exc))
                return
        elapsed = (time.perf_counter() - started) * 1000
        if not worker.finish_later(row.id, text):
            results = {row.id: text} if text is not None else None
            worker.record(lambda: worker.storage.finish([row.id], worker.process_id, worker.clock(),
                                                        preserve=worker.preserve_finished_jobs, results=results))
        events.instrument("perform_finish", job_id=row.id, job_class=row.class_name, queue=row.queue_name,
                          duration_ms=elapsed)
        if log.isEnabledFor(logging.DEBUG):  # at debug only: a line per job cost ~26% of a worker's CPU (decision 0800)
            log.debug("Performed %s (job %d) from %s in %.1f ms", row.class_name, row.id, row.queue_name, elapsed,
                      extra={"job_id": row.id, "job_class": row.class_name, "queue": row.queue_name})

    def settle_error(self, row: JobRow, job: Job, exc: BaseException, run: Run | None = None) -> None:
        """A run that raised: a timeout raised on the loop becomes :class:`JobTimeout`; a cancelled one is
        finished (it is recorded as cancelled); anything else goes by the job's rules. ``run``: the features
        of the run (hooks.py), told its outcome once it is recorded."""
        worker = self.worker
        if isinstance(exc, _AsyncTimeout):
            exc = JobTimeout(f"{row.class_name} (job {row.id}) ran past its timeout of {job.timeout} s")
        elif isinstance(exc, asyncio.CancelledError | FutureCancelled) or job.cancelled:
            log.info("%s (job %d) stopped: cancelled", row.class_name, row.id)
            worker.record(lambda: worker.storage.finish([row.id], worker.process_id, worker.clock(),
                                                        preserve=worker.preserve_finished_jobs))
            return
        status = self.handle_error(row, job, exc)
        if run is not None:
            worker.record(lambda: run.done(worker.storage, status, worker.clock()))

    def handle_error(self, row: JobRow, job: Job, exc: BaseException) -> str:
        """Record the outcome of a run that raised; returns its status (``retry``, ``discarded``, ``failed``)."""
        worker = self.worker
        storage, pid = worker.storage, worker.process_id
        outcome = job.outcome_of(exc)
        now = worker.clock()
        events.instrument("perform_error", job_id=row.id, job_class=row.class_name, error=repr(exc),
                          outcome=outcome.status)
        if outcome.status in ("retry", "discarded"):
            events.instrument("retry" if outcome.status == "retry" else "discard", job_id=row.id,
                              job_class=row.class_name, retry_in=outcome.retry_in)
        if outcome.status == "retry":
            log.warning("%s (job %d) raised %s: %s; retry %d in %.1f s", row.class_name, row.id,
                        type(exc).__name__, exc, job.executions + 1, outcome.retry_in)
            error = outcome.error or error_record(exc)  # kept among the job's failed attempts
            worker.record(lambda: storage.retry_later(row.id, pid, job.executions, now + outcome.retry_in, now,
                                                      error=error))
        elif outcome.status == "discarded":
            log.info("%s (job %d) discarded on %s: %s", row.class_name, row.id, type(exc).__name__, exc)
            worker.record(lambda: storage.finish([row.id], pid, now, preserve=worker.preserve_finished_jobs))
        else:
            log.error("%s (job %d) failed: %s: %s", row.class_name, row.id, type(exc).__name__, exc,
                      exc_info=(type(exc), exc, exc.__traceback__))
            self.fail(row, outcome.error or error_record(exc))
        return outcome.status

    def fail(self, row: JobRow, error: dict[str, Any]) -> None:
        worker = self.worker
        worker.record(lambda: worker.storage.fail(row.id, worker.process_id, error, worker.clock()))


class _AsyncTimeout(Exception):
    """An async job's ``asyncio.timeout`` expired (told apart from a TimeoutError the job raised itself)."""


async def _run_async(awaitable: Any, timeout: float | None) -> Any:
    if timeout is None:
        return await awaitable
    try:
        async with asyncio.timeout(timeout) as scope:
            return await awaitable
    except TimeoutError:
        if scope.expired():
            raise _AsyncTimeout() from None
        raise

