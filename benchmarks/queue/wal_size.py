"""The queue's WAL file during and after a burst of enqueues (decision 0012).

Bulk-enqueues batches of 2,000 jobs for ``--seconds``, records the largest size of ``<db>-wal``, then prints its
size every second while nothing writes. Before decision 0012 the file kept its peak size for good.

    .venv/bin/python benchmarks/queue/wal_size.py --seconds 4
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from systems import Solid

from solidstack.queue import Job


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0, help="how long the burst lasts")
    parser.add_argument("--idle", type=int, default=4, help="seconds to watch the WAL afterwards")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        system = Solid(Path(work))
        system.setup()
        wal = Path(f"{system.path}-wal")
        peak, started = 0, time.monotonic()
        while time.monotonic() - started < args.seconds:
            Job.perform_all_later([system.job(0) for _ in range(2000)])
            peak = max(peak, wal.stat().st_size)
        print(f"{system.storage.counts()['ready']:,} jobs enqueued in {args.seconds:g} s; "
              f"WAL peak {peak / 2**20:.1f} MiB")
        for second in range(1, args.idle + 1):
            time.sleep(1)
            print(f"+{second} s idle: WAL {wal.stat().st_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
