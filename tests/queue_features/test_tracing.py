"""Tracing and log context on both engines: a producer span at enqueue, a consumer span linked to it at perform,
the trace context carried in the job's row; job id and class on every log line a job writes; without
OpenTelemetry nothing of it is imported."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from solidstack.queue import Job, JobLogFilter
from solidstack.queue.features import hooks, tracing
from solidstack.queue.storage import QueueStorage

log = logging.getLogger("q3.tracing")


class Q3Traced(Job):
    queue_as = "mail"

    def perform(self, to: str) -> None:
        log.warning("sending to %s", to)


class Q3TracedFails(Job):
    def perform(self) -> None:
        raise ValueError("nope")


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_tracer_provider(provider)
    hooks.set_tracing(True)
    try:
        yield exporter
    finally:
        hooks.set_tracing(None)
        tracing.use_tracer_provider(None)


def test_enqueue_and_perform_make_linked_producer_and_consumer_spans(
        storage: QueueStorage, work: Callable[..., None], spans: InMemorySpanExporter) -> None:
    job = Q3Traced.perform_later("ann@example.com")
    row = storage.db.query_one("SELECT arguments FROM solidstack_jobs")
    assert '"traceparent"' in row[0]  # the context travels in the job's row
    (producer,) = spans.get_finished_spans()
    assert producer.kind == trace.SpanKind.PRODUCER and producer.name == "mail publish"
    assert producer.attributes["solidstack.job.class"] == "Q3Traced"
    assert producer.attributes["messaging.destination.name"] == "mail"
    assert producer.attributes["solidstack.job.id"] == job.provider_job_id
    work()
    (consumer,) = [span for span in spans.get_finished_spans() if span.kind == trace.SpanKind.CONSUMER]
    assert consumer.name == "mail process"
    assert [link.context.span_id for link in consumer.links] == [producer.context.span_id]
    assert consumer.links[0].context.trace_id == producer.context.trace_id
    assert consumer.attributes["solidstack.job.class"] == "Q3Traced"
    assert consumer.attributes["solidstack.job.id"] == job.provider_job_id
    assert consumer.attributes["messaging.destination.name"] == "mail"
    assert consumer.attributes["solidstack.job.attempt"] == 1


def test_a_failing_job_records_the_error_on_its_span(storage: QueueStorage, work: Callable[..., None],
                                                     spans: InMemorySpanExporter) -> None:
    Q3TracedFails.perform_later()
    work()
    (consumer,) = [span for span in spans.get_finished_spans() if span.kind == trace.SpanKind.CONSUMER]
    assert consumer.status.status_code == trace.StatusCode.ERROR
    assert any(event.name == "exception" for event in consumer.events)


def test_every_line_a_job_logs_names_it(storage: QueueStorage, work: Callable[..., None]) -> None:
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    handler.addFilter(JobLogFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        job = Q3Traced.perform_later("bob@example.com")
        log.warning("outside any job")
        work()
    finally:
        root.removeHandler(handler)
    inside = [record for record in records if record.getMessage() == "sending to bob@example.com"]
    assert [(r.job_id, r.job_class, r.job) for r in inside] == [
        (job.provider_job_id, "Q3Traced", f"[Q3Traced job {job.provider_job_id}] ")]
    outside = [record for record in records if record.getMessage() == "outside any job"]
    assert [(r.job_id, r.job) for r in outside] == [(None, "")]


SCRIPT = """
import importlib.abc, sys, tempfile, pathlib

class NoOtel(importlib.abc.MetaPathFinder):  # as if the otel extra were not installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "opentelemetry":
            raise ModuleNotFoundError(name)
        return None

sys.meta_path.insert(0, NoOtel())
from solidstack.db import SQLiteDatabase, migrate
from solidstack.db.migrate import package_migrations
from solidstack.queue import Job, SolidQueueAdapter, Worker, WorkerConfig, use_adapter
from solidstack.queue.storage import QueueStorage

class Plain(Job):
    def perform(self):
        pass

db = SQLiteDatabase(pathlib.Path(tempfile.mkdtemp()) / "q.sqlite3")
migrate(db, package_migrations("solidstack.queue", "sqlite"))
storage = QueueStorage(db)
use_adapter(SolidQueueAdapter(storage))
Plain.perform_later()
worker = Worker(storage, WorkerConfig(threads=1))
import time
worker.poll(time.time())
deadline = time.time() + 10
while storage.counts()["finished"] < 1 and time.time() < deadline:
    time.sleep(0.01)
worker.shutdown(2)
from solidstack.queue.features import hooks
print(storage.counts()["finished"], hooks.FEATURES, [m for m in sys.modules if m.startswith("opentelemetry")])
"""


def test_without_opentelemetry_nothing_is_imported_and_no_feature_is_on() -> None:
    env = {**os.environ}
    env.pop("SOLIDSTACK_TRACING", None)
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "False", "[]"]
