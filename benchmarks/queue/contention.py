"""Fairness under write contention: 4 workers, a dispatcher and 2 enqueuers writing to one SQLite file at once.

Each process records, for every write transaction, when it got the write lock and how long it waited for it
(``SQLiteDatabase.write_waits``). Reported: p99 and worst wait over all processes, and per process the longest
stretch without a commit (a starved process shows a long one). Run with the writer lock on and off
(``SOLIDSTACK_SQLITE_WRITE_LOCK``) to see what it changes.

    python benchmarks/queue/contention.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


class Waits(list):
    """``write_waits`` that also keeps when each wait ended."""

    def append(self, wait: float) -> None:  # type: ignore[override]
        super().append((time.monotonic(), wait))


def child(role: str, path: str, out: str, seconds: float) -> None:
    sys.path.insert(0, str(HERE))
    import jobs_solid

    from solidstack.db import SQLiteDatabase
    from solidstack.queue import (
        Dispatcher,
        DispatcherConfig,
        QueueStorage,
        Runner,
        SolidQueueAdapter,
        Worker,
        WorkerConfig,
        use_adapter,
    )

    db = SQLiteDatabase(path)
    db.write_waits = waits = Waits()
    storage = QueueStorage(db)
    start = time.monotonic()
    if role == "enqueuer":
        use_adapter(SolidQueueAdapter(storage))
        i = 0
        while time.monotonic() - start < seconds:
            if i % 10 == 0:  # some scheduled a little ahead, so that the dispatcher has work too
                jobs_solid.BacklogJob.set(wait=0.05).perform_later()
            else:
                jobs_solid.BacklogJob.perform_later()
            i += 1
    else:
        role_obj = (Worker(storage, WorkerConfig(threads=3)) if role == "worker"
                    else Dispatcher(storage, DispatcherConfig(polling_interval=0.05, batch_size=100)))
        runner = Runner(role_obj, storage)
        signal.signal(signal.SIGTERM, lambda _s, _f: runner.stop())
        runner.run()
    Path(out).write_text(json.dumps({"role": role, "pid": os.getpid(), "waits": list(waits)}))


def run(work: Path, seconds: float, lock: bool) -> dict:
    from solidstack.db import SQLiteDatabase, migrate, package_migrations

    path = work / f"contention-{'lock' if lock else 'nolock'}.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    migrate(SQLiteDatabase(path), package_migrations("solidstack.queue", "sqlite"))
    env = {**os.environ, "SOLIDSTACK_SQLITE_WRITE_LOCK": "on" if lock else "off"}
    roles = ["worker"] * 4 + ["dispatcher"] + ["enqueuer"] * 2
    procs = []
    for i, role in enumerate(roles):
        out = work / f"contention-{i}.json"
        out.unlink(missing_ok=True)
        procs.append((subprocess.Popen([sys.executable, __file__, "--child", role, str(path), str(out),
                                        str(seconds)], env=env), out))
    for role, (proc, _out) in zip(roles, procs, strict=True):
        if role == "enqueuer":  # they stop by themselves after ``seconds``
            proc.wait(seconds + 60)
    for proc, _out in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    results = []
    for proc, out in procs:
        proc.wait(30)
        results.append(json.loads(out.read_text()))
    return summarize(results)


def summarize(results: list[dict]) -> dict:
    waits = sorted(w for r in results for _t, w in r["waits"])
    lo = max(min(t for t, _w in r["waits"]) for r in results if r["waits"]) + 0.5
    hi = min(max(t for t, _w in r["waits"]) for r in results if r["waits"]) - 0.5
    gaps = {}
    for i, r in enumerate(results):
        # The longest stretch without getting the write lock, while every process was running.
        times = [lo, *sorted(t for t, _w in r["waits"] if lo <= t <= hi), hi]
        gaps[f"{r['role']}-{i}"] = max(b - a for a, b in itertools.pairwise(times))
    return {
        "transactions": len(waits),
        "p50_ms": 1000 * waits[len(waits) // 2],
        "p99_ms": 1000 * waits[min(len(waits) - 1, int(0.99 * len(waits)))],
        "worst_ms": 1000 * waits[-1],
        "longest_gap_s": max(gaps.values()),
        "gaps_s": gaps,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--child", nargs=4)
    args = parser.parse_args()
    if args.child:
        role, path, out, seconds = args.child
        child(role, path, out, float(seconds))
        return
    work = Path(tempfile.mkdtemp(prefix="solidstack-contention-"))
    for lock in (False, True):
        r = run(work, args.seconds, lock)
        print(f"writer lock {'on ' if lock else 'off'}: {r['transactions']} write transactions, wait p50 "
              f"{r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, worst {r['worst_ms']:.1f} ms; longest stretch "
              f"without a commit: {r['longest_gap_s'] * 1000:.0f} ms", flush=True)


if __name__ == "__main__":
    main()
