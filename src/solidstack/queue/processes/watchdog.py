"""A worker's watchdog: cancellation and timeouts of the jobs it is running.

One daemon thread per worker. While jobs run, it reads from the database which of them were cancelled
(``solidstack jobs cancel``; every ``CANCEL_CHECK`` seconds, one indexed read) and tells them: an async job is
cancelled on its loop, a plain one sees ``self.cancelled`` become true.

Timeouts: an async job's is an ``asyncio.timeout`` on its loop (see ``worker._run_async``). A plain job runs in a
thread, which Python cannot stop: at its deadline the watchdog sets ``cancelled`` (a job that checks it stops)
and records the run as failed with :class:`~.outcomes.JobTimeout` (so ``retry_on(JobTimeout)`` acts), which
takes its claim: the job is never held by a hung thread. The thread's own outcome, if it ever returns, is
dropped. A thread still busy its timeout again after its deadline (at most ``HUNG_GRACE`` seconds) makes the
worker stop as a graceful stop does (its other jobs finish or go back to their queues) so that its supervisor
starts a fresh process (decision 0032).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from solidstack.db.errors import DatabaseUnavailable
from solidstack.queue.features.outcomes import JobTimeout

if TYPE_CHECKING:
    from solidstack.queue.job import Job
    from solidstack.queue.processes.worker import Worker
    from solidstack.queue.storage import JobRow

log = logging.getLogger("solidstack.queue")

#: How often running jobs are checked against their deadlines (in memory).
TICK = 0.05
#: How often the database is asked which running jobs were cancelled.
CANCEL_CHECK = 0.5
#: A plain job's thread still busy its timeout again after its deadline, or this long at most: the worker process
#: is replaced.
HUNG_GRACE = 60.0


class Watchdog:
    """Tracks a worker's running jobs by id; settles each run exactly once (its thread, or a timeout)."""

    def __init__(self, worker: Worker, *, hung_grace: float = HUNG_GRACE) -> None:
        self.worker = worker
        self.hung_grace = hung_grace
        #: What to call to have the process replaced (set by the runner: stop it); default: log only.
        self.on_hung: Callable[[], None] = lambda: None
        self._lock = threading.Lock()
        self._jobs: dict[int, tuple[JobRow, Job]] = {}
        self._deadlines: dict[int, float] = {}
        self._futures: dict[int, Future[Any]] = {}
        self._timed_out: dict[int, float] = {}  # abandoned plain jobs: when they count as hung
        self._cancelled: set[int] = set()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._hung_reported = False

    # -- called by the worker around each run ----------------------------------------------------------------

    def start(self, row: JobRow, job: Job) -> None:
        self._jobs[row.id] = (row, job)
        if job.timeout is not None and not _is_async(job):
            with self._lock:
                self._deadlines[row.id] = time.monotonic() + job.timeout
        if self._thread is None:
            self._start_thread()

    def attach_future(self, job_id: int, future: Future[Any]) -> None:
        """An async job's future on the worker's loop, to cancel it there."""
        with self._lock:
            self._futures[job_id] = future
            cancelled = job_id in self._cancelled
        if cancelled:
            future.cancel()

    def settle(self, job_id: int) -> bool:
        """The run of ``job_id`` ended: True when the caller records its outcome, False when a timeout did."""
        self._jobs.pop(job_id, None)
        if self._futures:
            self._futures.pop(job_id, None)
        if self._cancelled:
            self._cancelled.discard(job_id)
        # Most jobs have no deadline: no lock. A deadline moves to _timed_out before it leaves _deadlines
        # (see _check_deadlines), so a job found in neither was never timed out.
        if job_id not in self._deadlines and job_id not in self._timed_out:
            return True
        with self._lock:
            if self._timed_out.pop(job_id, None) is not None:
                return False
            self._deadlines.pop(job_id, None)
            return True

    def abandoned(self, job_id: int) -> bool:
        """A plain job recorded as timed out while its thread still runs it (it holds no claim)."""
        return job_id in self._timed_out

    def stop(self) -> None:
        self._stop.set()

    # -- the thread ------------------------------------------------------------------------------------------

    def _start_thread(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._main, name=f"{self.worker.name}-watchdog", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        next_check = 0.0
        while not self._stop.wait(TICK):
            now = time.monotonic()
            try:
                self._check_deadlines(now)
                if now >= next_check and self._jobs:
                    next_check = now + CANCEL_CHECK
                    self._check_cancelled()
            except DatabaseUnavailable as exc:
                log.warning("%s: watchdog: %s", self.worker.name, exc)
            except Exception:
                log.exception("%s: watchdog failed a round", self.worker.name)

    def _check_deadlines(self, now: float) -> None:
        if not self._deadlines and not self._timed_out:
            return
        with self._lock:
            due = [job_id for job_id, deadline in self._deadlines.items() if deadline <= now]
            for job_id in due:
                entry = self._jobs.get(job_id)
                grace = min(entry[1].timeout or 0.0, self.hung_grace) if entry else self.hung_grace
                self._timed_out[job_id] = now + grace
                del self._deadlines[job_id]
            hung = [job_id for job_id, at in self._timed_out.items() if now >= at]
        for job_id in due:
            entry = self._jobs.get(job_id)
            if entry is None:
                continue
            row, job = entry
            job.__dict__["_cancelled"] = True  # a job that checks self.cancelled stops
            error = JobTimeout(f"{row.class_name} (job {job_id}) ran past its timeout of {job.timeout} s")
            log.error("%s; its thread is left to finish, its outcome dropped", error)
            self.worker.execution.handle_error(row, job, error)
        if hung and not self._hung_reported:
            self._hung_reported = True
            log.error("%s: job(s) %s still running long past their timeout; stopping this worker so that a "
                      "fresh process replaces it", self.worker.name, hung)
            self.on_hung()

    def _check_cancelled(self) -> None:
        ids = [job_id for job_id in list(self._jobs) if job_id not in self._cancelled]
        if not ids:
            return
        for job_id in self.worker.storage.outcomes.cancelled_among(ids):
            entry = self._jobs.get(job_id)
            if entry is None:
                continue
            job = entry[1]
            log.info("job %d (%s) cancelled while running", job_id, type(job).name())
            job.__dict__["_cancelled"] = True
            with self._lock:
                self._cancelled.add(job_id)
                future = self._futures.get(job_id)
            if future is not None:
                future.cancel()  # thread-safe: the task is cancelled on its loop


def _is_async(job: Job) -> bool:
    import inspect

    return inspect.iscoroutinefunction(type(job).perform)
