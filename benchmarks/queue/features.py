"""What the opt-in job features cost: enqueue and drain rates of no-op jobs with each feature on, beside the plain
path, each variant in a fresh process on a fresh database.

    .venv/bin/python benchmarks/queue/features.py [--engine sqlite|postgresql] [--runs 3] [--jobs 3000]
                                                 [--before COMMIT]

Variants: ``plain`` (no feature used in the process, tracing off); ``plain, features loaded`` (the same job
class, in a process where another class is unique, so every enqueue takes the feature path's first test);
``unique`` (``@unique_for``, a distinct key per job), ``rate limited`` (``@limits_rate`` with a limit never
reached, so every start is checked), ``batched`` (every job in a batch of 100, counted as it finishes),
``tracing`` (OpenTelemetry's SDK with a batch span processor whose exporter drops the spans). ``--before``
also runs ``plain`` on the source of an earlier commit (extracted with ``git archive``): the plain path before
and after the features landed.

Enqueue: one ``perform_later`` at a time (a batch collects 100 and stores them in one transaction when its
block ends). Drain: one in-process worker of 3 threads under a Runner, as ``bin/jobs`` runs it, from a full
queue until every job is finished.
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

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
VARIANTS = ["plain", "plain, features loaded", "unique", "rate limited", "batched", "tracing"]


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
    elif variant == "tracing":
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

        class Drop(SpanExporter):
            def export(self, spans: object) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(Drop()))
        trace.set_tracer_provider(provider)

    started, cpu = time.perf_counter(), time.process_time()
    if batch_class is not None:
        for first in range(0, count, 100):
            with batch_class():
                for n in range(first, min(first + 100, count)):
                    job_class.perform_later(n)
    else:
        for n in range(count):
            job_class.perform_later(n)
    enqueue_rate = count / (time.perf_counter() - started)
    enqueue_cpu = count / (time.process_time() - cpu)

    worker = Worker(storage, WorkerConfig(threads=3, polling_interval=0.05))
    runner = Runner(worker, storage)
    thread = threading.Thread(target=runner.run, daemon=True)
    started, cpu = time.perf_counter(), time.process_time()
    thread.start()
    while storage.counts()["finished"] < count:
        time.sleep(0.01)
    drain_rate = count / (time.perf_counter() - started)
    drain_cpu = count / (time.process_time() - cpu)
    runner.stop()
    thread.join(30)
    print(f"{enqueue_rate:.0f} {drain_rate:.0f} {enqueue_cpu:.0f} {drain_cpu:.0f}", flush=True)


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
                env = {**os.environ, "PYTHONPATH": src, "SOLIDSTACK_TRACING": "1" if label == "tracing" else "0"}
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
    for label, rows in results.items():
        med = [statistics.median(r[i] for r in rows) for i in range(4)]
        print(f"| {label} | {med[0]:,.0f} | {med[2]:,.0f} | {med[2] / base[2]:.0%} | {med[1]:,.0f} | {med[3]:,.0f} "
              f"| {med[3] / base[3]:.0%} |")


if __name__ == "__main__":
    main()
