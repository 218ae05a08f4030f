"""The worker's threads under a runner: a busy worker's threads claim for themselves, the claiming thread runs
short jobs of its batch itself, and a long job hands the rest of its batch to the idle threads; never more jobs
at once than threads; a stop waits for the running jobs and leaves the rest of the queue ready. On both engines:
on PostgreSQL a busy worker also prefetches a few short jobs beyond its idle threads (decision 0055)."""

from __future__ import annotations

import random
import threading
import time
import uuid

import pytest

from solidstack.queue import Job, QueueStorage, Runner, Worker, WorkerConfig
from solidstack.queue.processes import worker as worker_module
from solidstack.queue.storage import NewJob
from waiting import wait_for


@pytest.fixture
def storage(engine_storage: QueueStorage) -> QueueStorage:
    return engine_storage


running = 0
most = 0
at_gate = 0  # jobs waiting at the gate now (running counts short jobs too, for a moment)
ran: list[str] = []
gate = threading.Event()
lock = threading.Lock()


class ThreadsSlowJob(Job):
    def perform(self, name: str, seconds: float) -> None:
        global running, most, at_gate
        with lock:
            running += 1
            most = max(most, running)
            at_gate += seconds < 0
        try:
            if seconds < 0:
                gate.wait(10)
            else:
                time.sleep(seconds)
        finally:
            with lock:
                running -= 1
                at_gate -= seconds < 0
                ran.append(name)


def enqueue(storage: QueueStorage, jobs: list[tuple[str, float]]) -> None:
    storage.enqueue([NewJob("default", "ThreadsSlowJob", f'{{"args":["{name}",{seconds}],"kwargs":{{}}}}', 0,
                            str(uuid.uuid4())) for name, seconds in jobs], time.time())


def start(storage: QueueStorage, threads: int) -> tuple[Runner, threading.Thread]:
    global running, most, at_gate
    running = most = at_gate = 0
    ran.clear()
    gate.clear()
    runner = Runner(Worker(storage, WorkerConfig(threads=threads, polling_interval=0.2)), storage,
                    shutdown_timeout=2)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    return runner, thread


@pytest.mark.parametrize("shorts", [30, 4, 5, 6, 7, 8])
def test_a_long_job_hands_the_rest_of_its_batch_to_idle_threads(storage: QueueStorage, shorts: int) -> None:
    # Short jobs first keep the worker busy (its threads claim for themselves, a batch at a time), then three
    # jobs that wait for the gate: all three must be running at once, on three threads, however they were
    # batched. Were the claiming thread to run its batch alone, the second would wait for the first forever;
    # were nobody to claim while it waits, a gated job left in the queue would wait for the gate.
    enqueue(storage, [(f"short{i}", 0.0) for i in range(shorts)] + [(f"gated{i}", -1) for i in range(3)])
    runner, thread = start(storage, threads=3)
    try:
        assert wait_for(lambda: at_gate == 3, 5), f"{at_gate} of 3 gated jobs running; ran {len(ran)}"
        assert most == 3
    finally:
        gate.set()
        runner.stop()
        thread.join(10)
    assert sorted(ran) == sorted([f"short{i}" for i in range(shorts)] + [f"gated{i}" for i in range(3)])
    counts = storage.counts()
    assert (counts["finished"], counts["claimed"], counts["ready"]) == (shorts + 3, 0, 0)


def test_never_more_jobs_at_once_than_threads(storage: QueueStorage) -> None:
    enqueue(storage, [(f"j{i}", 0.002 * (i % 4)) for i in range(120)])
    runner, thread = start(storage, threads=4)
    try:
        assert wait_for(lambda: len(ran) == 120, 30)
    finally:
        runner.stop()
        thread.join(10)
    assert 1 < most <= 4
    assert storage.counts()["finished"] == 120


def test_a_stop_waits_for_running_jobs_and_leaves_the_rest_ready(storage: QueueStorage) -> None:
    # Two threads: both block on the gate; the jobs behind them are not claimed by a worker with no idle thread.
    enqueue(storage, [(f"gated{i}", -1) for i in range(2)] + [(f"after{i}", 0.0) for i in range(4)])
    runner, thread = start(storage, threads=2)
    assert wait_for(lambda: at_gate == 2, 10)
    runner.stop()
    time.sleep(0.3)  # the runner is waiting for the running jobs (shutdown_timeout 2 s)
    gate.set()
    thread.join(10)
    assert not thread.is_alive()
    counts = storage.counts()
    assert (counts["finished"], counts["claimed"], counts["ready"]) == (2, 0, 4)
    assert sorted(ran) == ["gated0", "gated1"]


def test_jobs_claimed_before_a_stop_still_run(storage: QueueStorage) -> None:
    # Claimed for idle threads, they start at once: a stop right after the claim waits for them.
    enqueue(storage, [(f"j{i}", 0.01) for i in range(3)])
    ran.clear()
    worker = Worker(storage, WorkerConfig(threads=3))
    worker.process_id = storage.register_process("Worker", "w", time.time())
    worker.poll(time.time())
    worker.shutdown(5)
    assert sorted(ran) == ["j0", "j1", "j2"]
    assert storage.counts()["finished"] == 3


def test_a_worker_busy_with_long_jobs_does_not_spin(storage: QueueStorage) -> None:
    # The loop checks every millisecond only while threads claim batches of several short jobs; three long
    # jobs (one claim, then nothing to hand off) leave it at its polling interval.
    enqueue(storage, [(f"gated{i}", -1) for i in range(3)])
    runner, thread = start(storage, threads=3)
    worker = runner.role
    polls = 0
    poll = worker.poll

    def counting_poll(now: float) -> float:
        nonlocal polls
        polls += 1
        return poll(now)

    worker.poll = counting_poll  # type: ignore[method-assign]
    try:
        assert wait_for(lambda: at_gate == 3, 10)
        polls = 0
        time.sleep(0.6)
        counted = polls
    finally:
        gate.set()
        runner.stop()
        thread.join(10)
    assert counted <= 20, f"{counted} polls in 0.6 s with the polling interval at 0.2 s"


@pytest.mark.parametrize("seed", range(4))
def test_stops_at_random_moments_lose_and_repeat_nothing(storage: QueueStorage, seed: int) -> None:
    # Jobs of mixed lengths, a stop at a random moment, then a second worker drains the rest: every job runs
    # exactly once, never more than `threads` at once, and nothing is left claimed.
    rng = random.Random(seed)
    names = [f"m{i}" for i in range(240)]
    enqueue(storage, [(name, rng.choice([0.0, 0.0001, 0.001, 0.004])) for name in names])
    for stop_after in (rng.uniform(0.01, 0.15), None):
        runner, thread = start(storage, threads=4)
        if stop_after is None:
            assert wait_for(lambda: storage.counts()["ready"] == 0 and storage.counts()["claimed"] == 0, 30)
        else:
            time.sleep(stop_after)
        runner.stop()
        thread.join(10)
        assert not thread.is_alive()
        counts = storage.counts()
        assert counts["claimed"] == 0
        assert counts["finished"] + counts["ready"] == len(names)
        assert most <= 4
        if stop_after is not None:
            first = list(ran)
    assert sorted(first + ran) == sorted(names)
    assert storage.counts()["finished"] == len(names)


def test_prefetch_claims_beyond_idle_threads_only_after_short_jobs(storage: QueueStorage) -> None:
    # Before any job ran, a claim asks for the idle threads only; once short jobs ran, a PostgreSQL worker
    # (one round trip a claim) asks for more, up to PREFETCH_MAX, SQLite's for its idle threads still; long jobs
    # turn prefetch off again. Every job runs once, never more at once than threads.
    enqueue(storage, [(f"j{i}", 0.0) for i in range(60)])
    limits: list[int] = []
    claim = storage.claim

    def counting_claim(process_id, queues, limit, now, **kwargs):  # type: ignore[no-untyped-def]
        limits.append(limit)
        return claim(process_id, queues, limit, now, **kwargs)

    storage.claim = counting_claim  # type: ignore[method-assign]
    runner, thread = start(storage, threads=2)
    try:
        assert wait_for(lambda: len(ran) == 60, 30)
    finally:
        runner.stop()
        thread.join(10)
    assert limits[0] == 2
    if storage.db.dialect == "postgresql":  # how many more depends on this machine's speed of a no-op job
        assert 2 < max(limits) <= worker_module.PREFETCH_MAX
    else:
        assert max(limits) == 2
    assert most <= 2 and sorted(ran) == sorted(f"j{i}" for i in range(60))
    counts = storage.counts()
    assert (counts["finished"], counts["claimed"], counts["ready"]) == (60, 0, 0)
    worker = runner.role
    worker._job_seconds = 1.0  # jobs that take a second: no prefetch
    assert worker._with_prefetch(2) == 2
    # With async_capacity the claim's limit is what bounds the async jobs running at once: no prefetch.
    assert not Worker(storage, WorkerConfig(threads=2, async_capacity=4))._prefetch
