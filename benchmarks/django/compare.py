"""Django's task API on solidstack beside django-tasks-db and dj_queue, on the same machine and database, in one
run: drain rate and enqueue-to-start latency, through ``task.enqueue()`` and each backend's own worker command.

    make bench-django                  # installs the peers (django-tasks-db, dj-queue) into .venv-django, runs this
    .venv-django/bin/python benchmarks/django/compare.py [--jobs 3000] [--latency-jobs 300] [--runs 3]
    BENCH_PG_URL=postgresql://postgres@127.0.0.1/postgres .venv-django/bin/python benchmarks/django/compare.py --pg

Each backend runs in its own project process (benchproject, ``BENCH_BACKEND``), its tables in one fresh SQLite
file (Django's recommended WAL settings; solidstack's queue on the same ``default`` alias) or one fresh
PostgreSQL database per backend (``--pg``). Per backend and run:

1. **Drain**: ``--jobs`` no-op tasks enqueued one by one with ``noop.enqueue(t)`` (their rate is printed too),
   then the worker started as its docs say — ``manage.py solidstack jobs`` (queue.yml defaults: 1 process,
   3 threads), ``manage.py db_worker`` (its defaults: one task at a time, 1 s idle interval), ``manage.py
   dj_queue`` (its defaults: fork mode, 1 process, 3 threads, 0.1 s polling) — and timed from the first task's
   start to the last's: jobs/s.
2. **Latency**: with that worker idle (2 s, then 5 tasks each waited for), ``--latency-jobs`` tasks enqueued
   10 ms apart (not waiting for each: a peer polling once a second would take minutes); each records when it
   started (CLOCK_MONOTONIC, the same clock in every process): start minus the moment before ``enqueue()``.

``solidstack-job`` is the same no-op as a plain solidstack ``Job`` (``perform_later``) on the same worker command:
what Django's task API (validation, JSON round trip, ``TaskResult``, signals and their log lines) costs.

Targets (issue 15): solidstack drains ≥ 10x either peer, and its p99 latency is ≤ 5 ms on SQLite. The medians of
``--runs`` runs are compared; each target is printed met / not met.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MANAGE = HERE / "manage.py"
BACKENDS = ("solidstack", "solidstack-job", "django-tasks-db", "dj_queue")
WORKERS = {
    "solidstack": ["solidstack", "jobs"],
    "solidstack-job": ["solidstack", "jobs"],
    "django-tasks-db": ["db_worker", "--queue-name", "*", "--no-startup-delay", "--no-reload"],
    "dj_queue": ["dj_queue", "--skip-recurring"],
}
TIMEOUT = 600.0
WARM_UP = 5


def starts(root: Path) -> list[tuple[float, float]]:
    rows = []
    for path in root.glob("starts-*.log"):
        for line in path.read_text().splitlines():
            started, enqueued = line.split()
            rows.append((float(started), float(enqueued)))
    return rows


def wait_for(root: Path, count: int, worker: subprocess.Popen[bytes], what: str) -> list[tuple[float, float]]:
    deadline = time.monotonic() + TIMEOUT
    while True:
        rows = starts(root)
        if len(rows) >= count:
            return rows
        if worker.poll() is not None:
            raise RuntimeError(f"{what}: the worker exited ({worker.returncode}) after {len(rows)} of {count} tasks")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: {len(rows)} of {count} tasks started within {TIMEOUT:.0f} s")
        time.sleep(0.05)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def child(backend: str, jobs: int, latency_jobs: int) -> dict[str, float]:
    """One backend, in this process (its settings); returns the figures."""
    root = Path(os.environ["BENCH_ROOT"])
    sys.path.insert(0, str(HERE))
    import django

    django.setup()
    from benchproject.tasks import NoopJob, noop
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    # solidstack-job: the same task as a plain solidstack job, Django's task API left out (what it costs).
    enqueue = noop.enqueue if backend != "solidstack-job" else lambda t: NoopJob.perform_later(t)
    started = time.perf_counter()
    for _ in range(jobs):
        enqueue(time.monotonic())
    enqueue_rate = jobs / (time.perf_counter() - started)
    log = (root / "worker.log").open("wb")
    worker = subprocess.Popen([sys.executable, str(MANAGE), *WORKERS[backend]], env=os.environ.copy(), stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        rows = wait_for(root, jobs, worker, f"{backend} drain")
        first, last = min(r[0] for r in rows), max(r[0] for r in rows)
        drain_rate = (jobs - 1) / (last - first)
        # The worker idle again, then warmed up (5 tasks, each waited for) as the core queue's latency benchmark.
        time.sleep(2.0)
        for i in range(WARM_UP):
            enqueue(time.monotonic())
            wait_for(root, jobs + i + 1, worker, f"{backend} warm-up")
        warm_end = time.monotonic()
        for _ in range(latency_jobs):
            enqueue(time.monotonic())
            time.sleep(0.01)
        rows = wait_for(root, jobs + WARM_UP + latency_jobs, worker, f"{backend} latency")
        paced = sorted((s - e) * 1000 for s, e in rows if e > warm_end)  # the paced ones only
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(5)
        log.close()
    return {"enqueue": enqueue_rate, "drain": drain_rate, "p50": statistics.median(paced),
            "p99": percentile(paced, 0.99), "samples": len(paced), "worst": [round(x, 2) for x in paced[-5:]]}


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix=f"djbench-{backend}-") as root:
        env = {**os.environ, "BENCH_BACKEND": backend, "BENCH_ROOT": root,
               "DJANGO_SETTINGS_MODULE": "benchproject.settings", "PYTHONPATH": str(HERE)}
        database = None
        if args.pg:
            sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
            from engines import postgres_database

            database = postgres_database()
            env["BENCH_PG_URL"] = database.__enter__()
        try:
            done = subprocess.run([sys.executable, __file__, "--child", backend, "--jobs", str(args.jobs),
                                   "--latency-jobs", str(args.latency_jobs)], env=env, capture_output=True,
                                  text=True, timeout=TIMEOUT * 2)
        finally:
            if database is not None:
                database.__exit__(None, None, None)
        if done.returncode != 0:
            worker_log = Path(root, "worker.log")
            raise SystemExit(f"{backend} failed:\n{done.stderr[-3000:]}\n"
                             f"{worker_log.read_text()[-2000:] if worker_log.exists() else ''}")
        return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--latency-jobs", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pg", action="store_true", help="PostgreSQL (BENCH_PG_URL's server) instead of SQLite")
    parser.add_argument("--only", choices=BACKENDS, action="append", help="these backends only")
    parser.add_argument("--child", choices=BACKENDS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.jobs, args.latency_jobs)))
        return
    engine = "PostgreSQL" if args.pg else "SQLite"
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}, {engine}, {args.jobs} tasks drained, "
          f"{args.latency_jobs} paced, {args.runs} run(s)", flush=True)
    results: dict[str, list[dict[str, float]]] = {b: [] for b in args.only or BACKENDS}
    for run in range(args.runs):
        for backend in results:  # interleaved: the machine's load falls on every backend alike
            figures = run_backend(backend, args)
            results[backend].append(figures)
            print(f"  run {run + 1} {backend}: enqueue {figures['enqueue']:,.0f}/s, drain {figures['drain']:,.0f}/s, "
                  f"latency p50 {figures['p50']:.2f} ms, p99 {figures['p99']:.2f} ms (worst {figures['worst']} ms)",
                  flush=True)

    def median(backend: str, key: str) -> float:
        return statistics.median(r[key] for r in results[backend])

    def spread(backend: str, key: str, fmt: str) -> str:
        values = [r[key] for r in results[backend]]
        return f"{format(median(backend, key), fmt)} ({format(min(values), fmt)}-{format(max(values), fmt)})"

    print(f"\n| backend ({engine}) | enqueue (tasks/s) | drain (tasks/s) | latency p50 (ms) | latency p99 (ms) |")
    print("| --- | --- | --- | --- | --- |")
    for backend in results:
        print(f"| {backend} | {spread(backend, 'enqueue', ',.0f')} | {spread(backend, 'drain', ',.0f')} | "
              f"{spread(backend, 'p50', '.2f')} | {spread(backend, 'p99', '.2f')} |")
    if "solidstack" not in results:
        return
    print()
    ours = median("solidstack", "drain")
    for peer in [b for b in results if not b.startswith("solidstack")]:
        ratio = ours / median(peer, "drain")
        print(f"target drain >= 10x {peer}: {ratio:.1f}x — {'met' if ratio >= 10 else 'NOT met'}")
    p99 = median("solidstack", "p99")
    if not args.pg:
        print(f"target p99 latency <= 5 ms on SQLite: {p99:.2f} ms — {'met' if p99 <= 5 else 'NOT met'}")


if __name__ == "__main__":
    main()
