"""Run as a process by test_wakeups.py: one Runner around one Worker with a long polling interval, whose jobs
append their argument to a file."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from solidstack.db import SQLiteDatabase
from solidstack.queue import Job, QueueStorage, Runner, Worker, WorkerConfig


class SpeedMarkJob(Job):
    def perform(self, path: str, mark: str) -> None:
        with Path(path).open("a") as f:
            f.write(mark + "\n")


def main() -> None:
    path, polling_interval = sys.argv[1], float(sys.argv[2])
    storage = QueueStorage(SQLiteDatabase(path))
    runner = Runner(Worker(storage, WorkerConfig(polling_interval=polling_interval)), storage)
    signal.signal(signal.SIGTERM, lambda _s, _f: runner.stop())
    runner.run()


if __name__ == "__main__":
    main()
