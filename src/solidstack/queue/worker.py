"""The worker: claims ready jobs for its idle threads and performs them.

Under a :class:`~.runner.Runner` (``attach``), a job that ran is finished by the loop, in the transaction of
the next claim: a busy worker commits once per batch, not once per job. The claim is only deleted by that
commit, so a crash before it runs the job again (at-least-once). Stepped by hand (tests), each job is
finished by its thread at once. An idle worker sleeps on its wake-up socket (``wakeup_socket``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from typing import Any

from ..db.wakeup import WakeupSocket
from . import events
from .config import WorkerConfig
from .job import Job, error_record, restore
from .serialization import load_arguments
from .storage import JobRow, QueueStorage

log = logging.getLogger("solidstack.queue")


class Worker:
    """Claims up to as many jobs as it has idle threads, queue order first, then priority."""

    kind = "Worker"

    def __init__(self, storage: QueueStorage, config: WorkerConfig | None = None, *,
                 preserve_finished_jobs: bool = True, clock: Callable[[], float] = time.time,
                 name: str | None = None) -> None:
        self.storage = storage
        self.config = config or WorkerConfig()
        self.preserve_finished_jobs = preserve_finished_jobs
        self.clock = clock
        self.name = name or f"worker-{secrets.token_hex(5)}"
        self.process_id: int | None = None
        self.on_wake: Callable[[], None] = lambda: None
        #: Ran, to be finished by the next poll (only when a loop is attached).
        self._finished: list[int] = []
        self._deferred = False
        self._busy = False
        self._pool = ThreadPoolExecutor(max_workers=self.config.threads, thread_name_prefix=self.name)
        self._in_flight: dict[int, Future[None]] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None

    def metadata(self) -> dict[str, Any]:
        return {"queues": ",".join(self.config.queues), "thread_pool_size": self.config.threads,
                "polling_interval": self.config.polling_interval}

    @property
    def title(self) -> str:
        """The process title: ``solidstack-worker: waiting for jobs in *``."""
        return f"waiting for jobs in {','.join(self.config.queues)}"

    @property
    def idle_threads(self) -> int:
        with self._lock:
            return self.config.threads - len(self._in_flight)

    def attach(self, wake: Callable[[], None]) -> None:
        """Driven by a loop that calls :meth:`poll` whenever ``wake`` is called: finishes go to the next poll."""
        self.on_wake = wake
        self._deferred = True

    def wakeup_socket(self) -> WakeupSocket | None:
        """The socket the loop sleeps on; whoever makes a job ready wakes it (None: polling only)."""
        folder = self.storage.wakeup_dir
        if folder is None:
            return None
        try:
            return WakeupSocket(folder)
        except OSError as exc:
            log.warning("%s: no wake-up socket (%s); polling every %s s", self.name, exc,
                        self.config.polling_interval)
            return None

    def poll(self, now: float) -> float:
        with self._lock:
            finished, self._finished = self._finished, []
        idle = self.idle_threads
        if self._busy and 0 < idle < self.config.threads:
            # Busy queue, a thread just freed: give the others a moment so one claim serves them all.
            time.sleep(0.0005)
            with self._lock:
                finished, self._finished = finished + self._finished, []
            idle = self.idle_threads
        if idle > 0 or finished:
            try:
                claimed = self.storage.claim(self.process_id, self.config.queues, idle, now, finished=finished,
                                             preserve=self.preserve_finished_jobs)
            except BaseException:
                with self._lock:  # finish them with the next poll; the claims stand until then
                    self._finished[:0] = finished
                raise
            self._busy = len(claimed) == idle
            if claimed:
                events.instrument("claim", worker=self.name, job_ids=[row.id for row in claimed])
            for row in claimed:
                with self._lock:
                    self._in_flight[row.id] = self._pool.submit(self._execute, row)
        # A thread that frees up wakes the loop (on_wake), so a busy queue never waits for the interval.
        return self.config.polling_interval

    # -- running one job -------------------------------------------------------------------------------------

    def _execute(self, row: JobRow) -> None:
        try:
            self._perform(row)
        except Exception:
            # The job stays claimed; it goes back to ready when this process stops or is found dead.
            log.exception("job %d (%s): could not record its outcome", row.id, row.class_name)
        finally:
            with self._lock:
                self._in_flight.pop(row.id, None)
            self.on_wake()

    def _perform(self, row: JobRow) -> None:
        storage, pid = self.storage, self.process_id
        try:
            args, kwargs = load_arguments(row.arguments)
            job = restore(row.class_name, args, kwargs, job_id=row.active_job_id, queue_name=row.queue_name,
                          priority=row.priority, executions=row.executions + 1, provider_job_id=row.id)
        except Exception as exc:
            log.error("job %d: cannot run %s: %s", row.id, row.class_name, exc)
            storage.fail(row.id, pid, error_record(exc), self.clock())
            return
        started = time.perf_counter()
        events.instrument("perform_start", job_id=row.id, job_class=row.class_name, queue=row.queue_name)
        try:
            self._call(job)
        except BaseException as exc:  # a job's SystemExit must not take the worker down
            self._handle_error(row, job, exc)
            return
        elapsed = (time.perf_counter() - started) * 1000
        with self._lock:
            deferred = self._deferred
            if deferred:
                self._finished.append(row.id)
        if not deferred:
            storage.finish([row.id], pid, self.clock(), preserve=self.preserve_finished_jobs)
        events.instrument("perform_finish", job_id=row.id, job_class=row.class_name, queue=row.queue_name,
                          duration_ms=elapsed)
        log.info("Performed %s (job %d) from %s in %.1f ms", row.class_name, row.id, row.queue_name, elapsed)

    def _handle_error(self, row: JobRow, job: Job, exc: BaseException) -> None:
        outcome = job.outcome_of(exc)
        now = self.clock()
        events.instrument("perform_error", job_id=row.id, job_class=row.class_name, error=repr(exc),
                          outcome=outcome.status)
        if outcome.status in ("retry", "discarded"):
            events.instrument("retry" if outcome.status == "retry" else "discard", job_id=row.id,
                              job_class=row.class_name, retry_in=outcome.retry_in)
        if outcome.status == "retry":
            log.warning("%s (job %d) raised %s: %s; retry %d in %.1f s", row.class_name, row.id,
                        type(exc).__name__, exc, job.executions + 1, outcome.retry_in)
            self.storage.retry_later(row.id, self.process_id, job.executions, now + outcome.retry_in, now)
        elif outcome.status == "discarded":
            log.info("%s (job %d) discarded on %s: %s", row.class_name, row.id, type(exc).__name__, exc)
            self.storage.finish([row.id], self.process_id, now, preserve=self.preserve_finished_jobs)
        else:
            log.error("%s (job %d) failed: %s: %s", row.class_name, row.id, type(exc).__name__, exc,
                      exc_info=(type(exc), exc, exc.__traceback__))
            self.storage.fail(row.id, self.process_id, outcome.error or error_record(exc), now)

    def _call(self, job: Job) -> None:
        result = job.perform(*job.args, **job.kwargs)
        if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
            asyncio.run_coroutine_threadsafe(_await(result), self._event_loop()).result()

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        """One event loop per worker, in its own thread, for ``async def perform`` jobs."""
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name=f"{self.name}-asyncio", daemon=True)
                thread.start()
                self._loop, self._loop_thread = loop, thread
            return self._loop

    # -- stopping --------------------------------------------------------------------------------------------

    def shutdown(self, timeout: float) -> None:
        """Wait up to ``timeout`` for running jobs; hand back to ready the ones still running."""
        with self._lock:
            running = dict(self._in_flight)
        if running:
            log.info("%s: waiting up to %.1f s for %d running job(s)", self.name, timeout, len(running))
            wait_futures(list(running.values()), timeout=timeout)
        with self._lock:
            finished, self._finished = self._finished, []
            self._deferred = False  # a job still running finishes itself
            left = [job_id for job_id in self._in_flight if job_id not in finished]
        if finished:
            self.storage.finish(finished, self.process_id, self.clock(), preserve=self.preserve_finished_jobs)
        if left:
            released = self.storage.release(left, self.process_id, self.clock())
            log.warning("%s: released %d unfinished job(s) back to their queues: %s", self.name, len(released),
                        released)
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._loop is not None and self._loop_thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop_thread.join(timeout)
            if not self._loop.is_running():
                self._loop.close()


async def _await(awaitable: Any) -> Any:
    return await awaitable
