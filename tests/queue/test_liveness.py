"""Which process rows pruning removes (``liveness.py``, decision 0006), on a real SQLite file."""

from __future__ import annotations

import json
import signal
import subprocess
import uuid

from solidstack.queue.processes.liveness import IDENTITY_KEY, identity, row_identity
from solidstack.queue.storage import NewJob, QueueStorage

NOW = 1_800_000_000.0
GONE_PID = 2**22 + 12345  # above pid_max: never a live process


def new() -> NewJob:
    return NewJob("default", "J", '{"args":[],"kwargs":{}}', 0, str(uuid.uuid4()))


def set_identity(storage: QueueStorage, process_id: int, value: str | None) -> None:
    row = next(p for p in storage.processes() if p["id"] == process_id)
    metadata = json.loads(row["metadata"])
    metadata.pop(IDENTITY_KEY)
    if value is not None:
        metadata[IDENTITY_KEY] = value
    storage.db.execute("UPDATE solidstack_processes SET metadata = :m WHERE id = :id",
                       {"m": json.dumps(metadata), "id": process_id})


def test_each_row_records_this_process_identity(storage: QueueStorage) -> None:
    process_id = storage.register_process("Worker", "w", NOW, metadata={"queues": "*"})
    (row,) = storage.processes()
    assert row["id"] == process_id and row_identity(row) == identity() != ""
    assert json.loads(row["metadata"])["queues"] == "*"


def test_a_dead_supervisor_is_pruned_without_its_live_processes(storage: QueueStorage) -> None:
    supervisor = storage.register_process("Supervisor", "s", NOW, pid=GONE_PID)
    worker = storage.register_process("Worker", "w", NOW, supervisor_id=supervisor)
    (job,) = storage.enqueue([new()], NOW)
    storage.claim(worker, ["*"], 1, NOW)
    pruned = storage.prune_dead_processes(NOW, alive_threshold=300, max_deaths=3)
    assert [p["id"] for p in pruned] == [supervisor] and pruned[0]["why"] == "its process is gone"
    assert [p["id"] for p in storage.processes()] == [worker]
    assert storage.counts()["claimed"] == 1 and storage.job_state(job)["state"] == "claimed"
    assert not storage.process_exists(supervisor) and storage.process_exists(worker)


def test_a_pid_from_another_namespace_or_boot_is_judged_by_heartbeat_only(storage: QueueStorage) -> None:
    foreign = storage.register_process("Worker", "foreign", NOW, pid=GONE_PID)
    set_identity(storage, foreign, "another-boot/4026531836")
    unknown = storage.register_process("Worker", "old", NOW, pid=GONE_PID)
    set_identity(storage, unknown, None)  # registered before identities were recorded
    assert storage.prune_dead_processes(NOW, alive_threshold=300, max_deaths=3) == []
    pruned = storage.prune_dead_processes(NOW + 301, alive_threshold=300, max_deaths=3)
    assert {p["id"] for p in pruned} == {foreign, unknown}
    assert all(p["why"] == "no heartbeat for 301 s" for p in pruned)


def test_a_stale_process_is_left_to_its_live_supervisor(storage: QueueStorage) -> None:
    supervisor = storage.register_process("Supervisor", "s", NOW)
    hung = storage.register_process("Worker", "hung", NOW - 1000, supervisor_id=supervisor)
    assert storage.prune_dead_processes(NOW, alive_threshold=300, max_deaths=3) == []
    # Once its supervisor is stale too, both go.
    storage.db.execute("UPDATE solidstack_processes SET last_heartbeat_at = :t WHERE id = :id",
                       {"t": NOW - 1000, "id": supervisor})
    pruned = storage.prune_dead_processes(NOW, alive_threshold=300, max_deaths=3)
    assert {p["id"] for p in pruned} == {supervisor, hung}


def test_a_graceful_deregister_of_a_supervisor_still_takes_its_processes(storage: QueueStorage) -> None:
    supervisor = storage.register_process("Supervisor", "s", NOW)
    worker = storage.register_process("Worker", "w", NOW, supervisor_id=supervisor)
    (job,) = storage.enqueue([new()], NOW)
    storage.claim(worker, ["*"], 1, NOW)
    assert storage.deregister_process(supervisor, NOW) == ([job], [])
    assert storage.processes() == []


def test_a_hung_process_without_a_live_supervisor_is_killed_before_its_jobs_go(storage: QueueStorage) -> None:
    # Stopped: alive, and able to resume its job. Its jobs may run elsewhere only once it is gone.
    hung = subprocess.Popen(["sleep", "60"])
    try:
        hung.send_signal(signal.SIGSTOP)
        process_id = storage.register_process("Worker", "hung", NOW - 1000, pid=hung.pid)
        (job,) = storage.enqueue([new()], NOW)
        storage.claim(process_id, ["*"], 1, NOW)
        assert storage.prune_dead_processes(NOW, alive_threshold=300, max_deaths=3) == []
        assert hung.wait(5) == -signal.SIGKILL
        assert storage.job_state(job)["state"] == "claimed"  # until a round finds it gone
        (pruned,) = storage.prune_dead_processes(NOW, alive_threshold=300, max_deaths=3)
        assert pruned["id"] == process_id and pruned["why"] == "its process is gone"
        assert storage.job_state(job)["state"] == "ready"
    finally:
        hung.kill()
        hung.wait()


def test_a_reused_pid_is_a_dead_process(storage: QueueStorage) -> None:
    process_id = storage.register_process("Worker", "w", NOW)  # this test process: alive
    row = next(p for p in storage.processes() if p["id"] == process_id)
    metadata = json.loads(row["metadata"])
    metadata["pid_start"] -= 1  # as if this pid had been another process's, started earlier
    storage.db.execute("UPDATE solidstack_processes SET metadata = :m WHERE id = :id",
                       {"m": json.dumps(metadata), "id": process_id})
    (pruned,) = storage.prune_dead_processes(NOW, alive_threshold=300, max_deaths=3)
    assert pruned["id"] == process_id and pruned["why"] == "its process is gone"


def test_a_stale_thread_of_a_working_process_is_pruned_not_killed(storage: QueueStorage) -> None:
    # Async mode: roles are threads, each with a row and the process's pid. One stale row does not make the
    # process hung while another row of it heartbeats.
    process = subprocess.Popen(["sleep", "60"])
    try:
        working = storage.register_process("Supervisor", "async", NOW, pid=process.pid)
        stale = storage.register_process("Worker", "thread", NOW - 1000, pid=process.pid)
        (pruned,) = storage.prune_dead_processes(NOW, alive_threshold=300, max_deaths=3)
        assert pruned["id"] == stale and pruned["why"] == "no heartbeat for 1000 s"
        assert process.poll() is None and [p["id"] for p in storage.processes()] == [working]
    finally:
        process.kill()
        process.wait()
