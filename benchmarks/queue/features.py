"""What the opt-in job features cost: enqueue and drain rates of no-op jobs with each feature on, beside the plain
path, each variant in a fresh process on a fresh database.

    .venv/bin/python benchmarks/queue/features.py [--engine sqlite|postgresql] [--runs 3] [--jobs 3000]
                                                 [--before COMMIT]

Variants: ``plain`` (no feature used in the process, tracing off); ``plain, features loaded`` (the same job
class, in a process where another class is unique, so every enqueue takes the feature path's first test);
``unique`` (``@unique_for``, a distinct key per job), ``rate limited`` (``@limits_rate`` with a limit never
reached, so every start is checked), ``batched`` (every job in a batch of 100, counted as it finishes),
``tracing`` (OpenTelemetry's SDK with a batch span processor whose exporter drops the spans), ``tracing, no
provider`` (the ``otel`` extra installed and tracing on, but no tracer provider set: nothing may be done),
``SDK spans alone`` (solidstack's tracing off; the same SDK, and the same spans as tracing makes, made around
each enqueue and inside each job: what the SDK itself costs). ``--before``
also runs ``plain`` on the source of an earlier commit (extracted with ``git archive``): the plain path before
and after the features landed.

Enqueue: one ``perform_later`` at a time (a batch collects 100 and stores them in one transaction when its
block ends). Drain: one in-process worker of 3 threads under a Runner, as ``bin/jobs`` runs it, from a full
queue until every job is finished; on SQLite from an empty WAL file (truncated after the enqueue, so that every
variant's drain starts from the same file state). The drain's CPU leaves out the main thread's own polling for the
end (a count every 10 ms).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
VARIANTS = ["plain", "plain, features loaded", "unique", "rate limited", "batched", "tracing",
            "tracing, no provider", "SDK spans alone"]
#: What the issue allows a feature in use: at most 25% of plain throughput (each rate at least 75% of plain's).
FLOOR = 0.75
#: Variants that are not a feature: the plain path with features loaded (must cost nothing), and the reference
#: that measures OpenTelemetry's SDK alone (the same spans made by the job and around the enqueue, solidstack's
#: tracing off), so that tracing's own cost can be told from the SDK's.
NOT_FEATURES = {"plain", "plain, features loaded", "tracing, no provider", "SDK spans alone"}


def child(variant: str, target: str, count: int) -> None:
    """One measurement in this process: prints ``enqueue/s drain/s``."""
    from solidstack.db import SQLiteDatabase, migrate, package_migrations
    from solidstack.queue import Job, QueueStorage, Runner, SolidQueueAdapter, Worker, WorkerConfig, use_adapter

    if target.startswith("pg:"):
        from solidstack.db.postgresql import PostgreSQLDatabase

        db = PostgreSQLDatabase(target[3:], name="queue")
    else:
        db = SQLiteDatabase(target)
    migrate(db, package_migrations("solidstack.queue", db.dialect))
    storage = QueueStorage(db)
    use_adapter(SolidQueueAdapter(storage))

    class NoopJob(Job):
        def perform(self, n: int) -> None:
            pass

    job_class: type[Job] = NoopJob
    batch_class = None
    wrap_enqueue = None
    if variant == "plain, features loaded":
        from solidstack.queue import unique_for

        @unique_for(60)
        class OtherJob(Job):
            def perform(self) -> None:
                pass
    elif variant == "unique":
        from solidstack.queue import unique_for

        @unique_for(600)
        class UniqueJob(Job):
            def perform(self, n: int) -> None:
                pass

        job_class = UniqueJob
    elif variant == "rate limited":
        from solidstack.queue import limits_rate

        @limits_rate(to=10_000_000, per=1.0)
        class RatedJob(Job):
            def perform(self, n: int) -> None:
                pass

        job_class = RatedJob
    elif variant == "batched":
        from solidstack.queue import Batch

        batch_class = Batch
    elif variant == "tracing, no provider":
        from solidstack.queue.features import tracing  # noqa: F401  (its one-time import is not a per-job cost)
    elif variant in ("tracing", "SDK spans alone"):
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

        class Drop(SpanExporter):
            def export(self, spans: object) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(Drop()))
        trace.set_tracer_provider(provider)
        if variant == "SDK spans alone":
            job_class, wrap_enqueue = _sdk_reference(trace)

    started, cpu = time.perf_counter(), time.process_time()
    if batch_class is not None:
        for first in range(0, count, 100):
            with batch_class():
                for n in range(first, min(first + 100, count)):
                    job_class.perform_later(n)
    elif wrap_enqueue is not None:
        for n in range(count):
            wrap_enqueue(job_class, n)
    else:
        for n in range(count):
            job_class.perform_later(n)
    enqueue_rate = count / (time.perf_counter() - started)
    enqueue_cpu = count / (time.process_time() - cpu)

    if db.dialect == "sqlite":
        # Every drain starts from an empty WAL file. Left as the enqueue left it, the file was ~40 MB after one-by-one
        # enqueues (plain, unique, rate limited) and ~3 MB after a batch's block inserts: a commit that writes past
        # the file's end cost ~11 us more (29 against 40 us a drain commit, measured), which was charged to batches
        # as if their counting cost it (decision 0073).
        db.connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    worker = Worker(storage, WorkerConfig(threads=3, polling_interval=0.05))
    runner = Runner(worker, storage)
    thread = threading.Thread(target=runner.run, daemon=True)
    started, cpu, polling = time.perf_counter(), time.process_time(), time.thread_time()
    thread.start()
    while storage.counts()["finished"] < count:
        time.sleep(0.01)
    drain_rate = count / (time.perf_counter() - started)
    # The CPU of this thread's own polling (a count every 10 ms, so more of it the longer a drain takes) is the
    # benchmark's, not the worker's: left out (decision 0073).
    drain_cpu = count / (time.process_time() - cpu - (time.thread_time() - polling))
    runner.stop()
    thread.join(30)
    print(f"{enqueue_rate:.0f} {drain_rate:.0f} {enqueue_cpu:.0f} {drain_cpu:.0f}", flush=True)


def _sdk_reference(trace: Any) -> tuple[Any, Any]:
    """A job class and an enqueue that make, with the SDK directly, the spans solidstack's tracing makes: a
    PRODUCER span with its attributes and its context injected into a carrier around each enqueue, a CONSUMER span
    with its attributes and a link inside each job."""
    from opentelemetry import propagate

    from solidstack.queue import Job

    tracer = trace.get_tracer("reference")
    producer = trace.get_current_span()

    class SpannedJob(Job):
        def perform(self, n: int) -> None:
            link = trace.Link(producer.get_span_context())
            with tracer.start_as_current_span("default process", kind=trace.SpanKind.CONSUMER, links=[link],
                                              attributes={
                                                  "messaging.system": "solidstack",
                                                  "messaging.operation.type": "process",
                                                  "messaging.destination.name": self.queue_name,
                                                  "messaging.message.id": str(self.provider_job_id),
                                                  "solidstack.job.id": self.provider_job_id,
                                                  "solidstack.job.class": "SpannedJob",
                                                  "solidstack.job.active_job_id": self.job_id,
                                                  "solidstack.job.attempt": self.executions}):
                pass

    def enqueue(job_class: Any, n: int) -> None:
        nonlocal producer
        span = tracer.start_span("default publish", kind=trace.SpanKind.PRODUCER, attributes={
            "messaging.system": "solidstack", "messaging.operation.type": "publish",
            "messaging.destination.name": "default", "solidstack.job.class": "SpannedJob",
            "solidstack.job.active_job_id": "x"})
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        job = job_class.perform_later(n)
        span.set_attribute("messaging.message.id", str(job.provider_job_id))
        span.set_attribute("solidstack.job.id", job.provider_job_id)
        span.end()
        producer = span

    return SpannedJob, enqueue


def fresh_target(engine: str, folder: Path, index: int) -> tuple[str, str | None]:
    if engine == "sqlite":
        return str(folder / f"q{index}.sqlite3"), None
    import secrets

    import psycopg

    server = os.environ.get("SOLIDSTACK_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432").rstrip("/")
    name = f"ssbench_{secrets.token_hex(5)}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    return f"pg:{server}/{name}", name


def drop(engine: str, name: str | None) -> None:
    if engine == "postgresql" and name:
        import psycopg

        server = os.environ.get("SOLIDSTACK_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432").rstrip("/")
        with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--before", help="also measure the plain path on this commit's source")
    parser.add_argument("--only", nargs="*", choices=VARIANTS, help="measure these variants (and plain)")
    parser.add_argument("--child", nargs=3, metavar=("VARIANT", "TARGET", "JOBS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return
    results: dict[str, list[tuple[float, ...]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        chosen = VARIANTS if not args.only else ["plain", *[v for v in args.only if v != "plain"]]
        variants = [(variant, str(ROOT / "src")) for variant in chosen]
        if args.before:
            source = folder / "before"
            source.mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.before, "src"], check=True,
                                     capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
            variants.insert(0, (f"plain, before ({args.before[:8]})", str(source / "src")))
        index = 0
        for run in range(args.runs):
            for label, src in variants:  # interleaved: a slow moment of the machine hits every variant alike
                index += 1
                target, name = fresh_target(args.engine, folder, index)
                env = {**os.environ, "PYTHONPATH": src,
                       "SOLIDSTACK_TRACING": "1" if label.startswith("tracing") else "0"}
                variant = "plain" if label.startswith("plain, before") else label
                try:
                    out = subprocess.run([sys.executable, __file__, "--child", variant, target, str(args.jobs)],
                                         env=env, capture_output=True, text=True, timeout=600)
                finally:
                    drop(args.engine, name)
                if out.returncode != 0:
                    raise SystemExit(f"{label}: {out.stderr[-2000:]}")
                figures = tuple(map(float, out.stdout.split()))
                results.setdefault(label, []).append(figures)
                print(f"run {run + 1}/{args.runs} {label}: enqueue {figures[0]:.0f}/s ({figures[2]:.0f} per CPU s), "
                      f"drain {figures[1]:.0f}/s ({figures[3]:.0f} per CPU s)", flush=True)
    # Wall-clock rates swing with whatever else the machine runs; jobs per CPU second of the process (SQLite does
    # all its work in the process) are the steadier measure of what a feature costs.
    base = [statistics.median(r[i] for r in results["plain"]) for i in range(4)]
    print(f"\n{args.engine}, {args.jobs} jobs, median of {args.runs} runs (CPU: jobs per CPU second of the process)\n")
    print("| variant | enqueue /s | enqueue /CPU s | vs plain | drain /s | drain /CPU s | vs plain |")
    print("|---|---|---|---|---|---|---|")
    medians: dict[str, list[float]] = {}
    for label, rows in results.items():
        med = [statistics.median(r[i] for r in rows) for i in range(4)]
        print(f"| {label} | {med[0]:,.0f} | {med[2]:,.0f} | {med[2] / base[2]:.0%} | {med[1]:,.0f} | {med[3]:,.0f} "
              f"| {med[3] / base[3]:.0%} |")
        medians[label] = med
    print(f"\nThe issue: a feature in use keeps at least {FLOOR:.0%} of plain throughput (per CPU second), enqueue "
          "and drain; a feature loaded but not used costs nothing measurable.\n")
    for label, med in medians.items():
        if label == "plain" or label.startswith("plain, before"):
            continue
        enqueue, drain = med[2] / base[2], med[3] / base[3]
        if label in NOT_FEATURES:
            print(f"- {label}: enqueue {enqueue:.0%}, drain {drain:.0%} of plain (reference, not a feature)")
            continue
        verdict = "met" if min(enqueue, drain) >= FLOOR else "NOT met"
        print(f"- {label}: enqueue {enqueue:.0%}, drain {drain:.0%} of plain: {verdict}")
    if "tracing" in medians and "SDK spans alone" in medians:
        # Time per job: what tracing costs beyond plain, and how much of that the SDK's own spans cost.
        for i, what in ((2, "enqueue"), (3, "drain")):
            plain_us, sdk_us, ours_us = (1e6 / medians[k][i] for k in ("plain", "SDK spans alone", "tracing"))
            print(f"- tracing, {what}: {ours_us - plain_us:.0f} us a job beyond plain, of which the SDK's spans "
                  f"{sdk_us - plain_us:.0f} us and solidstack's own work {ours_us - sdk_us:.0f} us")


if __name__ == "__main__":
    main()
