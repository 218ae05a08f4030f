"""Keeps ``fork`` out of the database calls of this library's own background threads.

SQLite guards its heap and its open files with process-wide mutexes (a client library such as libpq holds
locks of its own). A fork taken while another thread holds one copies it locked into the child, where no
thread will ever release it: the child's first ``sqlite3.connect`` then blocks for good. Seen here: 16 of 300
forks of a process whose WAL checkpointer was busy hung; none of 1,000 with this guard.

Background threads (the checkpointer, the cache's expiry, cable's listener and trimmer) wrap their database
work in :func:`background_section`. A fork waits for running sections to end (bounded by ``WAIT``) and holds
new ones back until it is done. The supervisor forks from its main thread, whose own database calls are never
in flight at the moment it forks.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("solidstack.db")


class ForkGuard:
    """Sections that a fork waits for; see the module's docstring. Sections must not nest."""

    #: How long a fork waits for running sections; past it the fork goes ahead (and logs why).
    WAIT = 5.0

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._active = 0
        self._forking = False

    @contextmanager
    def section(self) -> Iterator[None]:
        with self._cond:
            while self._forking:
                self._cond.wait()
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                if not self._active:
                    self._cond.notify_all()

    def before_fork(self) -> None:
        with self._cond:
            self._forking = True
            if not self._cond.wait_for(lambda: not self._active, timeout=self.WAIT):
                log.warning("forking while a background thread is still inside the database (waited %.0f s)",
                            self.WAIT)

    def after_fork_in_parent(self) -> None:
        with self._cond:
            self._forking = False
            self._cond.notify_all()

    def after_fork_in_child(self) -> None:
        # The parent's threads are gone, and their lock, count and waiters with them.
        self._cond = threading.Condition(threading.Lock())
        self._active = 0
        self._forking = False


_guard = ForkGuard()
#: ``with background_section(): ...`` around a background thread's database work.
background_section = _guard.section
os.register_at_fork(before=_guard.before_fork, after_in_parent=_guard.after_fork_in_parent,
                    after_in_child=_guard.after_fork_in_child)
