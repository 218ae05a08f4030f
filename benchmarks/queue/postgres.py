"""solidstack on PostgreSQL beside solidstack on SQLite, in one run: enqueue one by one, bulk enqueue, throughput
of no-op jobs from a full queue (one worker process, default 3 threads), commits per job, enqueue-to-start
latency across processes on an idle system (the wake-up is a NOTIFY on PostgreSQL, a datagram on SQLite), and
the idle worker's CPU. No Redis needed; the peers on PostgreSQL (pgqueuer, procrastinate) are not run here.

    .venv/bin/python benchmarks/queue/postgres.py [--runs 3] [--jobs 3000] [--samples 200] [--analyze]

``--analyze`` is not used by solidstack: the claim path never depends on planner statistics (this server runs
with autovacuum off, so tables have none unless someone runs ANALYZE).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

import measure  # noqa: E402
import systems  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--bulk", type=int, default=20000)
    args = parser.parse_args()
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        for run in range(args.runs):
            for cls in (systems.SolidPostgres, systems.Solid):
                system = cls(work)
                label = systems.label(system)
                print(f"run {run + 1}/{args.runs}: {label}", flush=True)
                entry = results.setdefault(label, {})
                rate_in, rate, output = measure.throughput(system, args.jobs, work)
                entry.setdefault("enqueue one by one /s", []).append(rate_in)
                entry.setdefault("jobs/s, 1 process", []).append(rate)
                if output.startswith("commits"):
                    entry.setdefault("commits per job", []).append(int(output.split()[1]) / args.jobs)
                system.setup()
                try:
                    entry.setdefault("bulk enqueue /s", []).append(measure.bulk_rate(system, args.bulk))
                finally:
                    system.close()
                latencies, idle_cpu, _rss = measure.latency(system, args.samples, work)
                entry.setdefault("p50 ms", []).append(measure.pct(latencies, 0.5))
                entry.setdefault("p99 ms", []).append(measure.pct(latencies, 0.99))
                entry.setdefault("idle CPU %", []).append(idle_cpu)
    metrics = list(next(iter(results.values())))
    print("\n| system | " + " | ".join(metrics) + " |")
    print("|---|" + "---|" * len(metrics))
    for label, entry in results.items():
        cells = []
        for metric in metrics:
            values = entry.get(metric, [])
            if not values:
                cells.append("-")
                continue
            digits = 2 if metric.endswith(("ms", "%", "job")) else 0
            cells.append(f"{statistics.median(values):,.{digits}f} ({min(values):,.{digits}f}-"
                         f"{max(values):,.{digits}f})")
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
