"""Eviction for the database store, as Solid Cache does it: FIFO, in small batches, triggered by writes.

Every ``batch_size / 2`` writes of a process, one pass looks at the ``3 * batch_size`` oldest rows (by id, the
order of first write) and deletes a random ``batch_size`` of them: all candidates when the cache is over
``max_entries`` or ``max_size``, otherwise those older than ``max_age`` or past their own ``expires_in``.
Deleting two rows per write keeps a full cache at its limit; sampling among more candidates than it deletes
keeps passes of several processes from fighting over the same rows. Entry count and size are estimated from a
window of ids (exact while the table is small), so a pass costs a few index reads, never a scan of the table.

``method="thread"`` runs passes on a daemon thread of the process (restarted after a fork), off the caller's
path; ``"inline"`` runs them in the writing call.
"""

from __future__ import annotations

import os
import random
import threading
import time
from typing import TYPE_CHECKING

from ..db import background_section

if TYPE_CHECKING:
    from .database import DatabaseStore

METHODS = ("thread", "inline")


class Expiry:
    """Eviction of one :class:`~solidstack.cache.DatabaseStore`."""

    def __init__(self, store: DatabaseStore, *, max_age: float | None, max_entries: int | None,
                 max_size: int | None, batch_size: int = 100, method: str = "thread", samples: int = 1000) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown expiry method {method!r} (known: {', '.join(METHODS)})")
        if batch_size < 1 or samples < 1:
            raise ValueError("expiry_batch_size and size_estimate_samples must be at least 1")
        self.store = store
        self.max_age = max_age or None
        self.max_entries = max_entries or None
        self.max_size = max_size or None
        self.batch_size = batch_size
        self.method = method
        self.samples = samples
        self.every = max(1, batch_size // 2)
        self._active = bool(self.max_age or self.max_entries or self.max_size)
        self._writes = 0
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._event = threading.Event()
        self._stopping = False
        self._lock = threading.Lock()

    def written(self, count: int) -> None:
        """Count writes; every ``batch_size / 2`` of them, run or wake a pass."""
        if not self._active:
            return
        self._writes += count
        if self._writes < self.every:
            return
        self._writes = 0
        if self.method == "inline":
            self.run_safely()
        else:
            self._wake()

    # -- one pass -------------------------------------------------------------------------------------------

    def estimate(self) -> tuple[int, int, bool]:
        """``(entries, bytes, estimated)``: exact while the ids span at most ``samples``, else from a window."""
        fetch, queries = self.store._fetch, self.store.queries
        low, high = fetch(queries["id_range"])[0]
        if low is None:
            return 0, 0, False
        span = high - low + 1
        if span <= self.samples:
            entries, size = fetch(queries["count_and_size"])[0]
            return int(entries), int(size), False
        start = random.randint(low, high - self.samples + 1)
        entries, size = fetch(queries["sample_count_and_size"], {"low": start, "high": start + self.samples - 1})[0]
        scale = span / self.samples
        return round(entries * scale), round(size * scale), True

    def run(self, now: float | None = None) -> int:
        """Run one pass now; returns how many entries it deleted. Raises on a database failure."""
        store = self.store
        queries = store.queries
        now = time.time() if now is None else now
        full = False
        if self.max_entries or self.max_size:
            entries, size, _ = self.estimate()
            full = bool((self.max_entries and entries > self.max_entries) or (self.max_size and size > self.max_size))
        limit = self.batch_size * 3
        if full:
            rows = store._fetch(queries["oldest_ids"], {"limit": limit})
        else:
            # -inf, not None: "created_at < NULL" would match nothing on either engine, but -inf says why.
            cutoff = now - self.max_age if self.max_age else float("-inf")
            rows = store._fetch(queries["expired_ids"], {"limit": limit, "cutoff": cutoff, "now": now})
        ids = [row[0] for row in rows]
        if len(ids) > self.batch_size:
            ids = random.sample(ids, self.batch_size)
        if not ids:
            return 0
        return store._run(queries["delete_ids"], {"ids": store.db.array(ids)})

    def run_safely(self) -> int:
        """:meth:`run`, with a failure logged by the store's failsafe instead of raised."""
        from .store import FAILURES

        try:
            return self.run()
        except FAILURES as exc:
            self.store._fail("expire", exc)
            return 0

    # -- the background thread -------------------------------------------------------------------------------

    def _wake(self) -> None:
        thread = self._thread
        if thread is None or self._pid != os.getpid() or not thread.is_alive():
            with self._lock:
                if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                    # After a fork the parent's thread and event are gone or unusable here: start afresh.
                    self._event = threading.Event()
                    self._stopping = False
                    self._pid = os.getpid()
                    self._thread = threading.Thread(target=self._loop, args=(self._event,),
                                                    name="solidstack-cache-expiry", daemon=True)
                    self._thread.start()
        self._event.set()

    def _loop(self, event: threading.Event) -> None:
        try:
            while True:
                event.wait()
                event.clear()
                if self._stopping:
                    return
                with background_section():
                    self.run_safely()
        finally:
            self.store.db.close()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the background thread (it starts again on the next pass that is due)."""
        with self._lock:
            thread = self._thread
            if thread is None or self._pid != os.getpid():
                return
            self._stopping = True
            self._event.set()
        thread.join(timeout)
        with self._lock:
            self._thread = None
            self._stopping = False
