"""What the per-commit file check costs an enqueue (decision 0011).

Every commit first ``stat``s the database path and compares its (device, inode) with the file the connection
opened, so that a database deleted or replaced under a running process refuses writes instead of losing them.
This measures ``Job.perform_later`` one by one (``measure.enqueue_rate`` on the ``Solid`` system of the suite)
with the check, and with it replaced by a no-op, interleaved round by round; and a bare ``os.stat`` of the path.

    .venv/bin/python benchmarks/queue/file_check.py --rounds 7 --jobs 3000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import enqueue_rate
from systems import Solid

from solidstack.db import SQLiteDatabase


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--jobs", type=int, default=3000, help="jobs enqueued one by one per round and variant")
    args = parser.parse_args()
    checked = SQLiteDatabase._check_file
    with tempfile.TemporaryDirectory() as work:
        system = Solid(Path(work))
        system.setup()
        enqueue_rate(system, 500)  # warm up: connection, statements, page cache
        per_job: dict[str, list[float]] = {"with the check": [], "without": []}
        for round_ in range(args.rounds):
            for variant in (list(per_job) if round_ % 2 else list(per_job)[::-1]):  # alternate which goes first
                SQLiteDatabase._check_file = checked if variant == "with the check" else lambda self, conn: None
                per_job[variant].append(1e6 / enqueue_rate(system, args.jobs))
        SQLiteDatabase._check_file = checked
        start, n = time.perf_counter(), 100_000
        for _ in range(n):
            os.stat(system.path)
        stat_us = (time.perf_counter() - start) / n * 1e6
    for variant, values in per_job.items():
        print(f"enqueue one by one, {variant}: median {statistics.median(values):.2f} µs/job "
              f"(min {min(values):.2f}, max {max(values):.2f}; {args.rounds} rounds of {args.jobs})")
    difference = statistics.median(a - b for a, b in zip(per_job["with the check"], per_job["without"], strict=True))
    print(f"median difference per round: {difference:+.2f} µs/job; bare os.stat of the path: {stat_us:.2f} µs")


if __name__ == "__main__":
    main()
