"""Where solidstack's enqueue-to-start latency goes on PostgreSQL, hop by hop (decision 0058).

    .venv/bin/python benchmarks/queue/pg_hops.py [--samples 100] [--threads 3]

One idle worker process (``jobs_solid.py``'s Runner and Worker, NOTIFY wake-ups) on a fresh database; the
benchmark process enqueues one no-op job at a time, 10 ms apart, and every hop stamps CLOCK_MONOTONIC (shared by
the processes of one Linux machine):

1. ``enqueue``: the ``perform_later`` call, from before it to its return (the statement and its commit's WAL
   flush: the NOTIFY leaves the server only at that commit);
2. ``notify``: from the enqueue's return to the worker's LISTEN thread reading the notification;
3. ``wake``: from there to the worker's loop polling (a thread hand-off);
4. ``claim``: the claim statement's round trip;
5. ``start``: from the claim's return to the job's ``perform`` (a hand-off to a worker thread and the job's load).

Prints each hop's p50 / p90 / p99 in ms, and the total (enqueue call start to perform).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))


def child(url: str, threads: int, out: str) -> None:
    """The worker process, with stamps at each hop appended to ``out``."""
    import signal

    import jobs_solid

    from solidstack.db import pglisten
    from solidstack.queue import QueueStorage, Runner, Worker, WorkerConfig

    fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def stamp(what: bytes) -> None:
        os.write(fd, b"%s %d\n" % (what, time.monotonic_ns()))

    dispatch = pglisten.Listener._dispatch

    def stamped_dispatch(self, channel):  # type: ignore[no-untyped-def]
        stamp(b"notify")
        return dispatch(self, channel)

    pglisten.Listener._dispatch = stamped_dispatch  # type: ignore[method-assign]
    storage = QueueStorage(jobs_solid.open_database(url))
    claim = storage.claim

    def stamped_claim(*args, **kwargs):  # type: ignore[no-untyped-def]
        stamp(b"wake")
        rows = claim(*args, **kwargs)
        if rows:
            stamp(b"claim")
        return rows

    storage.claim = stamped_claim  # type: ignore[method-assign]
    worker = Worker(storage, WorkerConfig(threads=threads))
    runner = Runner(worker, storage)
    signal.signal(signal.SIGTERM, lambda _s, _f: runner.stop())
    runner.run()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--threads", type=int, default=3)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.child[2])
        return
    import signal
    import subprocess
    import tempfile

    import systems_pg
    from record import read

    work = Path(tempfile.mkdtemp(prefix="solidstack-pghops-"))
    system = systems_pg.SolidPg(work)
    system.setup()
    stamps_path, out = work / "stamps", work / "records"
    env = {**os.environ, **system.env(), "BENCH_OUT": str(out)}
    proc = subprocess.Popen([sys.executable, __file__, "--child", system.url, str(args.threads), str(stamps_path)],
                            env=env, cwd=HERE, start_new_session=True)
    hops: dict[str, list[float]] = {k: [] for k in ("enqueue", "notify", "wake", "claim", "start", "total")}
    try:
        for i in range(5 + args.samples):
            time.sleep(0.01)
            offset = stamps_path.stat().st_size if stamps_path.exists() else 0
            sent = time.monotonic_ns()
            system.enqueue_one(sent)
            returned = time.monotonic_ns()
            deadline = time.monotonic() + 30
            while len(read(str(out))) < i + 1:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the worker did not run the job")
                time.sleep(0.001)
            started = read(str(out))[i][1]
            time.sleep(0.002)
            if i < 5:
                continue
            got: dict[str, int] = {}
            with open(stamps_path, "rb") as f:
                f.seek(offset)
                lines = f.read().decode().splitlines()
            for line in lines:
                what, ns = line.split()
                if what == "wake" and "notify" not in got:
                    continue  # a poll before the notification (the loop's own timer)
                got.setdefault(what, int(ns))
            if not {"notify", "wake", "claim"} <= got.keys():
                continue
            ms = lambda a, b: (b - a) / 1e6  # noqa: E731
            hops["enqueue"].append(ms(sent, returned))
            hops["notify"].append(ms(returned, got["notify"]))
            hops["wake"].append(ms(got["notify"], got["wake"]))
            hops["claim"].append(ms(got["wake"], got["claim"]))
            hops["start"].append(ms(got["claim"], started))
            hops["total"].append(ms(sent, started))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
        system.close()
    print(f"{len(hops['total'])} samples, load average {os.getloadavg()[0]:.1f}; ms p50 / p90 / p99:")
    for name, values in hops.items():
        if values:
            print(f"  {name:8s} {pct(values, 0.5):7.2f} {pct(values, 0.9):7.2f} {pct(values, 0.99):7.2f}")


if __name__ == "__main__":
    main()
