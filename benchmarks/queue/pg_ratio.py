"""Interleaved ratios on PostgreSQL: solidstack (this tree, and other trees to compare) against pgqueuer, round
after round in the same minutes, so a shared machine's drift does not pass for a difference.

    .venv/bin/python benchmarks/queue/pg_ratio.py [--rounds 5] [--jobs 2000] [--samples 100]
        [--tree base=/tmp/base/src] [--only throughput,enqueue,bulk,latency] [--threads 3]

Each measurement runs in a child process with ``PYTHONPATH`` set to the tree's ``src/`` (its worker inherits
it), on a fresh database of its own (``systems_pg``): throughput of one worker process at its defaults draining
``--jobs`` no-op jobs enqueued in bulk (no statistics: this server runs with autovacuum off); enqueue one by one
(``--enqueue`` calls, each its own durable commit); bulk (``--bulk`` jobs in one call); enqueue-to-start
latency (``--samples`` jobs 10 ms apart, idle worker). Prints each round, then the medians and each system's
ratio to pgqueuer, with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
HEAD = str(HERE.parent.parent / "src")

CHILD = r"""
import json, sys, time
from pathlib import Path
sys.path[:0] = [{here!r}, {parent!r}]
import measure, measure_pg, systems_pg
cls = getattr(systems_pg, {cls!r})
if {threads!r}:
    cls = type("Solid", (cls,), {{"threads": {threads!r}}})
work = Path({work!r})
what = {what!r}
if what == "throughput":
    r = measure_pg.throughput(cls(work), {jobs}, work, analyze=False, series=False)
    out = {{"throughput": r["throughput"], "commits_per_job": r["commits_per_job"]}}
elif what == "enqueue":
    system = cls(work)
    system.setup()
    try:
        system.enqueue_series(20)
        start = time.perf_counter()
        system.enqueue_series({enqueue})
        out = {{"enqueue": {enqueue} / (time.perf_counter() - start)}}
    finally:
        system.close()
elif what == "bulk":
    out = {{"bulk": measure_pg.bulk_rate(cls(work), {bulk})}}
else:
    lat, cpu, _ = measure.latency(cls(work), {samples}, work, idle_for=0.5)
    out = {{"p50": measure.pct(lat, 0.5), "p99": measure.pct(lat, 0.99), "p90": measure.pct(lat, 0.9)}}
print("RESULT " + json.dumps(out))
"""


def measure_once(src: str, cls: str, what: str, args: argparse.Namespace, threads: int | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="solidstack-pgratio-") as work:
        code = CHILD.format(here=str(HERE), parent=str(HERE.parent), cls=cls, work=work, what=what,
                            jobs=args.jobs, enqueue=args.enqueue, samples=args.samples, threads=threads,
                            bulk=args.bulk)
        env = {**os.environ, "PYTHONPATH": src}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=900)
        for line in out.stdout.splitlines():
            if line.startswith("RESULT "):
                return json.loads(line[7:])
        raise RuntimeError(f"{cls} {what} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--enqueue", type=int, default=500)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--bulk", type=int, default=10_000, help="jobs in one bulk enqueue")
    parser.add_argument("--threads", type=int, default=None, help="solidstack worker threads (default: its own)")
    parser.add_argument("--tree", action="append", default=[], help="NAME=PATH/src: another solidstack tree")
    parser.add_argument("--only", default="throughput,enqueue,bulk,latency")
    args = parser.parse_args()
    systems: list[tuple[str, str, str, int | None]] = [("solidstack", HEAD, "SolidPg", args.threads)]
    for item in args.tree:
        name, _, path = item.partition("=")
        systems.append((name, path, "SolidPg", args.threads))
    systems.append(("pgqueuer", HEAD, "PgQueuer", None))
    whats = args.only.split(",")
    results: dict[str, dict[str, list[float]]] = {name: {} for name, *_ in systems}
    loads = [os.getloadavg()[0]]
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {os.getloadavg()}", flush=True)
    for n in range(args.rounds):
        order = systems if n % 2 == 0 else systems[::-1]
        for what in whats:
            for name, src, cls, threads in order:
                for key, value in measure_once(src, cls, what, args, threads).items():
                    results[name].setdefault(key, []).append(value)
        loads.append(os.getloadavg()[0])
        line = "; ".join(f"{name} " + " ".join(f"{k} {v[-1]:,.2f}" for k, v in r.items())
                         for name, r in results.items())
        print(f"round {n + 1} (load {loads[-1]:.1f}): {line}", flush=True)
    peer = results["pgqueuer"]
    print(f"\nmedians of {args.rounds} rounds, load average {min(loads):.1f}-{max(loads):.1f}:")
    for name, r in results.items():
        cells = []
        for key, values in r.items():
            med = statistics.median(values)
            ratio = med / statistics.median(peer[key]) if key in peer and name != "pgqueuer" else None
            cells.append(f"{key} {med:,.2f}" + (f" ({ratio:.2f}x pgqueuer)" if ratio else ""))
        print(f"  {name}: " + ", ".join(cells))
    # Per-round ratios: the fairest view on a drifting machine.
    for name, r in results.items():
        if name == "pgqueuer":
            continue
        for key in r:
            if key in peer:
                ratios = [a / b for a, b in zip(r[key], peer[key], strict=False)]
                print(f"  {name}/pgqueuer {key} per round: " + " ".join(f"{x:.2f}" for x in ratios)
                      + f" (median {statistics.median(ratios):.2f})")


if __name__ == "__main__":
    main()
