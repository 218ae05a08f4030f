"""OpenTelemetry spans for jobs (the ``otel`` extra: ``pip install 'solidstack[otel]'``).

An enqueue opens a PRODUCER span per job (``<queue> publish``) and stores its context, as the propagators
configured in OpenTelemetry write it (W3C ``traceparent`` by default), in the job's row (its arguments'
``meta.trace``). The worker performs the job inside a CONSUMER span (``<queue> process``) *linked* to that
producer span, as OpenTelemetry's messaging conventions advise for work that may run much later than it was
enqueued: the consumer span starts its own trace (or joins whatever is current in the worker), and the link
leads back to the enqueue. Both carry the job's class, queue, id and attempt.

Imported only when tracing is on (:func:`.hooks.tracing_enabled`): without the extra nothing here is imported.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import propagate, trace

if TYPE_CHECKING:
    from .job import Job
    from .storage import JobRow

_provider: Any = None


def use_tracer_provider(provider: Any) -> None:
    """Trace with ``provider`` instead of the global one (tests; apps that keep several)."""
    global _provider
    _provider = provider


def _tracer() -> trace.Tracer:
    return trace.get_tracer("solidstack.queue", tracer_provider=_provider)


def producer_spans(jobs: Sequence[Job]) -> list[tuple[trace.Span, dict[str, str]]]:
    """A started PRODUCER span per job and the carrier of its context (to store in the job's row)."""
    tracer = _tracer()
    spans = []
    for job in jobs:
        span = tracer.start_span(f"{job.queue_name} publish", kind=trace.SpanKind.PRODUCER, attributes={
            "messaging.system": "solidstack", "messaging.operation.type": "publish",
            "messaging.destination.name": job.queue_name, "solidstack.job.class": type(job).name(),
            "solidstack.job.active_job_id": job.job_id})
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        spans.append((span, carrier))
    return spans


def end_producer_spans(jobs: Sequence[Job], spans: Sequence[tuple[trace.Span, dict[str, str]]]) -> None:
    """End the spans of :func:`producer_spans`, with each job's id once the enqueue gave it one."""
    for job, (span, _carrier) in zip(jobs, spans, strict=True):
        if job.provider_job_id is not None:
            span.set_attribute("messaging.message.id", str(job.provider_job_id))
            span.set_attribute("solidstack.job.id", job.provider_job_id)
        if getattr(job, "duplicate", False):
            span.set_attribute("solidstack.job.duplicate", True)
        span.end()


@contextlib.contextmanager
def consumer_span(row: JobRow, job: Job, carrier: dict[str, str] | None) -> Iterator[trace.Span]:
    """The CONSUMER span a job is performed in, linked to its producer span when the row carries one."""
    links = []
    if carrier:
        producer = trace.get_current_span(propagate.extract(carrier)).get_span_context()
        if producer.is_valid:
            links.append(trace.Link(producer))
    with _tracer().start_as_current_span(f"{row.queue_name} process", kind=trace.SpanKind.CONSUMER, links=links,
                                         attributes={
                                             "messaging.system": "solidstack", "messaging.operation.type": "process",
                                             "messaging.destination.name": row.queue_name,
                                             "messaging.message.id": str(row.id), "solidstack.job.id": row.id,
                                             "solidstack.job.class": row.class_name,
                                             "solidstack.job.active_job_id": row.active_job_id,
                                             "solidstack.job.attempt": job.executions}) as span:
        yield span
