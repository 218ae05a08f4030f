"""Wake-ups: an enqueue in one process starts a job in an idle worker of another at once, not at its next poll;
polling stays the floor when a wake-up is lost; announcements wait for the outermost commit."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from solidstack.queue import QueueStorage, Runner, Worker, WorkerConfig
from solidstack.queue.storage import NewJob
from waiting import wait_for

HERE = Path(__file__).resolve().parent


def mark_job(out: Path, mark: str) -> NewJob:
    arguments = json.dumps({"args": [str(out), mark], "kwargs": {}})
    return NewJob("default", "SpeedMarkJob", arguments, 0, str(uuid.uuid4()))


def marks(out: Path) -> list[str]:
    return out.read_text().split() if out.exists() else []


def test_an_enqueue_wakes_an_idle_worker_in_another_process(storage: QueueStorage, tmp_path: Path) -> None:
    out = tmp_path / "marks.txt"
    # Polling every 30 s: only a wake-up can start these jobs within the bounds below.
    worker = subprocess.Popen([sys.executable, str(HERE / "_speed_worker.py"), str(storage.db.path), "30"])
    try:
        assert wait_for(lambda: bool(storage.processes()), 20), "the worker did not start"
        storage.enqueue([mark_job(out, "first")], time.time())
        assert wait_for(lambda: marks(out) == ["first"], 10)
        time.sleep(0.3)  # the worker is past its poll and asleep again
        storage.enqueue([mark_job(out, "second")], time.time())
        # Well before the 30 s polling interval (a generous bound, not a speed figure).
        assert wait_for(lambda: marks(out) == ["first", "second"], 5)
        assert wait_for(lambda: storage.counts()["finished"] == 2, 5)
    finally:
        worker.terminate()
        worker.wait(20)
    assert worker.returncode == 0
    assert storage.counts()["claimed"] == 0
    folder = storage.wakeups._folder
    assert not list(folder.glob("*.sock")) if folder.exists() else True


def test_polling_is_the_floor_when_a_wakeup_is_lost(storage: QueueStorage, tmp_path: Path) -> None:
    from solidstack.queue import Job

    ran = threading.Event()

    class SpeedFloorJob(Job):
        def perform(self) -> None:
            ran.set()

    worker = Worker(storage, WorkerConfig(polling_interval=0.2))
    runner = Runner(worker, storage)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        assert runner.started.wait(10)
        silent = QueueStorage(storage.db)
        silent.wakeups._folder = None  # an enqueuer whose wake-up never arrives
        time.sleep(0.3)
        silent.enqueue([NewJob("default", "SpeedFloorJob", '{"args":[],"kwargs":{}}', 0, str(uuid.uuid4()))],
                       time.time())
        assert ran.wait(10)
    finally:
        runner.stop()
        thread.join(10)
    assert storage.counts()["finished"] == 1


def test_after_commit_waits_for_the_outermost_commit(storage: QueueStorage) -> None:
    db = storage.db
    calls: list[str] = []

    def announce() -> None:
        calls.append("called")

    with db.transaction():
        with db.transaction():
            db.after_commit(announce)
            db.after_commit(announce)  # the same callback is announced once
        assert calls == []
    assert calls == ["called"]

    calls.clear()
    try:
        with db.transaction():
            db.after_commit(announce)
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    assert calls == []
    db.after_commit(announce)  # outside a transaction: at once
    assert calls == ["called"]


def test_a_worker_under_a_runner_finishes_every_job_it_ran(storage: QueueStorage, tmp_path: Path) -> None:
    from solidstack.queue import Job

    count = 0
    lock = threading.Lock()

    class SpeedCountJob(Job):
        def perform(self) -> None:
            nonlocal count
            with lock:
                count += 1

    job = NewJob("default", "SpeedCountJob", '{"args":[],"kwargs":{}}', 0, "x")
    storage.enqueue([job._replace(active_job_id=str(uuid.uuid4())) for _ in range(60)],
                    time.time())
    runner = Runner(Worker(storage, WorkerConfig(threads=3, polling_interval=0.1)), storage)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    assert wait_for(lambda: count == 60, 20)
    runner.stop()  # finishes still waiting for the next claim are written on the way out
    thread.join(10)
    counts = storage.counts()
    assert (counts["finished"], counts["claimed"], counts["ready"]) == (60, 0, 0)
    # Fewer commits than jobs: finishes ride along with the next claim.
    assert storage.db.commits < 2 * 60


def test_a_batched_finish_only_finishes_claims_the_process_still_holds(storage: QueueStorage) -> None:
    now = time.time()
    (job_id,) = storage.enqueue([mark_job(Path("/dev/null"), "x")], now)
    first = storage.register_process("Worker", "first", now)
    second = storage.register_process("Worker", "second", now)
    assert [row.id for row in storage.claim(first, ["*"], 1, now)] == [job_id]
    # The first process is presumed dead: its job runs again elsewhere.
    storage.deregister_process(first, now, died=True, reason="test")
    assert [row.id for row in storage.claim(second, ["*"], 1, now)] == [job_id]
    # The late first process hands in its finish with a claim: nothing happens to the second's job.
    storage.claim(first, ["*"], 1, now, finished=[job_id])
    assert storage.job_state(job_id)["state"] == "claimed"
    storage.claim(second, ["*"], 1, now, finished=[job_id])
    assert storage.job_state(job_id)["state"] == "finished"
