"""What every benchmark job does: append ``<sent_ns> <started_ns>`` to the file named by ``BENCH_OUT``.

One ``write`` on an ``O_APPEND`` file: the same small cost in every system, and readable after the worker ends.
CLOCK_MONOTONIC is shared by the processes of one Linux machine, so start minus send is a latency.
"""

from __future__ import annotations

import os
import time

_fd: int | None = None


def record(sent_ns: int) -> None:
    global _fd
    now = time.monotonic_ns()
    if _fd is None:
        _fd = os.open(os.environ["BENCH_OUT"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(_fd, b"%d %d\n" % (sent_ns, now))


def read(path: str) -> list[tuple[int, int]]:
    try:
        with open(path) as f:
            return [(int(a), int(b)) for a, b in (line.split() for line in f if line.strip())]
    except FileNotFoundError:
        return []
