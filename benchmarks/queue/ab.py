"""Interleaved A/B of solidstack's drain rate between two source trees (is a change free on the hot path?).

    git archive main | tar -x -C /tmp/base             # the tree to compare against
    .venv/bin/python benchmarks/queue/ab.py /tmp/base/src [--rounds 5] [--jobs 3000] [--engine sqlite|postgresql]

Each round measures the base tree and this one (``src/`` of this checkout), alternating which goes first, as
``run.py``'s throughput figure does (one worker process, 3 threads, no-op jobs from a full queue), and prints
both medians and the ratio.
Interleaving keeps a machine's drift (other load, thermal) from passing for a difference.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ONE = """
import sys
from pathlib import Path
sys.path[:0] = [{here!r}, {parent!r}]
import measure, systems
cls = systems.SolidPostgres if {engine!r} == "postgresql" else systems.Solid
work = Path({work!r})
_, rate, _ = measure.throughput(cls(work), {jobs}, work)
print(rate)
"""


def measure_once(src: str, engine: str, jobs: int) -> float:
    with tempfile.TemporaryDirectory(prefix="solidstack-ab-") as work:
        code = ONE.format(here=str(HERE), parent=str(HERE.parent), engine=engine, work=work, jobs=jobs)
        env = {**os.environ, "PYTHONPATH": src}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", help="the src/ folder of the tree to compare against")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--engine", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    head = str(HERE.parent.parent / "src")
    rates: dict[str, list[float]] = {"base": [], "head": []}
    for n in range(args.rounds):
        order = (("base", args.base), ("head", head))
        for name, src in order if n % 2 == 0 else order[::-1]:  # alternate who goes first
            rates[name].append(measure_once(src, args.engine, args.jobs))
        print(f"round {n + 1}: base {rates['base'][-1]:,.0f}  head {rates['head'][-1]:,.0f} jobs/s", flush=True)
    base, head_rate = statistics.median(rates["base"]), statistics.median(rates["head"])
    print(f"{args.engine}, {args.jobs} jobs, {args.rounds} rounds: median base {base:,.0f}, head {head_rate:,.0f} "
          f"jobs/s, head/base {head_rate / base:.3f}")


if __name__ == "__main__":
    main()
