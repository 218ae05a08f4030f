"""The benchmark's task: records when it started (CLOCK_MONOTONIC, the same clock in every process on Linux)
beside when it was enqueued, one line per task appended to a file of this process."""

import os
import time

from django.conf import settings
from django.tasks import task

from solidstack.queue import Job

_fd: int | None = None


@task
def noop(enqueued_at: float) -> None:
    started = time.monotonic()
    global _fd
    if _fd is None:
        _fd = os.open(settings.BASE_DIR / f"starts-{os.getpid()}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.write(_fd, f"{started!r} {enqueued_at!r}\n".encode())


class NoopJob(Job):
    """The same work as a plain solidstack job (the ``solidstack-job`` row: solidstack without Django's task API)."""

    def perform(self, enqueued_at: float) -> None:
        noop.call(enqueued_at)
