"""Run as a process by test_processes.py: one AsyncSupervisor whose only role is a scheduler, on a simulated
clock shared with the other process (``base + (time.time() - t0) * speed``), until ``real_seconds`` pass."""

from __future__ import annotations

import sys
import threading
import time

from solidstack.db import SQLiteDatabase
from solidstack.queue import Job
from solidstack.queue.config import QueueConfig
from solidstack.queue.processes.scheduler import Scheduler
from solidstack.queue.processes.supervisor import AsyncSupervisor, RoleSpec
from solidstack.queue.recurring import parse_recurring
from solidstack.queue.storage import QueueStorage


class Queue2SecondJob(Job):
    def perform(self) -> None:
        pass


def main() -> None:
    path, base, t0, speed, real_seconds = sys.argv[1], *map(float, sys.argv[2:6])

    def clock() -> float:
        return base + (time.time() - t0) * speed

    storage = QueueStorage(SQLiteDatabase(path))
    tasks = parse_recurring({"tick": {"class": "Queue2SecondJob", "schedule": "every second"}}, file="-", env="test")
    spec = RoleSpec("scheduler", lambda s, _c: Scheduler(s, tasks, max_wait=0.005), 0)
    supervisor = AsyncSupervisor(storage, QueueConfig(workers=(), dispatchers=()), extra_roles=(spec,), clock=clock)
    thread = threading.Thread(target=supervisor.run, kwargs={"handle_signals": False}, daemon=True)
    thread.start()
    time.sleep(max(0.0, t0 + real_seconds - time.time()))
    supervisor.stop(5.0)


if __name__ == "__main__":
    main()
