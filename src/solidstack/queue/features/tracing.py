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

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import propagate, trace

if TYPE_CHECKING:
    from solidstack.queue.job import Job
    from solidstack.queue.storage import JobRow

_provider: Any = None
#: The tracer of the provider in use, made once per provider (the SDK builds a new Tracer on every get_tracer call).
_cached: tuple[Any, trace.Tracer] | None = None
_INACTIVE = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
#: Without a tracer provider, how long "none" is believed before the global provider is looked at again (a provider
#: set while jobs run, by ``trace.set_tracer_provider``, is used from the next look on).
RECHECK = 1.0
_inactive_until = 0.0


def use_tracer_provider(provider: Any) -> None:
    """Trace with ``provider`` instead of the global one (tests; apps that keep several)."""
    global _provider, _inactive_until
    _provider = provider
    _inactive_until = 0.0


def tracer() -> trace.Tracer | None:
    """The tracer to use, or None while no tracer provider is set (OpenTelemetry's API alone, or an SDK not
    configured yet): then nothing is traced and no trace context is stored, at the cost of this call."""
    global _cached, _inactive_until
    if _provider is None:
        if time.monotonic() < _inactive_until:
            return None  # no provider a moment ago: looked at again at most every RECHECK seconds
        provider = trace.get_tracer_provider()
    else:
        provider = _provider
    cached = _cached
    if cached is not None and cached[0] is provider:
        return cached[1]
    if isinstance(provider, _INACTIVE):
        if provider is not _provider:
            _inactive_until = time.monotonic() + RECHECK
        return None
    made = provider.get_tracer("solidstack.queue")
    _cached = (provider, made)
    return made


def producer_spans(jobs: Sequence[Job]) -> list[tuple[trace.Span, dict[str, str]]] | None:
    """A started PRODUCER span per job and the carrier of its context (to store in the job's row); None when no
    tracer provider is set."""
    tracer_ = tracer()
    if tracer_ is None:
        return None
    spans = []
    for job in jobs:
        span = tracer_.start_span(f"{job.queue_name} publish", kind=trace.SpanKind.PRODUCER, attributes={
            "messaging.system": "solidstack", "messaging.operation.type": "publish",
            "messaging.destination.name": job.queue_name, "solidstack.job.class": type(job).name(),
            "solidstack.job.active_job_id": job.job_id})
        spans.append((span, carrier_of(span)))
    return spans


def batch_span(description: str | None) -> trace.Span:
    """A PRODUCER span for a batch stored outside any span: what its callbacks' runs link to."""
    tracer_ = tracer()
    assert tracer_ is not None
    return tracer_.start_span("batch publish", kind=trace.SpanKind.PRODUCER, attributes={
        "messaging.system": "solidstack", "messaging.operation.type": "publish",
        "solidstack.batch.description": description or ""})


def carrier_of(span: trace.Span) -> dict[str, str]:
    """The context of ``span`` as the configured propagators write it (W3C ``traceparent`` by default)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    return carrier


def current_carrier() -> dict[str, str] | None:
    """The context of the span current here (a job's consumer span, a request's span), or None without one."""
    if tracer() is None:
        return None
    span = trace.get_current_span()
    return carrier_of(span) if span.get_span_context().is_valid else None


def end_producer_spans(jobs: Sequence[Job], spans: Sequence[tuple[trace.Span, dict[str, str]]]) -> None:
    """End the spans of :func:`producer_spans`, with each job's id once the enqueue gave it one."""
    for job, (span, _carrier) in zip(jobs, spans, strict=True):
        if job.provider_job_id is not None:
            span.set_attribute("messaging.message.id", str(job.provider_job_id))
            span.set_attribute("solidstack.job.id", job.provider_job_id)
        if getattr(job, "duplicate", False):
            span.set_attribute("solidstack.job.duplicate", True)
        span.end()


def link_to(carrier: dict[str, str] | None) -> list[trace.Link]:
    """A link to the span whose context ``carrier`` holds (none for none). A lone W3C ``traceparent`` (what the
    default propagators store) is read here directly; anything else goes through the configured propagators."""
    if not carrier:
        return []
    parent = carrier.get("traceparent")
    if parent is not None and len(carrier) == 1 and len(parent) == 55 and parent[:3] == "00-":
        try:
            context = trace.SpanContext(int(parent[3:35], 16), int(parent[36:52], 16), is_remote=True,
                                        trace_flags=trace.TraceFlags(int(parent[53:55], 16)))
        except ValueError:
            context = None
    else:
        context = trace.get_current_span(propagate.extract(carrier)).get_span_context()
    return [trace.Link(context)] if context is not None and context.is_valid else []


def start_consumer_span(tracer_: trace.Tracer, row: JobRow, job: Job, carrier: dict[str, str] | None) -> trace.Span:
    """The CONSUMER span a job is performed in (started, not current yet), linked to its producer span when the
    row carries one. The caller makes it current around ``perform`` and ends it (:func:`end_span`) when the job
    ended: for an ``async def`` job, when its coroutine ended on the loop."""
    return tracer_.start_span(f"{row.queue_name} process", kind=trace.SpanKind.CONSUMER, links=link_to(carrier),
                              attributes={
                                  "messaging.system": "solidstack", "messaging.operation.type": "process",
                                  "messaging.destination.name": row.queue_name,
                                  "messaging.message.id": str(row.id), "solidstack.job.id": row.id,
                                  "solidstack.job.class": row.class_name,
                                  "solidstack.job.active_job_id": row.active_job_id,
                                  "solidstack.job.attempt": job.executions})


def end_span(span: trace.Span, error: BaseException | None = None) -> None:
    """End ``span``, recording ``error`` (as ``start_as_current_span`` would) when the job raised."""
    if error is not None:
        span.record_exception(error)
        span.set_status(trace.Status(trace.StatusCode.ERROR, f"{type(error).__name__}: {error}"))
    span.end()


def activate(span: trace.Span) -> object:
    """Make ``span`` current in this context; returns the token for :func:`deactivate`."""
    from opentelemetry import context

    return context.attach(trace.set_span_in_context(span))


def deactivate(token: object) -> None:
    from opentelemetry import context

    context.detach(token)  # type: ignore[arg-type]
