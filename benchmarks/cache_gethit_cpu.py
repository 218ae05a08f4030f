"""Cache get-hit on one process by CPU time: solidstack's DatabaseStore beside diskcache.Cache, same process.

    .venv/bin/python benchmarks/cache_gethit_cpu.py

On a shared, loaded machine wall-clock rates swing by 2x between passes (the process is descheduled); the CPU
time of the reading thread (``time.thread_time``) does not count the time it waited for a core, so before/after
comparisons hold there. 10,000 keys, 100-byte values, best of 9 passes over the keys for each store.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import diskcache

from solidstack.cache import DatabaseStore

VALUE = os.urandom(50).hex().encode()
KEYS = [f"key:{i}" for i in range(10_000)]


def rate(read) -> float:  # type: ignore[no-untyped-def]
    best = 0.0
    for _ in range(9):
        start = time.thread_time()
        for key in KEYS:
            read(key)
        best = max(best, len(KEYS) / (time.thread_time() - start))
    return best


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="cache-cpu-"))
    store = DatabaseStore(folder / "solidstack.sqlite3", max_size=256 * 1024 * 1024)
    store.migrate()
    other = diskcache.Cache(str(folder / "diskcache"))
    for key in KEYS:
        store.write(key, VALUE)
        other.set(key, VALUE)
    assert store.read(KEYS[0]) == VALUE and other.get(KEYS[0]) == VALUE
    ours, theirs = rate(store.read), rate(other.get)
    ratio = ours / theirs
    print(f"get-hit by CPU time: solidstack {ours:,.0f}/s  diskcache {theirs:,.0f}/s  ratio {ratio:.2f}x")
    print(f"| get-hit, 1 process, ≥ 1.2x diskcache (CPU time) | {ratio:.2f}x | ≥ 1.2x | "
          f"{'yes' if ratio >= 1.2 else '**no**'} |")
    store.close()
    other.close()


if __name__ == "__main__":
    main()
