"""The in-process stores: ``MemoryStore`` (a bounded LRU dict) and ``NullStore`` (stores nothing).

They keep encoded rows, exactly as the database does, so a value read back is a fresh copy (mutating it does
not change the cache) and every store accepts and refuses the same values.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from .store import Row, Store

#: ActiveSupport::Cache::MemoryStore's default size.
DEFAULT_MEMORY_SIZE = 32 * 1024 * 1024
_ROW_OVERHEAD = 100


class MemoryStore(Store):
    """A cache in this process's memory, least recently used first out.

    ``max_size`` (bytes, default 32 MiB) and ``max_entries`` bound it; when either is passed, it is pruned
    to three quarters of the limit, as Rails' MemoryStore does.
    """

    def __init__(self, *, max_size: int | None = DEFAULT_MEMORY_SIZE, max_entries: int | None = None,
                 **options: Any) -> None:
        super().__init__(**options)
        self.max_size = max_size or None
        self.max_entries = max_entries or None
        #: Each key's row and the time it was written (for ``stats().oldest_age``), least recently used first.
        self._rows: OrderedDict[bytes, tuple[Row, float]] = OrderedDict()
        self._size = 0
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"MemoryStore(namespace={self.namespace!r}, entries={len(self._rows)})"

    @staticmethod
    def _cost(row: Row) -> int:
        return len(row[0]) + len(row[1]) + _ROW_OVERHEAD

    def _get(self, key: bytes, version: str | None = None) -> Row | None:
        with self._lock:
            stored = self._rows.get(key)
            if stored is None:
                return None
            self._rows.move_to_end(key)
            return stored[0]

    def _get_many(self, keys: list[bytes]) -> list[Row]:
        with self._lock:
            return [row for row in map(self._get, keys) if row is not None]

    def _put(self, row: Row) -> None:
        with self._lock:
            old = self._rows.pop(row[0], None)
            if old is not None:
                self._size -= self._cost(old[0])
            self._rows[row[0]] = (row, time.time())
            self._size += self._cost(row)
            self._prune()

    def _prune(self) -> None:
        over_size = self.max_size is not None and self._size > self.max_size
        over_count = self.max_entries is not None and len(self._rows) > self.max_entries
        if not (over_size or over_count):
            return
        now = time.time()
        for key, (row, _) in list(self._rows.items()):  # expired entries go first
            expires_at = row[2]
            if expires_at is not None and expires_at <= now:
                self._drop(key)
        size_goal = self.max_size * 3 // 4 if self.max_size else None
        count_goal = self.max_entries * 3 // 4 if self.max_entries else None
        while self._rows and ((size_goal is not None and self._size > size_goal)
                              or (count_goal is not None and len(self._rows) > count_goal)):
            self._drop(next(iter(self._rows)))

    def _drop(self, key: bytes) -> bool:
        stored = self._rows.pop(key, None)
        if stored is None:
            return False
        self._size -= self._cost(stored[0])
        return True

    def _remove_many(self, keys: list[bytes]) -> int:
        with self._lock:
            return sum(self._drop(key) for key in keys)

    def _update(self, key: bytes, change: Callable[[Row | None], Row | None]) -> None:
        with self._lock:
            stored = self._rows.get(key)
            new = change(stored[0] if stored is not None else None)
            if new is not None:
                self._put(new)

    def _clear(self) -> None:
        with self._lock:
            self._rows.clear()
            self._size = 0

    def _usage(self) -> tuple[int, int, float | None, bool]:
        with self._lock:
            oldest = min((written for _, written in self._rows.values()), default=None)
            return len(self._rows), self._size, (time.time() - oldest) if oldest is not None else None, False


class NullStore(Store):
    """A store that keeps nothing: every read misses, every write succeeds and is forgotten (for tests and
    environments that must not cache)."""

    def __repr__(self) -> str:
        return "NullStore()"

    def _get(self, key: bytes, version: str | None = None) -> Row | None:
        return None

    def _put(self, row: Row) -> None:
        pass

    def _remove_many(self, keys: list[bytes]) -> int:
        return 0

    def _update(self, key: bytes, change: Callable[[Row | None], Row | None]) -> None:
        pass

    def _clear(self) -> None:
        pass

    def _usage(self) -> tuple[int, int, float | None, bool]:
        return 0, 0, None, False
