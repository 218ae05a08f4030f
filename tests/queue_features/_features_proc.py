"""Run as a process by test_processes.py, on the database argv[1] names (``sqlite:PATH`` or ``pg:CONNINFO``):

- ``enqueue OUT START N``: at ``START`` (Unix time), enqueue twenty unique keys ``N`` times each; write the ids.
- ``enqueue_mixed OUT START N``: the same, alternating one job per call and two per call (both enqueue paths).
- ``work OUT SECONDS``: a supervisor in this process (one worker of three threads, one dispatcher) for
  ``SECONDS``; the jobs below append what they did to ``OUT``.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

from solidstack.queue import (
    Batch,
    DispatcherConfig,
    Job,
    QueueConfig,
    SolidQueueAdapter,
    WorkerConfig,
    limits_rate,
    unique_for,
    use_adapter,
)
from solidstack.queue.processes.supervisor import AsyncSupervisor
from solidstack.queue.storage import QueueStorage

OUT = sys.argv[3] if len(sys.argv) > 3 else ""


def note(*fields: object) -> None:
    # One write of one line with O_APPEND: lines of several processes do not interleave.
    with open(OUT, "a") as out:
        out.write(json.dumps([*fields, os.getpid()]) + "\n")


@unique_for(600, key=lambda job: job.args[0])
class Q3ProcUnique(Job):
    def perform(self, key: str) -> None:
        pass


@limits_rate(to=5, per=2.0, key=lambda job: job.kwargs["token"])
class Q3ProcRated(Job):
    def perform(self, n: int, token: str) -> None:
        note("start", time.time(), token)


class Q3ProcStep(Job):
    def perform(self, n: int) -> None:
        note("step", n)


class Q3ProcDone(Job):
    def perform(self, batch_id: int) -> None:
        note("done", batch_id)


def storage_for(target: str) -> QueueStorage:
    engine, _, where = target.partition(":")
    if engine == "pg":
        from solidstack.db.postgresql import PostgreSQLDatabase

        return QueueStorage(PostgreSQLDatabase(where, name="queue", source="test"))
    from solidstack.db import SQLiteDatabase

    return QueueStorage(SQLiteDatabase(where))


def main() -> None:
    target, role = sys.argv[1], sys.argv[2]
    storage = storage_for(target)
    use_adapter(SolidQueueAdapter(storage))
    if role == "enqueue":
        start, count = float(sys.argv[4]), int(sys.argv[5])
        time.sleep(max(0.0, start - time.time()))
        # Twenty keys one after the other, each several times: every process races the others on each key.
        ids = {f"key-{k}": [Q3ProcUnique.perform_later(f"key-{k}").provider_job_id for _ in range(count)]
               for k in range(20)}
        note("ids", ids)
    elif role == "enqueue_mixed":
        start, count = float(sys.argv[4]), int(sys.argv[5])
        time.sleep(max(0.0, start - time.time()))
        # Both enqueue paths race on each key: one job at a time (PostgreSQL: the one-statement unique_enqueue;
        # SQLite: insert then take) and two in one call (the transaction path: holder read, compare-and-set).
        ids = {}
        for k in range(20):
            got = []
            for n in range(count):
                if n % 2:
                    pair = Job.perform_all_later([Q3ProcUnique(f"key-{k}"), Q3ProcUnique(f"key-{k}")])
                    got += [job.provider_job_id for job in pair]
                else:
                    got.append(Q3ProcUnique.perform_later(f"key-{k}").provider_job_id)
            ids[f"key-{k}"] = got
        note("ids", ids)
    elif role == "work":
        seconds = float(sys.argv[4])
        config = QueueConfig(workers=(WorkerConfig(threads=3, polling_interval=0.05),),
                             dispatchers=(DispatcherConfig(polling_interval=0.02),))
        supervisor = AsyncSupervisor(storage, config)
        thread = threading.Thread(target=supervisor.run, kwargs={"handle_signals": False}, daemon=True)
        thread.start()
        time.sleep(seconds)
        supervisor.stop(5.0)
        thread.join(10)
    storage.db.close()


if __name__ == "__main__":
    main()

# Batch is imported for test_processes.py, which enqueues the batch from the test process.
__all__ = ["Batch"]
