"""Cache speed: solidstack's DatabaseStore against diskcache.Cache, on the same disk, in one run.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python benchmarks/cache_bench.py [--keys 10000] [--repeat 3] [--dir DIR]

Operations on 100-byte values over 10,000 keys: set, get-hit, get-miss and increment, each on one thread and
then with 4 processes at once (ops/s added over the processes; reads go over the keys 5 times). Beside them,
the raw sqlite3 ceiling: the same table driven by bare ``execute`` calls, no API at all. Each figure is the
best of ``--repeat`` runs; ratios are diskcache's time over ours (above 1.0: solidstack is faster). Last, the
memory of a process holding each store.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing as mp
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VALUE = os.urandom(50).hex().encode()  # 100 bytes
OPS = ("set", "get-hit", "get-miss", "increment")
#: Reads are fast: with several processes each goes over the keys this many times, so a run lasts long
#: enough (about a second) for scheduling noise to average out.
READ_ROUNDS = 5


# -- the contenders: each returns {op: callable(key)} -----------------------------------------------------------


def solidstack_ops(folder: Path) -> dict:
    from solidstack.cache import DatabaseStore

    # The limits cache.yml's template sets: max_size 256 MiB (and the default max_age of two weeks).
    store = DatabaseStore(folder / "solidstack.sqlite3", max_size=256 * 1024 * 1024)
    store.migrate()
    return {"set": lambda k: store.write(k, VALUE), "get-hit": store.read,
            "get-miss": lambda k: store.read("missing:" + k), "increment": lambda k: store.increment("n:" + k[-2:]),
            "close": store.close}


def diskcache_ops(folder: Path) -> dict:
    import diskcache

    cache = diskcache.Cache(str(folder / "diskcache"))
    return {"set": lambda k: cache.set(k, VALUE), "get-hit": cache.get,
            "get-miss": lambda k: cache.get("missing:" + k), "increment": lambda k: cache.incr("n:" + k[-2:]),
            "close": cache.close}


RAW_SCHEMA = """CREATE TABLE IF NOT EXISTS e (id INTEGER PRIMARY KEY, key BLOB NOT NULL, value BLOB NOT NULL,
key_hash INTEGER NOT NULL UNIQUE, byte_size INTEGER NOT NULL, created_at REAL NOT NULL, expires_at REAL)"""
RAW_SET = """INSERT INTO e (key, value, key_hash, byte_size, created_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (key_hash) DO UPDATE SET value = excluded.value, created_at = excluded.created_at"""


def raw_ops(folder: Path) -> dict:
    conn = sqlite3.connect(folder / "raw.sqlite3", isolation_level=None, timeout=5)
    conn.execute("PRAGMA journal_mode=wal")
    conn.execute("PRAGMA synchronous=normal")
    conn.execute(RAW_SCHEMA)

    def h(key: bytes) -> int:
        return int.from_bytes(hashlib.sha256(key).digest()[:8], "big", signed=True)

    def set_(k: str) -> None:
        kb = k.encode()
        conn.execute(RAW_SET, (kb, VALUE, h(kb), len(kb) + 100, time.time()))

    def get(k: str):  # type: ignore[no-untyped-def]
        return conn.execute("SELECT key, value, expires_at FROM e WHERE key_hash = ?", (h(k.encode()),)).fetchone()

    def incr(k: str) -> None:
        kb = ("n:" + k[-2:]).encode()
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute("SELECT value FROM e WHERE key_hash = ?", (h(kb),)).fetchone()
        conn.execute(RAW_SET, (kb, str(int(row[0]) + 1 if row else 1).encode(), h(kb), len(kb) + 8, time.time()))
        conn.execute("COMMIT")

    return {"set": set_, "get-hit": get, "get-miss": lambda k: get("missing:" + k), "increment": incr,
            "close": conn.close}


CONTENDERS = {"solidstack": solidstack_ops, "diskcache": diskcache_ops, "raw sqlite3": raw_ops}


# -- running ---------------------------------------------------------------------------------------------------


def run_ops(name: str, folder: Path, keys: list[str], op: str) -> float:
    """Seconds for ``op`` over ``keys`` (the table is filled first for reads)."""
    ops = CONTENDERS[name](folder)
    try:
        if op != "set":
            for key in keys:
                ops["set"](key)
        fn = ops[op]
        start = time.perf_counter()
        for key in keys:
            fn(key)
        return time.perf_counter() - start
    finally:
        ops["close"]()


def _worker(name: str, folder: str, keys: list[str], op: str, barrier, results) -> None:  # type: ignore[no-untyped-def]
    ops = CONTENDERS[name](Path(folder))
    fn = ops[op]
    rounds = READ_ROUNDS if op.startswith("get") else 1
    barrier.wait()
    start = time.perf_counter()
    for _ in range(rounds):
        for key in keys:
            fn(key)
    results.put(time.perf_counter() - start)
    ops["close"]()


def run_parallel(name: str, folder: Path, keys: list[str], op: str, processes: int) -> float:
    """Ops per second of ``processes`` processes doing ``op`` at once, each over all ``keys``."""
    filler = CONTENDERS[name](folder)
    for key in keys:
        filler["set"](key)
    filler["close"]()
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(processes + 1), ctx.Queue()
    workers = [ctx.Process(target=_worker, args=(name, str(folder), keys, op, barrier, results))
               for _ in range(processes)]
    for worker in workers:
        worker.start()
    barrier.wait()
    start = time.perf_counter()
    for _ in workers:
        results.get(timeout=600)
    elapsed = time.perf_counter() - start
    for worker in workers:
        worker.join()
    rounds = READ_ROUNDS if op.startswith("get") else 1
    return processes * len(keys) * rounds / elapsed


MEMORY_SCRIPT = """
import sys, pathlib
sys.path.insert(0, {bench!r})
from cache_bench import CONTENDERS
ops = CONTENDERS[{name!r}](pathlib.Path({folder!r}))
for i in range({n}):
    ops["set"](f"key:{{i}}")
for i in range({n}):
    ops["get-hit"](f"key:{{i}}")
print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")))
"""


def peak_rss_mib(name: str, folder: Path, n: int) -> float:
    script = MEMORY_SCRIPT.format(bench=str(Path(__file__).parent), name=name, folder=str(folder), n=n)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1]) / 1024


def baseline_rss_mib() -> float:
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the parent.
    out = subprocess.run([sys.executable, "-c", "import sqlite3; print(next(line.split()[1] for line in "
                          "open('/proc/self/status') if line.startswith('VmHWM')))"],
                         capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--dir", type=Path, default=None, help="where the databases go (default: a temp dir)")
    args = parser.parse_args()
    keys = [f"key:{i}" for i in range(args.keys)]
    base = Path(tempfile.mkdtemp(prefix="cache-bench-", dir=args.dir))
    print(f"sqlite {sqlite3.sqlite_version}, python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"{args.keys} keys, 100-byte values, best of {args.repeat}, databases in {base}")

    def fresh() -> Path:
        folder = Path(tempfile.mkdtemp(dir=base))
        return folder

    single: dict[tuple[str, str], float] = {}
    for op in OPS:
        for name in CONTENDERS:
            best = min(run_ops(name, fresh(), keys, op) for _ in range(args.repeat))
            single[name, op] = best / len(keys) * 1e6
    parallel: dict[tuple[str, str], float] = {}
    for op in OPS:
        for name in CONTENDERS:
            parallel[name, op] = max(run_parallel(name, fresh(), keys, op, args.processes)
                                     for _ in range(args.repeat))

    print()
    print("| operation | solidstack µs/op | diskcache µs/op | raw sqlite3 µs/op | diskcache ÷ solidstack |")
    print("|---|---:|---:|---:|---:|")
    for op in OPS:
        ours, theirs, raw = single["solidstack", op], single["diskcache", op], single["raw sqlite3", op]
        print(f"| {op}, 1 thread | {ours:.2f} | {theirs:.2f} | {raw:.2f} | {theirs / ours:.2f}x |")
    print()
    print("| operation | solidstack ops/s | diskcache ops/s | raw sqlite3 ops/s | solidstack ÷ diskcache |")
    print("|---|---:|---:|---:|---:|")
    for op in OPS:
        ours, theirs, raw = (parallel[name, op] for name in ("solidstack", "diskcache", "raw sqlite3"))
        print(f"| {op}, {args.processes} processes | {ours:,.0f} | {theirs:,.0f} | {raw:,.0f} | "
              f"{ours / theirs:.2f}x |")
    print()
    ratio = single["diskcache", "get-hit"] / single["solidstack", "get-hit"]
    print("| target | measured | wanted | met |\n|---|---|---|---|")
    print(f"| get-hit, 1 process, ≥ 1.2x diskcache | {ratio:.2f}x | ≥ 1.2x | {'yes' if ratio >= 1.2 else '**no**'} |")
    print()
    baseline = baseline_rss_mib()
    print(f"| peak RSS after {args.keys} sets and gets | MiB |")
    print("|---|---:|")
    print(f"| python + sqlite3 alone | {baseline:.1f} |")
    for name in CONTENDERS:
        print(f"| {name} | {peak_rss_mib(name, fresh(), args.keys):.1f} |")
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
