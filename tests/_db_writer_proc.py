"""A writer process for tests/test_db_failures.py: enqueues a job per line read, answers how it went.

``python _db_writer_proc.py APP_ROOT``; stdin ``enqueue N`` -> stdout ``ok N <active_job_id>`` or
``error N <ExceptionClass>: <message>``. The app is configured in the test environment.
"""

from __future__ import annotations

import sys
from pathlib import Path

import solidstack
from solidstack.queue import Job


class DbWriterJob(Job):
    def perform(self, n: int) -> None:
        pass


def main() -> None:
    solidstack.configure(Path(sys.argv[1]), "test")
    print("ready", flush=True)
    for line in sys.stdin:
        command, _, arg = line.strip().partition(" ")
        if command != "enqueue":
            continue
        try:
            job = DbWriterJob.perform_later(int(arg))
        except Exception as exc:  # reported to the test, which decides
            print(f"error {arg} {type(exc).__name__}: {exc}".replace("\n", " "), flush=True)
        else:
            print(f"ok {arg} {job.job_id}", flush=True)


if __name__ == "__main__":
    main()
