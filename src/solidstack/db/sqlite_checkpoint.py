"""The checkpointer: one thread per process copies the WAL of the databases it wrote back into them.

SQLite's automatic WAL checkpoint runs inside the ``COMMIT`` of whichever writer crosses the threshold and made
that writer wait several milliseconds (the whole p99 of enqueue-to-start latency: decision 0401), so it is only
a backstop; this thread does the work every :data:`CHECKPOINT_INTERVAL`, off the writers' path. It also keeps
the WAL *file* small (decision 0012): a passive checkpoint never shrinks it, and after a burst it stayed at its
largest size (41 MB) for good.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING
from urllib.parse import quote

from . import sqlite_lock as writer_lock
from .forkguard import background_section

if TYPE_CHECKING:
    from .sqlite import SQLiteDatabase

log = logging.getLogger("solidstack.db")

#: How often the checkpointer copies the WAL of databases written since its last round back into them.
CHECKPOINT_INTERVAL = 1.0
#: The checkpointer truncates a WAL above this size, even while the process keeps writing.
WAL_SIZE_LIMIT = 64 * 2**20
#: ... and, on its first round after this process stopped writing to a database, a WAL above this size.
WAL_IDLE_LIMIT = 1 * 2**20

_started_in: int | None = None
_start_lock = threading.Lock()


def ensure_started(databases: Callable[[], Iterable[SQLiteDatabase]]) -> None:
    """Start this process's checkpointer thread over ``databases()`` (once per process: a thread does not
    survive a fork, so a child starts its own on its first commit)."""
    global _started_in
    if _started_in == os.getpid():
        return
    with _start_lock:
        if _started_in == os.getpid():
            return
        _started_in = os.getpid()
    threading.Thread(target=_loop, args=(databases,), name="solidstack-checkpointer", daemon=True).start()


def _after_fork_in_child() -> None:
    global _start_lock
    _start_lock = threading.Lock()  # another thread of the parent may have held it at the fork


os.register_at_fork(after_in_child=_after_fork_in_child)


def _loop(databases: Callable[[], Iterable[SQLiteDatabase]]) -> None:
    while True:
        time.sleep(CHECKPOINT_INTERVAL)
        for db in list(databases()):
            if db._written:  # written since the last round: copy the WAL back, truncate it only if huge
                db._written = False
                db._wal_to_trim = True
                with background_section():
                    checkpoint(db)
                    truncate_wal(db, WAL_SIZE_LIMIT)
            elif db._wal_to_trim:  # a burst of writes ended: give the disk back the WAL it left
                db._wal_to_trim = False
                with background_section():
                    truncate_wal(db, WAL_IDLE_LIMIT)


def checkpoint(db: SQLiteDatabase) -> None:
    """Copy the WAL back into the database without blocking readers or writers (``PASSIVE``).

    Runs on a short-lived connection of its own, so the checkpointer thread holds no file open between
    rounds. Best effort: a failure only leaves the WAL longer until the next round.
    """
    try:
        conn = _connect(db, timeout=0.1)
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()
    except sqlite3.Error as exc:
        log.debug("%s: checkpoint skipped (%s)", db.label, exc)


def _connect(db: SQLiteDatabase, timeout: float) -> sqlite3.Connection:
    """A connection that never creates the file: a database deleted under the process stays deleted (the
    writers report it) instead of coming back empty."""
    return sqlite3.connect(f"file:{quote(str(db.path))}?mode=rw", uri=True, timeout=timeout, isolation_level=None)


def wal_size(db: SQLiteDatabase) -> int:
    try:
        return os.stat(f"{db.path}-wal").st_size
    except OSError:
        return 0


def truncate_wal(db: SQLiteDatabase, limit: int) -> None:
    """Checkpoint the whole WAL and cut its file to zero bytes, when it is larger than ``limit`` bytes.

    ``TRUNCATE`` needs SQLite's write lock for a moment: the kernel writer lock is taken first, so writers
    queue behind it and are woken when it is done. It gives up (the next round tries again) when that lock
    stays taken for 50 ms — the checkpointer must never wait behind a long transaction, it serves every
    database of the process — or when readers hold old snapshots for 20 ms. Never on a writer's path.
    """
    if wal_size(db) <= limit:
        return
    key = None
    try:
        if db.lock_path is not None:
            key = writer_lock.acquire(db.lock_path, within=0.05)
            if key is None:
                db._wal_to_trim = True
                return
        conn = _connect(db, timeout=0.02)
        try:
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            conn.close()
        if busy:
            db._wal_to_trim = True  # readers were behind: try again next round
    except (sqlite3.Error, OSError) as exc:
        log.debug("%s: WAL truncation skipped (%s)", db.label, exc)
    finally:
        if key is not None:
            writer_lock.release(key)
