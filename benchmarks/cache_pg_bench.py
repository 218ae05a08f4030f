"""Cache speed on PostgreSQL: solidstack's DatabaseStore on a server, beside the same store on SQLite and beside
Django's database cache on the same server, in one run.

    .venv/bin/pip install -e '.[postgres,bench]' django
    .venv/bin/python benchmarks/cache_pg_bench.py [--keys 5000] [--processes 4] [--url postgresql://postgres@127.0.0.1:5432]

Operations on 100-byte values: set, get-hit, get-miss and increment, µs per operation on one thread, then
ops/s of ``--processes`` processes at once (each over all keys). Each PostgreSQL contender gets a scratch
database on the server (dropped after). Django's cache is ``django.core.cache.backends.db.DatabaseCache``
(``createcachetable``) over psycopg 3, as a Django app would configure it; it is skipped when Django is not
installed.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import secrets
import tempfile
import time
from pathlib import Path

import psycopg

VALUE = os.urandom(50).hex()  # 100 characters
OPS = ("set", "get-hit", "get-miss", "increment")


def solidstack_ops(where: str) -> dict:
    from solidstack.cache import DatabaseStore
    from solidstack.config import DatabaseConfig

    if where.startswith("postgresql:"):
        config = DatabaseConfig(name="cache", adapter="postgresql", database="", source="bench",
                                options={"url": where})
        store = DatabaseStore(config, max_size=256 * 1024 * 1024)
    else:
        store = DatabaseStore(where, max_size=256 * 1024 * 1024)
    store.migrate()
    return {"set": lambda k: store.write(k, VALUE), "get-hit": store.read,
            "get-miss": lambda k: store.read("missing:" + k), "increment": lambda k: store.increment("n:" + k[-2:]),
            "close": store.close}


def django_ops(url: str) -> dict:
    import django
    from django.conf import settings

    parts = psycopg.conninfo.conninfo_to_dict(url)
    if not settings.configured:
        settings.configure(
            DATABASES={"default": {"ENGINE": "django.db.backends.postgresql", "NAME": parts["dbname"],
                                   "USER": parts.get("user", ""), "HOST": parts.get("host", ""),
                                   "PORT": parts.get("port", "")}},
            CACHES={"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache",
                                "LOCATION": "django_cache", "OPTIONS": {"MAX_ENTRIES": 1_000_000}}},
            USE_TZ=True)
        django.setup()
    from django.core.cache import cache
    from django.core.management import call_command

    call_command("createcachetable", verbosity=0)

    def incr(k: str) -> None:
        key = "n:" + k[-2:]
        try:
            cache.incr(key)
        except ValueError:
            cache.add(key, 0)
            cache.incr(key)

    return {"set": lambda k: cache.set(k, VALUE, None), "get-hit": cache.get,
            "get-miss": lambda k: cache.get("missing:" + k), "increment": incr, "close": lambda: None}


CONTENDERS = {"solidstack, SQLite": solidstack_ops, "solidstack, PostgreSQL": solidstack_ops,
              "Django DatabaseCache, PostgreSQL": django_ops}


def _worker(name: str, where: str, keys: list[str], op: str, barrier, results) -> None:  # type: ignore[no-untyped-def]
    ops = CONTENDERS[name](where)
    fn = ops[op]
    barrier.wait()
    started = time.perf_counter()
    for key in keys:
        fn(key)
    results.put(time.perf_counter() - started)
    ops["close"]()


def single(name: str, where: str, keys: list[str], op: str) -> float:
    """µs per ``op`` on one thread, in a fresh process (Django configures itself once per process)."""
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(1), ctx.Queue()
    if op != "set":
        fill_barrier, fill_results = ctx.Barrier(1), ctx.Queue()  # held here until the child has them
        fill = ctx.Process(target=_worker, args=(name, where, keys, "set", fill_barrier, fill_results))
        fill.start()
        fill_results.get(timeout=600)
        fill.join()
    worker = ctx.Process(target=_worker, args=(name, where, keys, op, barrier, results))
    worker.start()
    elapsed = results.get(timeout=600)
    worker.join()
    return elapsed / len(keys) * 1e6


def parallel(name: str, where: str, keys: list[str], op: str, processes: int) -> float:
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    workers = [ctx.Process(target=_worker, args=(name, where, keys, op, barrier, results)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    elapsed = max(results.get(timeout=600) for _ in workers)
    for worker in workers:
        worker.join()
    return processes * len(keys) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=5000)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432", help="a server, no database")
    args = parser.parse_args()
    server = args.url.rstrip("/")
    names = list(CONTENDERS)
    try:
        import django  # noqa: F401
    except ImportError:
        names.remove("Django DatabaseCache, PostgreSQL")
    databases: list[str] = []
    places: dict[str, str] = {}
    folder = Path(tempfile.mkdtemp(prefix="cache-pg-bench-"))
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        for name in names:
            if name.endswith("SQLite"):
                places[name] = str(folder / "cache.sqlite3")
                continue
            db = f"cache_bench_{secrets.token_hex(3)}"
            admin.execute(f'CREATE DATABASE "{db}"')  # type: ignore[arg-type]
            databases.append(db)
            places[name] = f"{server}/{db}"
    keys = [f"key:{i}" for i in range(args.keys)]
    print(f"{args.keys} keys, 100-byte values, PostgreSQL at {server}, {time.strftime('%F %T')}")
    try:
        print("\n| operation, 1 thread (µs/op) | " + " | ".join(names) + " |")
        print("|---|" + "---:|" * len(names))
        for op in OPS:
            print(f"| {op} | " + " | ".join(f"{single(n, places[n], keys, op):.0f}" for n in names) + " |")
        print(f"\n| operation, {args.processes} processes (ops/s) | " + " | ".join(names) + " |")
        print("|---|" + "---:|" * len(names))
        for op in OPS:
            print(f"| {op} | " + " | ".join(f"{parallel(n, places[n], keys, op, args.processes):,.0f}"
                                            for n in names) + " |")
    finally:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
            for db in databases:
                admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
