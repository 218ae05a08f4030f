"""Queue management: pause and resume a queue, its size and latency, clearing it.

A paused queue keeps its jobs; workers skip it (the claim queries exclude paused queues) until it is resumed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from solidstack.queue import events
from solidstack.queue._sql import control_queries
from solidstack.queue.storage import QueueStorage


@dataclass(frozen=True)
class QueueInfo:
    """One queue as ``solidstack queues list`` shows it."""

    name: str
    size: int
    latency: float
    paused: bool


def _storage(storage: QueueStorage | None) -> QueueStorage:
    if storage is not None:
        return storage
    from solidstack.queue.adapters import queue_storage

    return queue_storage()


class Queue:
    """A queue by name: ``Queue("mailers").pause()``. Without ``storage``, the current app's queue database."""

    def __init__(self, name: str, storage: QueueStorage | None = None) -> None:
        if not name or "*" in name:
            raise ValueError(f"a queue name, not a pattern, is needed here; got {name!r}")
        self.name = name
        self.storage = _storage(storage)
        self.sql = control_queries(self.storage.db)

    def __repr__(self) -> str:
        return f"Queue({self.name!r})"

    def pause(self, now: float | None = None) -> None:
        """Stop workers from claiming this queue's jobs (running ones finish); jobs stay queued."""
        self.storage.db.execute(self.sql["pause_queue"], {"queue": self.name, "now": now or time.time()})
        events.instrument("pause", queue=self.name)

    def resume(self) -> None:
        self.storage.db.execute(self.sql["resume_queue"], {"queue": self.name})
        self.storage.announce_ready()  # its ready jobs can be claimed again
        events.instrument("resume", queue=self.name)

    @property
    def paused(self) -> bool:
        return self.name in paused_queues(self.storage)

    @property
    def size(self) -> int:
        """Jobs ready to run in this queue (not scheduled, blocked or running)."""
        row = self.storage.db.query_one(self.sql["queue_stat"], {"queue": self.name})
        return int(row["size"]) if row else 0

    def latency(self, now: float | None = None) -> float:
        """Seconds the oldest ready job of this queue has waited (0 when it is empty)."""
        row = self.storage.db.query_one(self.sql["queue_stat"], {"queue": self.name})
        if row is None or row["oldest"] is None:
            return 0.0
        oldest: float = row["oldest"]
        return max(0.0, (now or time.time()) - oldest)

    def clear(self, batch_size: int = 500) -> int:
        """Delete every ready job of this queue, in batches; returns how many. Running jobs are left alone."""
        deleted = 0
        db, base = self.storage.db, self.storage.sql
        while True:
            with db.transaction() as conn:
                ids = [row[0] for row in conn.execute(self.sql["ready_ids_in_queue"],
                                                      {"queue": self.name, "limit": batch_size})]
                if ids:
                    conn.execute(base["delete_jobs"], {"ids": db.array(ids)})
            deleted += len(ids)
            if len(ids) < batch_size:
                break
        events.instrument("clear", queue=self.name, jobs=deleted)
        return deleted


def paused_queues(storage: QueueStorage | None = None) -> list[str]:
    storage = _storage(storage)
    return [row[0] for row in storage.db.query(control_queries(storage.db)["paused_queues"])]


def queues(storage: QueueStorage | None = None, now: float | None = None) -> list[QueueInfo]:
    """Every queue with ready jobs or a pause, with its size, latency and whether it is paused."""
    storage = _storage(storage)
    now = now or time.time()
    paused = set(paused_queues(storage))
    found = {row["queue_name"]: (row["size"], row["oldest"])
             for row in storage.db.query(control_queries(storage.db)["queue_stats"])}
    names = sorted(set(found) | paused)
    return [QueueInfo(name, int(found.get(name, (0, None))[0]),
                      max(0.0, now - found[name][1]) if name in found and found[name][1] is not None else 0.0,
                      name in paused) for name in names]
