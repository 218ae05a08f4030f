"""Cache get-hit on one process: solidstack's DatabaseStore beside diskcache.Cache, interleaved in one process.

    .venv/bin/python benchmarks/cache_gethit_cpu.py [--rounds 5]

10,000 keys, 100-byte values. Each round reads every key once with each store, the order of the two alternating
from round to round; a round's figure for a store is the median of 3 passes. Two clocks: the reading thread's
CPU time (``time.thread_time``: on a shared, loaded machine it does not count the time the process waited for a
core, so it is the stable one) and the wall clock (``perf_counter``, what ops/s means to a caller; it swings with
the load). Printed: each round's ratio, the median over the rounds, and the target met or not, with the load
average before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import diskcache

from solidstack.cache import DatabaseStore

VALUE = os.urandom(50).hex().encode()
KEYS = [f"key:{i}" for i in range(10_000)]


def one_pass(read: Callable[[str], Any]) -> tuple[float, float]:
    """(ops/s by CPU time, ops/s by the wall clock) of one pass over the keys."""
    cpu, wall = time.thread_time(), time.perf_counter()
    for key in KEYS:
        read(key)
    return len(KEYS) / (time.thread_time() - cpu), len(KEYS) / (time.perf_counter() - wall)


def measure(read: Callable[[str], Any]) -> tuple[float, float]:
    passes = [one_pass(read) for _ in range(3)]
    return statistics.median(p[0] for p in passes), statistics.median(p[1] for p in passes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="cache-cpu-"))
    store = DatabaseStore(folder / "solidstack.sqlite3", max_size=256 * 1024 * 1024)
    store.migrate()
    other = diskcache.Cache(str(folder / "diskcache"))
    for key in KEYS:
        store.write(key, VALUE)
        other.set(key, VALUE)
    assert store.read(KEYS[0]) == VALUE and other.get(KEYS[0]) == VALUE
    load = os.getloadavg()[0]
    print(f"get-hit, 1 process, 10,000 keys, 100-byte values, {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, "
          f"{os.cpu_count()} CPUs, load average {load:.2f}")
    cpu_ratios, wall_ratios = [], []
    for round_ in range(args.rounds):
        contenders = [("solidstack", store.read), ("diskcache", other.get)]
        if round_ % 2:
            contenders.reverse()
        figures = {name: measure(read) for name, read in contenders}
        (ours_cpu, ours_wall), (theirs_cpu, theirs_wall) = figures["solidstack"], figures["diskcache"]
        cpu_ratios.append(ours_cpu / theirs_cpu)
        wall_ratios.append(ours_wall / theirs_wall)
        print(f"  round {round_ + 1}: CPU time solidstack {ours_cpu:,.0f}/s diskcache {theirs_cpu:,.0f}/s "
              f"{cpu_ratios[-1]:.2f}x | wall clock {ours_wall:,.0f}/s vs {theirs_wall:,.0f}/s {wall_ratios[-1]:.2f}x")
    cpu, wall = statistics.median(cpu_ratios), statistics.median(wall_ratios)
    print(f"median over {args.rounds} rounds: {cpu:.2f}x by CPU time, {wall:.2f}x by the wall clock "
          f"(load average {load:.2f} → {os.getloadavg()[0]:.2f})")
    print("| target | measured | wanted | met |\n|---|---|---|---|")
    print(f"| get-hit, 1 process, ≥ 1.2x diskcache (CPU time) | {cpu:.2f}x | ≥ 1.2x | "
          f"{'yes' if cpu >= 1.2 else '**no**'} |")
    print(f"| get-hit, 1 process, ≥ 1.2x diskcache (wall clock) | {wall:.2f}x | ≥ 1.2x | "
          f"{'yes' if wall >= 1.2 else '**no**'} |")
    store.close()
    other.close()


if __name__ == "__main__":
    main()
