"""Live pages over solidstack's own cable: the dashboard's ``/cable`` speaks Action Cable to the vendored
``@rails/actioncable`` client; a channel streams each queue database's snapshot (counts, the queue table,
the chart's series) whenever it changes.

One thread per dashboard reads a snapshot of each database somebody watches every ``interval`` seconds (at
once after an action: :meth:`LiveUpdates.poke`) and broadcasts it when it differs from the last one. The
pub/sub is in-process (:class:`~solidstack.cable.MemoryPubSub`): the publisher is this process, so no message
needs to cross the cable database. The socket is authorized like the pages (the dashboard's guard refuses the
handshake), and its ``Origin`` must be the page's own host.

Chart: per queue and minute over the last hour, the jobs finished per second and their mean enqueue-to-start
latency (from when each was due, enqueued or scheduled for, to when its run started), both from the finished jobs'
rows (``finished_at``, and ``started_at``, which the finishing statement copies from the claim: decision 0603).
The queue table's latency is another figure: the age of the oldest ready job, how long the next one has waited.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from solidstack.queue.admin.inspect import Count, MinuteStat, QueueStat

from ..cable.asgi import CableApp
from ..cable.channel import Channel
from ..cable.limits import ConnectionLimits
from ..cable.pubsub import MemoryPubSub

if TYPE_CHECKING:
    from .sources import QueueDatabase

log = logging.getLogger("solidstack.dashboard")
HOUR_MINUTES = 60
#: The chart's hour is read whole this often (seconds); each snapshot in between reads its last two minutes. The
#: whole hour reads every finished job of the hour (0.5-1.3 s at 500,000 of them on SQLite, decision 0603).
FULL_READ = 600.0
STREAM = "solidstack_dashboard:{}"


class LiveUpdates:
    """The dashboard's cable endpoint, its channel, and the thread that publishes snapshots."""

    def __init__(self, dashboard: Any, *, interval: float = 1.0) -> None:
        self.dashboard = dashboard
        self.interval = interval
        self.pubsub = MemoryPubSub()
        live = self

        class SolidstackDashboardChannel(Channel):
            """``{"channel": "SolidstackDashboardChannel", "db": name}``: the snapshots of that database."""

            def subscribed(self) -> None:
                name = self.params.get("db")
                if name not in live.dashboard.databases:
                    self.reject()
                    return
                self.stream_from(STREAM.format(name))
                live.start()
                live.poke()

        self.channel = SolidstackDashboardChannel
        self.cable = CableApp([SolidstackDashboardChannel], pubsub=self.pubsub, allowed_request_origins=(),
                              limits=ConnectionLimits())
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._last: dict[str, Any] = {}
        self._seen: dict[str, set[str]] = {}
        self._throughput: dict[str, tuple[float, dict[str, dict[int, MinuteStat]]]] = {}

    # -- the snapshot ----------------------------------------------------------------------------------------

    def snapshot(self, db: QueueDatabase, now: float | None = None, *, chart: bool = True) -> dict[str, Any]:
        """What a live page shows of ``db``: counts, queues, and (``chart``) the chart's series (JSON-ready)."""
        now = time.time() if now is None else now
        inspector = db.inspector
        counts = inspector.counts()
        queues = inspector.queues(now)
        # An empty queue keeps its row (size 0) while this process has seen it, or it ran jobs in the last hour:
        # it can still be paused from its row.
        seen = self._seen.setdefault(db.name, set())
        seen.update(q.name for q in queues)
        finished = self._finished(db, now) if chart else {}
        seen.update(finished)
        listed = {q.name for q in queues}
        queues = sorted([*queues, *(QueueStat(name, Count(0), 0.0, False) for name in seen - listed)],
                        key=lambda q: q.name)
        minute = int(now // 60)
        snapshot: dict[str, Any] = {
            "db": db.name,
            "counts": {s: c.value for s, c in counts.items()},
            "counts_text": {s: str(c) for s, c in counts.items()},
            "queues": [{"name": q.name, "size": q.size.value, "size_text": str(q.size),
                        "latency": round(q.latency, 3), "paused": q.paused} for q in queues],
        }
        if chart:
            minutes = list(range(minute - HOUR_MINUTES + 1, minute + 1))
            names = sorted(finished)
            empty = MinuteStat(0, 0, None, None)
            snapshot["chart"] = {
                "minutes": minutes,
                "throughput": {n: [round(finished[n].get(m, empty).finished / 60, 3) for m in minutes]
                               for n in names},
                # None where no job that finished in the minute has a start time: no point rather than a zero.
                "latency": {n: [_seconds(finished[n].get(m, empty).latency_mean) for m in minutes] for n in names},
                "latency_max": {n: [_seconds(finished[n].get(m, empty).latency_max) for m in minutes]
                                for n in names},
            }
        return snapshot

    def _finished(self, db: QueueDatabase, now: float) -> dict[str, dict[int, MinuteStat]]:
        """Finished per queue and minute over the hour: read whole every ``FULL_READ`` seconds, else only the
        last two minutes, merged (a past minute changes only when its jobs are deleted, or by a finishing
        machine's clock running behind, which the two minutes cover)."""
        computed_at, data = self._throughput.get(db.name, (0.0, {}))
        if now - computed_at > FULL_READ:
            data = db.inspector.finished_minutes(now - HOUR_MINUTES * 60)
            self._throughput[db.name] = (now, data)
            return data
        recent = db.inspector.finished_minutes((now // 60 - 1) * 60)
        merged = {name: dict(minutes) for name, minutes in data.items()}
        for name, minutes in recent.items():
            merged.setdefault(name, {}).update(minutes)
        return merged

    # -- the publisher ---------------------------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="solidstack-dashboard-live", daemon=True)
                self._thread.start()

    def poke(self) -> None:
        """Publish soon (an action changed something)."""
        self._wake.set()

    def watched(self) -> list[str]:
        streams = set(self.pubsub.streams)
        return [name for name in self.dashboard.databases if STREAM.format(name) in streams]

    def publish_once(self) -> int:
        """Broadcast each watched database's snapshot if it changed; returns how many were sent."""
        sent = 0
        for name in self.watched():
            try:
                snapshot = self.snapshot(self.dashboard.databases[name])
            except Exception:
                log.exception("dashboard: reading the live snapshot of %s failed", name)
                continue
            if snapshot != self._last.get(name):
                self._last[name] = snapshot
                self.pubsub.broadcast(STREAM.format(name), snapshot)
                sent += 1
        return sent

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            if not self.watched():
                self._last.clear()  # a page that subscribes later gets a snapshot at once
                continue
            self.publish_once()


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
