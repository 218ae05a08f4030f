"""How the features ride the worker's flow, on both engines: an ``async def`` job sees its batch and its span on
the worker's event loop; batch callbacks carry the batch's trace context and go through the features' enqueue
(unique, guarded to once); rate limited jobs are admitted or rescheduled by the claim's own transaction; with
OpenTelemetry but no tracer provider nothing is traced or stored."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from solidstack.queue import Batch, Job, Worker, WorkerConfig, limits_rate, unique_for
from solidstack.queue.features import hooks, tracing
from solidstack.queue.features.batches import _complete
from solidstack.queue.features.ratelimit import ClaimLimiter
from solidstack.queue.storage import QueueStorage

SEEN: list[tuple[str, object, object]] = []


class Q3FlowAsync(Job):
    async def perform(self, n: int) -> None:
        await asyncio.sleep(0.01)  # after a suspension, on the loop: still in the job's context
        batch = Batch.current()
        span = trace.get_current_span().get_span_context()
        SEEN.append(("async", batch.id if batch else None, span.span_id if span.is_valid else None))


class Q3FlowDone(Job):
    def perform(self, batch_id: int) -> None:
        SEEN.append(("done", batch_id, None))


@unique_for(600, key=lambda job: "the-one")
class Q3FlowUniqueDone(Job):
    def perform(self, batch_id: int) -> None:
        SEEN.append(("unique done", batch_id, None))


@unique_for(600, key=lambda job: job.args[5])  # an index error on the callback's one argument
class Q3FlowBadKeyDone(Job):
    def perform(self, batch_id: int) -> None:
        SEEN.append(("bad key done", batch_id, None))


class Q3FlowStep(Job):
    def perform(self, n: int) -> None:
        pass


@limits_rate(to=2, per=60.0)
class Q3FlowRated(Job):
    def perform(self, n: int) -> None:
        SEEN.append(("rated", n, None))


@pytest.fixture(autouse=True)
def clear() -> Iterator[None]:
    SEEN.clear()
    yield
    SEEN.clear()


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


def drain(storage: QueueStorage, worker: Worker, count: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while storage.counts().get("finished", 0) < count:
        assert time.monotonic() < deadline, storage.counts()
        worker.poll(time.time())
        time.sleep(0.01)


@pytest.mark.parametrize("capacity", [0, 10])
def test_an_async_job_sees_its_batch_and_its_span_on_the_loop(storage: QueueStorage, spans: InMemorySpanExporter,
                                                              capacity: int) -> None:
    with Batch() as batch:
        for n in range(3):
            Q3FlowAsync.perform_later(n)
    worker = Worker(storage, WorkerConfig(threads=2, async_capacity=capacity, polling_interval=0.01))
    try:
        drain(storage, worker, 3)
    finally:
        worker.shutdown(5.0)
    consumers = {span.context.span_id: span for span in spans.get_finished_spans()
                 if span.kind == trace.SpanKind.CONSUMER}
    assert len(SEEN) == 3
    for kind, batch_id, span_id in SEEN:
        assert (kind, batch_id) == ("async", batch.id)
        assert span_id in consumers  # the job's own consumer span was current on the loop
        # ... and it ended when the coroutine did, not when perform returned the coroutine.
        assert consumers[span_id].end_time - consumers[span_id].start_time >= 9_000_000
    assert Batch.find(batch.id, storage=storage).status == "succeeded"


def test_callbacks_link_to_the_batch_span(storage: QueueStorage, work: Callable[..., None],
                                          spans: InMemorySpanExporter) -> None:
    tracer = tracing.tracer()
    assert tracer is not None
    with tracer.start_as_current_span("request") as request, Batch(on_success=Q3FlowDone,
                                                                   on_finish=Q3FlowDone) as batch:
        Q3FlowStep.perform_later(1)
    work()
    assert sorted(kind for kind, *_ in SEEN) == ["done", "done"]
    callbacks = [span for span in spans.get_finished_spans()
                 if span.kind == trace.SpanKind.CONSUMER and span.attributes["solidstack.job.class"] == "Q3FlowDone"]
    assert len(callbacks) == 2
    for span in callbacks:
        assert [link.context.span_id for link in span.links] == [request.get_span_context().span_id]
    assert Batch.find(batch.id, storage=storage).finished


def test_a_batch_outside_any_span_gets_one_for_its_callbacks(storage: QueueStorage, work: Callable[..., None],
                                                             spans: InMemorySpanExporter) -> None:
    with Batch(on_finish=Q3FlowDone):
        Q3FlowStep.perform_later(1)
    (batch_span,) = [span for span in spans.get_finished_spans() if span.name == "batch publish"]
    work()
    (callback,) = [span for span in spans.get_finished_spans()
                   if span.kind == trace.SpanKind.CONSUMER and span.attributes["solidstack.job.class"] == "Q3FlowDone"]
    assert [link.context.span_id for link in callback.links] == [batch_span.context.span_id]


def test_a_unique_callback_class_is_unique(storage: QueueStorage, work: Callable[..., None]) -> None:
    held = Q3FlowUniqueDone.perform_later(0)  # holds the key "the-one" until it runs
    with Batch(on_finish=Q3FlowUniqueDone):
        Q3FlowStep.perform_later(1)
    # Run only the step: the callback's enqueue finds the key held and adds no job.
    worker = Worker(storage, WorkerConfig(threads=1, queues=("default",), polling_interval=0.01))
    storage.db.execute("UPDATE solidstack_ready_executions SET queue_name = 'later' WHERE job_id = ?"
                       if storage.db.dialect == "sqlite" else
                       "UPDATE solidstack_ready_executions SET queue_name = 'later' WHERE job_id = %s",
                       (held.provider_job_id,))
    try:
        drain(storage, worker, 1)
    finally:
        worker.shutdown(5.0)
    rows = storage.db.query("SELECT class_name FROM solidstack_jobs ORDER BY id")
    assert [row[0] for row in rows] == ["Q3FlowUniqueDone", "Q3FlowStep"]


def test_a_callback_due_twice_is_enqueued_once(storage: QueueStorage) -> None:
    """Two transactions that both saw ``pending`` reach zero (or the first failure): the batch row's
    compare-and-set lets one of them enqueue the callbacks."""
    from solidstack.queue._sql import feature_queries

    with Batch(on_success=Q3FlowDone, on_failure=Q3FlowDone, on_finish=Q3FlowDone) as batch:
        Q3FlowStep.perform_later(1)
    sql = feature_queries(storage.db)
    before = storage.counts().get("ready", 0)
    row = storage.db.query_one(sql["batch_get"], {"id": batch.id})
    counts = {"pending": 0, "failed": 1, "on_success": row["on_success"], "on_failure": row["on_failure"],
              "on_finish": row["on_finish"]}
    for _ in range(2):
        with storage.db.transaction() as conn:
            _complete(conn, storage, sql, batch.id, counts, failed_now=True, now=time.time())
    assert storage.counts()["ready"] - before == 2  # on_failure and on_finish, once each (failed: no on_success)


def test_the_claim_admits_rate_limited_jobs_and_reschedules_the_rest(storage: QueueStorage) -> None:
    for n in range(3):
        Q3FlowRated.perform_later(n)
    storage.on_claim = ClaimLimiter(storage)
    claimed = storage.claim(None, ["*"], 10, time.time())
    assert len(claimed) == 2  # the third went back to scheduled in the same transaction
    counts = storage.counts()
    assert counts["claimed"] == 2 and counts["scheduled"] == 1
    (refused,) = {row[0] for row in storage.db.query("SELECT id FROM solidstack_jobs")} - {row.id for row in claimed}
    state = storage.db.query_one("SELECT executions, scheduled_at FROM solidstack_jobs WHERE id = "
                                 + str(int(refused)))
    assert state[0] == 0 and state[1] > time.time() + 50  # not a run; its turn comes when a start leaves the window
    assert all(storage.on_claim.admitted(row.id) for row in claimed)  # type: ignore[union-attr]
    starts = storage.db.query("SELECT key, seq FROM solidstack_rate_limit_starts ORDER BY seq")
    assert [tuple(row) for row in starts] == [("Q3FlowRated", 1), ("Q3FlowRated", 2)]


def test_with_opentelemetry_but_no_provider_nothing_is_traced_or_stored(storage: QueueStorage,
                                                                         work: Callable[..., None]) -> None:
    hooks.set_tracing(True)
    tracing.use_tracer_provider(None)
    try:
        assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider)
        Q3FlowStep.perform_later(1)
        (row,) = storage.db.query("SELECT arguments FROM solidstack_jobs")
        assert "meta" not in json.loads(row[0])  # no trace context stored
        work()
        assert storage.counts()["finished"] == 1
    finally:
        hooks.set_tracing(None)


def test_a_callback_whose_key_function_fails_is_still_enqueued_once(storage: QueueStorage,
                                                                    work: Callable[..., None],
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    with Batch(on_finish=Q3FlowBadKeyDone) as batch:
        Q3FlowStep.perform_later(1)
    work()
    work()  # the callback, enqueued by the finish
    assert [("bad key done", batch.id, None)] == SEEN
    assert Batch.find(batch.id, storage=storage).finished
    assert any("Q3FlowBadKeyDone" in record.getMessage() and "without its unique key" in record.getMessage()
               for record in caplog.records)
