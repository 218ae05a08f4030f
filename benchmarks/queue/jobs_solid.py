"""The solidstack benchmark job, and the worker process: one Runner around one Worker, as a forked child runs.

    python jobs_solid.py PATH_OR_URL [THREADS]     # a SQLite file, or a postgresql:// URL
"""

from __future__ import annotations

import sys

from record import record

from solidstack.queue import Job


class NoopJob(Job):
    def perform(self, sent_ns: int) -> None:
        record(sent_ns)


class BacklogJob(Job):
    """Jobs that wait behind the measured ones (the scale run): never run during a measurement."""

    def perform(self) -> None:
        pass


def open_database(where: str):  # type: ignore[no-untyped-def]
    """A SQLite file's path, or a ``postgresql://`` URL."""
    if where.startswith(("postgresql://", "postgres://")):
        from solidstack.db.postgresql import PostgreSQLDatabase

        return PostgreSQLDatabase(where, name="queue")
    from solidstack.db import SQLiteDatabase

    return SQLiteDatabase(where)


def main() -> None:
    import signal

    from solidstack.queue import QueueStorage, Runner, Worker, WorkerConfig

    path, threads = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 3
    storage = QueueStorage(open_database(path))
    worker = Worker(storage, WorkerConfig(threads=threads), preserve_finished_jobs=True)
    runner = Runner(worker, storage)
    signal.signal(signal.SIGTERM, lambda _s, _f: runner.stop())
    signal.signal(signal.SIGINT, lambda _s, _f: runner.stop())
    runner.run()
    print(f"commits {storage.db.commits}", flush=True)


if __name__ == "__main__":
    main()
