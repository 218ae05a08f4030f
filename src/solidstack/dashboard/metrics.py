"""``/metrics``: the queue's numbers in Prometheus' text format (via ``prometheus_client``), for Grafana.

Gauges, labelled by ``database`` (the dashboard's name for the queue database):

- ``solidstack_queue_size{queue}`` ready jobs; ``solidstack_queue_latency_seconds{queue}`` age of the oldest
  ready job; ``solidstack_queue_paused{queue}`` 1 when paused;
- ``solidstack_jobs{state}`` jobs ready, scheduled, claimed (in progress), blocked, failed;
- ``solidstack_jobs_finished_last_minute{class_name}`` jobs finished in the 60 s before the scrape (kept
  finished jobs, ``preserve_finished_jobs``) and ``solidstack_jobs_failed{class_name}`` failed jobs now;
- ``solidstack_processes{kind}`` registered supervisors, workers, dispatchers, schedulers.

Each scrape reads the database once per family; a fresh registry per scrape holds nothing between them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

# Machines get exact numbers: the state tables are counted whole (finished jobs, the big table, only by time).
EXACT_CAP = 10**12


class QueueCollector(Collector):
    """Collects the gauges of every queue database of a dashboard."""

    def __init__(self, databases: dict[str, Any]) -> None:
        self.databases = databases

    def collect(self) -> Iterator[GaugeMetricFamily]:
        size = GaugeMetricFamily("solidstack_queue_size", "Jobs ready to run in the queue.",
                                 labels=["database", "queue"])
        latency = GaugeMetricFamily("solidstack_queue_latency_seconds", "Age of the oldest ready job of the queue.",
                                    labels=["database", "queue"])
        paused = GaugeMetricFamily("solidstack_queue_paused", "1 when the queue is paused.",
                                   labels=["database", "queue"])
        states = GaugeMetricFamily("solidstack_jobs", "Jobs in each unfinished state.", labels=["database", "state"])
        finished = GaugeMetricFamily("solidstack_jobs_finished_last_minute",
                                     "Jobs finished in the last 60 seconds, per class.",
                                     labels=["database", "class_name"])
        failed = GaugeMetricFamily("solidstack_jobs_failed", "Failed jobs, per class.",
                                   labels=["database", "class_name"])
        processes = GaugeMetricFamily("solidstack_processes", "Registered processes, per kind.",
                                      labels=["database", "kind"])
        for name, db in self.databases.items():
            inspector = db.inspector
            inspector.count_cap = EXACT_CAP
            for q in inspector.queues():
                size.add_metric([name, q.name], q.size.value)
                latency.add_metric([name, q.name], q.latency)
                paused.add_metric([name, q.name], 1.0 if q.paused else 0.0)
            for state in ("ready", "scheduled", "claimed", "blocked", "failed"):
                states.add_metric([name, state], inspector.count(state).value)
            for class_name, n in sorted(inspector.finished_per_class(time.time() - 60).items()):
                finished.add_metric([name, class_name], n)
            for class_name, n in sorted(inspector.failed_per_class().items()):
                failed.add_metric([name, class_name], n)
            for kind, n in sorted(inspector.process_counts().items()):
                processes.add_metric([name, kind], n)
        yield from (size, latency, paused, states, finished, failed, processes)


def render_metrics(databases: dict[str, Any]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(QueueCollector(databases))
    return generate_latest(registry)


async def metrics(request: Request) -> Response:
    body = await run_in_threadpool(render_metrics, request.app.state.dashboard.databases)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
