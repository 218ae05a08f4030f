"""What the dashboard shows: one or more queue databases (chosen from a menu), and the cache's and cable's stats.

Each source is resolved on first use, not when the app is built, so ``dashboard_app()`` can be created before
the app's configuration is loaded (at import time of an ASGI module).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from solidstack.queue.admin.actions import JobActions
from solidstack.queue.admin.inspect import QueueInspector
from solidstack.queue.storage import QueueStorage

log = logging.getLogger("solidstack.dashboard")

StorageSource = QueueStorage | Callable[[], QueueStorage]
_SLUG = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _current_queue_storage() -> QueueStorage:
    from solidstack.queue.adapters import queue_storage

    return queue_storage()


class QueueDatabase:
    """One queue database of the menu: its name in URLs, and its inspector and actions, made on first use."""

    def __init__(self, name: str, source: StorageSource, *, count_cap: int) -> None:
        if not _SLUG.match(name):
            raise ValueError(f"dashboard database name {name!r}: use letters, digits, '.', '_' or '-' (it is in URLs)")
        self.name = name
        self._source = source
        self._count_cap = count_cap
        self._lock = threading.Lock()
        self._storage: QueueStorage | None = None

    @property
    def storage(self) -> QueueStorage:
        with self._lock:
            if self._storage is None:
                self._storage = self._source if isinstance(self._source, QueueStorage) else self._source()
            return self._storage

    @property
    def inspector(self) -> QueueInspector:
        return QueueInspector(self.storage, count_cap=self._count_cap)

    @property
    def actions(self) -> JobActions:
        return JobActions(self.storage)

    @property
    def location(self) -> str:
        return self.storage.db.location


def queue_databases(queues: StorageSource | Mapping[str, StorageSource] | None, *,
                    count_cap: int) -> dict[str, QueueDatabase]:
    """The menu: ``None`` is the current app's queue database (named ``default``)."""
    if queues is None:
        queues = {"default": _current_queue_storage}
    elif isinstance(queues, QueueStorage) or callable(queues):
        queues = {"default": queues}
    if not queues:
        raise ValueError("dashboard_app(queues=...) needs at least one queue database")
    return {name: QueueDatabase(name, source, count_cap=count_cap) for name, source in queues.items()}


@dataclass(frozen=True)
class PartStats:
    """One part's numbers for the stats page: ``rows`` of (label, value), or why there are none."""

    title: str
    rows: list[tuple[str, str]]
    note: str = ""


def cache_stats(store: Any | None) -> PartStats:
    """Entries, bytes, oldest entry and hit ratio (of this process) of the cache store."""
    try:
        if store is None:
            from ..cache import current_store

            store = current_store()
        stats = store.stats()
    except Exception as exc:  # no cache configured: say so, the page still works
        return PartStats("Cache", [], f"No cache store to show: {exc}")
    about = "about " if stats.estimated else ""
    rows = [("Entries", f"{about}{stats.entries:,}"), ("Bytes", f"{about}{_bytes(stats.size)}")]
    rows.append(("Oldest entry", f"{_ago(stats.oldest_age)} old" if stats.oldest_age is not None else "—"))
    reads = stats.hits + stats.misses
    ratio = f"{stats.hits / reads:.0%} of {reads:,} reads" if reads else "no reads yet"
    rows.append(("Hit ratio (this process)", ratio))
    return PartStats("Cache", rows, type(store).__name__)


def cable_stats(pubsub: Any | None) -> PartStats:
    """Messages retained in the cable database and streams listened to by this process."""
    try:
        if pubsub is None:
            from ..cable import pubsub as current_pubsub

            pubsub = current_pubsub()
        rows: list[tuple[str, str]] = []
        storage = getattr(pubsub, "storage", None)
        if storage is not None:
            rows.append(("Messages retained", f"{storage.count():,}"))
        streams = getattr(pubsub, "streams", None)
        if streams is not None:
            rows.append(("Streams listened to (this process)", f"{len(streams() if callable(streams) else streams):,}"))
    except Exception as exc:
        return PartStats("Cable", [], f"No cable to show: {exc}")
    return PartStats("Cable", rows, type(pubsub).__name__)


def _bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _ago(seconds: float) -> str:
    from .formatting import duration

    return duration(seconds)
