"""The kernel queue of SQLite writers: an exclusive ``flock`` on ``<database>-writer.lock`` (decision 0401).

SQLite's busy handler sleeps and retries, so under steady contention one writer can wait a second while others
commit again and again; a waiter on a ``flock`` is woken the moment the holder releases it. One descriptor per
thread and lock file (a descriptor shares its lock with every copy of it, so threads cannot share one), opened
again in a forked child; a thread that holds a lock already takes it again without waiting (depth count).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
import time
from pathlib import Path

#: ``SOLIDSTACK_SQLITE_WRITE_LOCK=off`` leaves writers to SQLite's busy handler alone (to measure the difference).
WRITE_LOCK_VAR = "SOLIDSTACK_SQLITE_WRITE_LOCK"


def lock_path_for(database: Path) -> Path | None:
    """The writer-lock file of ``database``, or ``None`` when switched off by :data:`WRITE_LOCK_VAR`."""
    if os.environ.get(WRITE_LOCK_VAR, "on").lower() in ("off", "0", "false", "no"):
        return None
    return database.with_name(database.name + "-writer.lock")


class _LockFiles(dict[str, int]):
    """Open writer-lock files by path; closed when the thread that opened them ends."""

    def __del__(self) -> None:
        for fd in self.values():
            with contextlib.suppress(OSError):
                os.close(fd)


class _WriterLocks(threading.local):
    """This thread's writer-lock files, one per database path, with how deeply the thread holds each."""

    def __init__(self) -> None:
        self.fds = _LockFiles()
        self.depth: dict[str, int] = {}


_writer_locks = _WriterLocks()


def _after_fork_in_child() -> None:
    global _writer_locks
    # A lock file descriptor inherited from the parent shares its lock: the child opens its own.
    _writer_locks = _WriterLocks()


os.register_at_fork(after_in_child=_after_fork_in_child)


class LockFileUnavailable(OSError):
    """The lock file cannot be created (read-only folder, no permission): writers rely on SQLite alone."""


def acquire(lock_path: Path, *, within: float | None = None) -> str | None:
    """Wait in the kernel for the lock; returns the key to :func:`release` it with.

    ``within`` seconds: try without blocking until then (for background work that must never queue behind a
    long transaction), ``None`` when it was not free. Raises :class:`LockFileUnavailable` when the file cannot
    be created.
    """
    locks, key = _writer_locks, str(lock_path)
    depth = locks.depth.get(key, 0)
    if depth:  # this thread holds it already (another object for the same file): SQLite decides
        locks.depth[key] = depth + 1
        return key
    fd = locks.fds.get(key)
    if fd is None:
        try:
            fd = os.open(key, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EROFS, errno.ENOENT, errno.EPERM):
                raise
            raise LockFileUnavailable(exc.errno, exc.strerror, key) from exc
        locks.fds[key] = fd
    if within is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
    elif not _try_lock(fd, within):
        return None
    locks.depth[key] = 1
    return key


def _try_lock(fd: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.001)


def release(key: str) -> None:
    """Release what :func:`acquire` took (the outermost release unlocks)."""
    locks = _writer_locks
    depth = locks.depth.get(key, 0) - 1
    if depth > 0:
        locks.depth[key] = depth
        return
    locks.depth.pop(key, None)
    fd = locks.fds.get(key)
    if fd is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)


def close(lock_path: Path) -> None:
    """Close this thread's descriptor of ``lock_path``, unless the thread holds the lock."""
    locks, key = _writer_locks, str(lock_path)
    if not locks.depth.get(key):
        fd = locks.fds.pop(key, None)
        if fd is not None:
            os.close(fd)
