"""The worker: claims ready jobs for its idle threads and performs them.

Its threads are long-lived. The loop (a :class:`~.runner.Runner`, or a test calling :meth:`Worker.poll`) claims
for the idle threads and puts the rows on a shared deque; whichever thread is free first runs the next one.
Under a runner (``attach``), a busy worker drives itself: a thread with nothing to run claims for itself and the
other idle threads, so a short job costs no hand-off between threads (each costs ~40 µs of scheduling here),
and the loop only sleeps on its wake-up socket (``wakeup_socket``) until the queue is busy again.

A job that ran under a runner is finished in the transaction of the next claim: a busy worker commits once per
batch, not once per job. The claim is only deleted by that commit, so a crash before it runs the job again
(at-least-once). Stepped by hand (tests), each job is finished by its thread at once.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from solidstack.db.errors import DatabaseUnavailable
from solidstack.db.notify import Waiter
from solidstack.queue import events
from solidstack.queue.config import WorkerConfig
from solidstack.queue.processes.execution import DETACHED, Execution
from solidstack.queue.processes.watchdog import Watchdog
from solidstack.queue.storage import JobRow, QueueStorage

log = logging.getLogger("solidstack.queue")

#: How long a thread about to claim waits for its busy peers, so that one claim serves them all.
COALESCE_WAIT = 0.0005
#: A busy worker's threads claim for themselves and the claiming thread runs the batch's jobs one after the
#: other, unless one takes long: the loop then checks this often and hands the jobs still waiting to the idle
#: threads (or, when nobody has claimed for that long, wakes one idle thread to claim). Waking a peer for every
#: batch costs more than the jobs (measured: 4,500 against 8,000 no-op jobs/s at 3 threads), and a wake-up
#: that finds nothing to do still takes the GIL from the thread working. The loop checks only while the queue
#: is busy and a thread is idle: a worker whose threads all run long jobs leaves it at its polling interval.
HAND_OFF_AFTER = 0.001
#: An idle worker's polling interval while its PostgreSQL LISTEN connection is up (decision 0046).
LISTENING_POLL_FLOOR = 5.0
#: Prefetch (decision 0055), where the storage claims in one round trip (PostgreSQL): a busy worker claims for
#: its idle threads plus as many more jobs as its threads have recently run in PREFETCH_BUDGET seconds, up to
#: PREFETCH_MAX in all: a claim's round trip serves many short jobs, and the jobs a worker holds beyond its
#: threads are at most a few milliseconds of work that another worker could have run.
PREFETCH_BUDGET = 0.002
PREFETCH_MAX = 32


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
        # Guarded by _cond's lock. Threads wait on _cond for a job or their turn to claim; a claiming thread
        # waits on _peers for the jobs still running. Each is notified only as often as needed: a woken thread
        # competes for the GIL with the one doing the work.
        lock = threading.Lock()
        self._cond = threading.Condition(lock)
        self._peers = threading.Condition(lock)
        #: Claimed for the idle threads, not started yet.
        self._ready: deque[JobRow] = deque()
        #: Running now, by job id.
        self._running: set[int] = set()
        #: Ran, to be finished by the next claim (only when a loop is attached).
        self._finished: list[int] = []
        #: The return values of those of them that returned one (by id, stored form).
        self._results: dict[int, str] = {}
        #: Of the jobs running, those handed to the event loop (``async_capacity``): they hold no thread.
        self._async_running = 0
        self._deferred = False
        #: A claim failed on a lost connection: the next one first releases claims this process does not hold.
        self._resync = False
        #: The last claim filled every idle thread: the queue likely has more, the threads claim for themselves.
        self._busy = False
        self._claiming = False
        self._stopping = False
        self._queued_at = 0.0  # when the rows now waiting in _ready were claimed
        self._claimed_at = 0.0  # when the last claim ended
        self._watching = False  # the loop checks for hand-offs every HAND_OFF_AFTER
        self._threads: list[threading.Thread] = []
        #: Prefetch (PREFETCH_BUDGET): the storage claims in one round trip, and the running mean of how long
        #: this worker's jobs take (None: none ran yet, no prefetch).
        #: Not with ``async_capacity``: a thread takes every claimed row it finds, and the claim's limit is what
        #: bounds the async jobs running at once.
        self._prefetch = bool(getattr(storage, "prefetch", False)) and not self.config.async_capacity
        self._job_seconds: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._waiter: Waiter | None = None
        self.execution = Execution(self)
        #: Cancellation and timeouts of the running jobs (see watchdog.py).
        self.watchdog = Watchdog(self)

    def metadata(self) -> dict[str, Any]:
        return {"queues": ",".join(self.config.queues), "thread_pool_size": self.config.threads,
                "polling_interval": self.config.polling_interval}

    @property
    def title(self) -> str:
        """The process title: ``solidstack-worker: waiting for jobs in *``."""
        return f"waiting for jobs in {','.join(self.config.queues)}"

    @property
    def idle_threads(self) -> int:
        with self._cond:
            return self._idle()

    def _idle(self) -> int:
        free = self.config.threads - (len(self._running) - self._async_running) - len(self._ready)
        capacity = self.config.async_capacity
        if capacity:  # async jobs hold no thread, but each holds one of the loop's slots
            return min(free, capacity - self._async_running - len(self._ready))
        return free

    def attach(self, wake: Callable[[], None]) -> None:
        """Driven by a loop that calls :meth:`poll` whenever ``wake`` is called: finishes go to the next claim."""
        self.on_wake = wake
        self._deferred = True

    def wakeup_socket(self) -> Waiter | None:
        """What the loop sleeps on (a wake-up socket, a LISTEN subscription); whoever makes a job ready wakes it
        (None: polling only)."""
        try:
            self._waiter = self.storage.wakeups.listener()
            return self._waiter
        except OSError as exc:
            log.warning("%s: no wake-up socket (%s); polling every %s s", self.name, exc,
                        self.config.polling_interval)
            return None

    def poll(self, now: float) -> float:
        """Claim for the idle threads, and finish what ran, unless the threads are claiming for themselves."""
        self._start_threads()
        with self._cond:
            self._hand_off()
            if self._claiming or self._stopping or (self._busy and self._deferred) or (
                    self._idle() <= 0 and not self._finished):
                return self._next_poll()
            self._claiming = True
        self._claim(now, by_thread=False)
        # A thread that frees up with the queue drained wakes the loop (on_wake): finishes never wait long.
        with self._cond:
            return self._next_poll()

    def _hand_off(self) -> None:
        """A thread busy with a long job while the queue is busy: wake idle threads for the jobs claimed with it,
        or, when nothing waits and nobody has claimed for a while, one idle thread to claim for the idle ones."""
        now = time.monotonic()
        if self._ready:
            if now - self._queued_at >= HAND_OFF_AFTER:
                self._cond.notify(len(self._ready))
        elif (self._busy and self._deferred and not self._claiming and self._idle() > 0
              and now - self._claimed_at >= HAND_OFF_AFTER):
            self._cond.notify(1)

    def _next_poll(self) -> float:
        self._watching = bool(self._ready) or (self._busy and self._deferred and self._idle() > 0)
        if self._watching:
            return HAND_OFF_AFTER
        if getattr(self._waiter, "listening", False):
            # A PostgreSQL LISTEN connection is up: every change that makes a job ready NOTIFYs, and a listener
            # that drops or comes back wakes its subscribers; an idle worker need not ask the database 10 times
            # a second. Polling stays the floor (a wake-up lost anyway) and resumes as soon as it drops.
            return max(self.config.polling_interval, LISTENING_POLL_FLOOR)
        return self.config.polling_interval

    def _claim(self, now: float, *, by_thread: bool) -> int:
        """Claim for the idle threads (the caller set ``_claiming``); returns how many rows it queued.

        ``by_thread``: a worker thread claims, and will run the first row itself.
        """
        with self._cond:
            if by_thread and self._running:
                # A busy queue and peers finishing: give them a moment, so one claim serves them all.
                deadline = time.monotonic() + COALESCE_WAIT
                while self._running and not self._stopping:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._peers.wait(remaining)
            finished, self._finished = self._finished, []
            results, self._results = self._results, {}
            limit = 0 if self._stopping else max(0, self._idle())
            if limit and self._prefetch:
                limit = self._with_prefetch(limit)
            resync, self._resync = self._resync, False
            known = set(self._running) | {row.id for row in self._ready} | set(finished)
        if resync:
            self._release_unknown_claims(known, now)
        try:
            rows = self.storage.claim(self.process_id, self.config.queues, limit, now, finished=finished,
                                      preserve=self.preserve_finished_jobs,
                                      results=results or None) if limit or finished else []
        except BaseException as exc:
            with self._cond:  # finish them with the next claim; the claims stand until then
                self._finished[:0] = finished
                self._results.update(results)
                self._claiming = self._busy = False
                # A lost connection may have lost only the COMMIT's answer: the claim may stand, for jobs this
                # process never got. The next claim looks (see _release_unknown_claims).
                self._resync = self._resync or isinstance(exc, DatabaseUnavailable)
            raise
        with self._cond:
            self._claiming = False
            self._busy = 0 < limit == len(rows)
            claimed_at = time.monotonic()
            if rows and not self._ready:
                self._queued_at = claimed_at  # how long the oldest of them has waited (_hand_off)
            self._ready.extend(rows)
            # A thread runs its batch itself while the queue is busy (see HAND_OFF_AFTER); otherwise the idle
            # threads are woken for the jobs now.
            keeps = by_thread and self._busy
            self._cond.notify(0 if keeps else max(0, len(rows) - by_thread))
            self._claimed_at = claimed_at
            # The loop sleeps its full interval: have it watch from now (the other rows wait for a thread).
            wake_loop = keeps and len(rows) > 1 and not self._watching
        if wake_loop:
            self.on_wake()
        if rows and events.wanted("claim"):
            events.instrument("claim", worker=self.name, job_ids=[row.id for row in rows])
        return len(rows)

    def _with_prefetch(self, limit: int) -> int:
        """``limit`` (the idle threads) and the jobs to prefetch for them (see PREFETCH_BUDGET)."""
        seconds = self._job_seconds
        if seconds is None or limit >= PREFETCH_MAX:
            return limit
        return min(PREFETCH_MAX, limit + int(PREFETCH_BUDGET * self.config.threads / max(seconds, 1e-6)))

    # -- the threads -----------------------------------------------------------------------------------------

    def _start_threads(self) -> None:
        if self._threads:
            return
        for index in range(self.config.threads):
            # Daemon threads: a job still running past shutdown_timeout (its claim released) must not keep
            # the process alive.
            thread = threading.Thread(target=self._thread_main, name=f"{self.name}_{index}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _next(self) -> JobRow | None:
        """Wait for a job to run (its id now counts as running); None: claim (``_claiming`` set) or stop.

        Stopping, the jobs already claimed still start (they were claimed for idle threads): shutdown waits for
        them as for the running ones, and hands back what has not started by its deadline.
        """
        with self._cond:
            while True:
                if self._ready:
                    row = self._ready.popleft()
                    self._running.add(row.id)
                    return row
                if self._stopping:
                    return None
                if self._busy and self._deferred and not self._claiming:
                    self._claiming = True
                    return None
                self._cond.wait()

    def _thread_main(self) -> None:
        while True:
            row = self._next()
            if row is not None:
                self._execute(row)
                continue
            if self._stopping:
                return
            try:
                self._claim(self.clock(), by_thread=True)
            except DatabaseUnavailable as exc:
                log.warning("%s: claim failed (%s); the loop retries", self.name, exc)
                self.on_wake()
            except Exception:
                log.exception("%s: claim failed; the loop retries", self.name)
                self.on_wake()

    # -- running one job -------------------------------------------------------------------------------------

    def _execute(self, row: JobRow) -> None:
        detached = False
        started = time.perf_counter()
        try:
            detached = self.execution.run(row) is DETACHED
        except Exception:
            # The job stays claimed; it goes back to ready when this process stops or is found dead.
            log.exception("job %d (%s): could not record its outcome", row.id, row.class_name)
        finally:
            with self._cond:
                if not detached:  # an async job on the loop stays running (see async_ended)
                    self._running.discard(row.id)
                    if self._prefetch:
                        took = time.perf_counter() - started
                        mean = self._job_seconds
                        self._job_seconds = took if mean is None else mean + (took - mean) / 8
                # Nobody claims while the queue is not busy: the loop must finish this job (and claim again).
                wake = not self._busy or not self._deferred
                if self._claiming and not self._running:
                    self._peers.notify()  # a claimer may be waiting for its peers
            if wake:
                self.on_wake()

    @property
    def deferred(self) -> bool:
        """Finishes go with the next claim (a loop is attached)."""
        return self._deferred

    def finish_later(self, job_id: int, result: str | None) -> bool:
        """Have the next claim finish this job (with its stored return value); False: finish it now."""
        with self._cond:
            if self._deferred:
                self._finished.append(job_id)
                if result is not None:
                    self._results[job_id] = result
            return self._deferred

    def async_started(self, job_id: int) -> None:
        """An async job now runs on the loop and holds no thread (``async_capacity``)."""
        with self._cond:
            self._async_running += 1

    def async_ended(self, job_id: int) -> None:
        with self._cond:
            self._async_running -= 1
            self._running.discard(job_id)
            self._cond.notify()  # a slot is free: an idle thread may claim
            if self._claiming and not self._running:
                self._peers.notify()
        self.on_wake()

    def _release_unknown_claims(self, known: set[int], now: float) -> None:
        """Claims this process holds in the database but not in hand: a claim whose COMMIT went through while
        the connection dropped before its answer came. Back to ready, as a graceful stop would hand them."""
        try:
            stray = [job_id for job_id in self.storage.claimed_by(self.process_id) if job_id not in known]
            if stray:
                released = self.storage.release(stray, self.process_id, now)
                log.warning("%s: released %d job(s) claimed while the connection was lost: %s", self.name,
                            len(released), released)
        except DatabaseUnavailable:
            with self._cond:
                self._resync = True

    def record(self, write: Callable[[], Any]) -> None:
        """Record a job's outcome, waiting out a lost database connection (a server restart) with backoff: the
        job stays claimed meanwhile and must not be left so. Gives up when stopping; the claim then goes back
        to ready with the process (at-least-once)."""
        delay = 0.2
        while True:
            try:
                write()
                return
            except DatabaseUnavailable as exc:
                if self._stopping:
                    raise
                log.warning("%s: could not record a job's outcome (%s); retrying in %.1f s", self.name, exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def event_loop(self) -> asyncio.AbstractEventLoop:
        """One event loop per worker, in its own thread, for ``async def perform`` jobs."""
        with self._cond:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name=f"{self.name}-asyncio", daemon=True)
                thread.start()
                self._loop, self._loop_thread = loop, thread
            return self._loop

    # -- stopping --------------------------------------------------------------------------------------------

    def shutdown(self, timeout: float) -> list[int]:
        """Wait up to ``timeout`` for the jobs running or claimed; hand back the ones not started by then.

        Returns the jobs still running: they stay claimed, since nothing can stop a thread and their claims
        must not go back while they run (another worker would start them at once). They go back to their
        queues once this process has exited: its supervisor, which reaps it, or a pruner hands them back.
        """
        with self._cond:
            self._stopping = True
            running = len(self._running) + len(self._ready)
            self._cond.notify_all()
            self._peers.notify_all()
        if running:
            log.info("%s: waiting up to %.1f s for %d running job(s)", self.name, timeout, running)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._cond:  # async jobs on the loop (async_capacity) get the same deadline
            while self._async_running and time.monotonic() < deadline:
                self._cond.wait(max(0.0, min(0.05, deadline - time.monotonic())))
        self.watchdog.stop()
        with self._cond:
            finished, self._finished = self._finished, []
            results, self._results = self._results, {}
            self._deferred = False  # a job still running finishes itself
            # A plain job failed by its timeout no longer holds its claim (its thread may still run): not counted.
            still_running = [job_id for job_id in self._running
                             if job_id not in finished and not self.watchdog.abandoned(job_id)]
            unstarted = [row.id for row in self._ready]
            self._ready.clear()
        if finished:
            self.storage.finish(finished, self.process_id, self.clock(), preserve=self.preserve_finished_jobs,
                                results=results or None)
        if unstarted:
            released = self.storage.release(unstarted, self.process_id, self.clock())
            log.warning("%s: released %d unfinished job(s) back to their queues: %s", self.name, len(released),
                        released)
        if still_running:
            log.warning("%s: %d job(s) still running after %.1f s (shutdown_timeout): they stay claimed until "
                        "this process has exited, then go back to their queues: %s", self.name,
                        len(still_running), timeout, still_running)
        if self._loop is not None and self._loop_thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop_thread.join(timeout)
            if not self._loop.is_running():
                self._loop.close()
        return still_running

