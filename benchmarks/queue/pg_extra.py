"""Cable and cache on PostgreSQL, for the PostgreSQL suite (``run_pg.py``).

- Cable: broadcast-to-receive latency across processes (``cable_bench.bench_cable``: a child publishes every
  5 ms, this process receives), with the cable database on a fresh PostgreSQL database (NOTIFY wake-ups); Redis
  pub/sub in the same run as the reference when Redis answers.
- The floor of any NOTIFY wake-up: ``pg_notify`` in autocommit from this process, received by a bare psycopg
  connection blocked in ``select`` in another process (payload: the send time).
- Cache: ops/s of set, get-hit, get-miss and increment on one thread, 100-byte values: solidstack's
  ``DatabaseStore`` on PostgreSQL, on SQLite (a file in the temp dir), and Django's ``DatabaseCache`` on the
  same PostgreSQL server (minimal settings; ``MAX_ENTRIES`` raised above the key count, or its default of 300
  would cull the table on every set and no get would hit).
"""

from __future__ import annotations

import os
import statistics
import time
from argparse import Namespace
from pathlib import Path
from urllib.parse import urlsplit

import systems_pg

VALUE = os.urandom(50).hex().encode()  # 100 bytes
OPS = ("set", "get-hit", "get-miss", "increment")


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


# -- cable ---------------------------------------------------------------------------------------------------------

def cable(work: Path, runs: int, messages: int, redis: bool) -> dict:
    import cable_bench

    import solidstack
    from solidstack.tasks import migrate_all

    database = systems_pg.create_database()
    try:
        root = work / "cable-pg"
        cable_bench.write_app(root, systems_pg.dsn(database))
        app = solidstack.configure(root, "development")
        migrate_all(app)
        env = dict(os.environ)
        out: dict[str, list[float]] = {}
        benches = [("cable", cable_bench.bench_cable)] + ([("redis_pubsub", cable_bench.bench_redis)] if redis else [])
        for run in range(runs):
            print(f"  run {run + 1}/{runs}: cable on PostgreSQL{' and Redis pub/sub' if redis else ''} ...",
                  flush=True)
            for name, bench in benches:
                latencies, _ = bench(messages, 0.005, env)
                out.setdefault(f"{name}_p50", []).append(cable_bench.pct(latencies, 0.5))
                out.setdefault(f"{name}_p99", []).append(cable_bench.pct(latencies, 0.99))
        solidstack.cable.reset()
        solidstack.db.close_all()
        return {k: spread(v) for k, v in out.items()}
    finally:
        systems_pg.drop_database(database)


# -- the NOTIFY floor ---------------------------------------------------------------------------------------------

LISTENER = r"""
import select, sys, time
import psycopg
conn = psycopg.connect(sys.argv[1], autocommit=True)
conn.execute("LISTEN bench_floor")
print("ready", flush=True)
count, seen = int(sys.argv[2]), []
while len(seen) < count:
    if not select.select([conn.pgconn.socket], [], [], 10)[0]:
        break
    conn.pgconn.consume_input()
    while (note := conn.pgconn.notifies()) is not None:
        seen.append((time.monotonic_ns() - int(note.extra)) / 1e6)
print(" ".join(f"{ms:.4f}" for ms in seen), flush=True)
"""


def notify_floor(samples: int) -> list[float]:
    """Milliseconds from ``pg_notify`` (autocommit, so sent at its commit) to receipt in another process."""
    import subprocess
    import sys

    import psycopg

    database = systems_pg.create_database()
    url = systems_pg.dsn(database)
    try:
        child = subprocess.Popen([sys.executable, "-c", LISTENER, url, str(samples)], stdout=subprocess.PIPE,
                                 text=True)
        assert child.stdout is not None
        child.stdout.readline()
        with psycopg.connect(url, autocommit=True) as conn:
            for _ in range(samples):
                conn.execute("SELECT pg_notify('bench_floor', %s)", (str(time.monotonic_ns()),))
                time.sleep(0.01)
        values = [float(v) for v in child.stdout.read().split()]
        child.wait(10)
        return values
    finally:
        systems_pg.drop_database(database)


# -- cache ---------------------------------------------------------------------------------------------------------

def _solid_pg(database: str) -> dict:
    from solidstack.cache import DatabaseStore
    from solidstack.config.database import DatabaseConfig

    config = DatabaseConfig(name="cache", adapter="postgresql", database="", source="benchmark",
                            options={"url": systems_pg.dsn(database)})
    store = DatabaseStore(config, max_size=256 * 1024 * 1024)
    store.migrate()
    return {"set": lambda k: store.write(k, VALUE), "get-hit": store.read,
            "get-miss": lambda k: store.read("missing:" + k), "increment": lambda k: store.increment("n:" + k[-2:]),
            "close": store.close}


def _solid_sqlite(folder: Path) -> dict:
    from solidstack.cache import DatabaseStore

    folder.mkdir(parents=True, exist_ok=True)
    store = DatabaseStore(folder / "cache.sqlite3", max_size=256 * 1024 * 1024)
    store.migrate()
    return {"set": lambda k: store.write(k, VALUE), "get-hit": store.read,
            "get-miss": lambda k: store.read("missing:" + k), "increment": lambda k: store.increment("n:" + k[-2:]),
            "close": store.close}


def _django(database: str, keys: int) -> dict:
    import django
    from django.conf import settings

    url = urlsplit(systems_pg.dsn(database))
    db = {"ENGINE": "django.db.backends.postgresql", "NAME": database, "HOST": url.hostname or "127.0.0.1",
          "PORT": str(url.port or 5432), "USER": url.username or "postgres", "PASSWORD": url.password or ""}
    if not settings.configured:
        settings.configure(DATABASES={"default": db}, INSTALLED_APPS=[], USE_TZ=True,
                           CACHES={"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache",
                                               "LOCATION": "bench_cache", "OPTIONS": {"MAX_ENTRIES": 10 * keys}}})
        django.setup()
    else:  # a later run: point the same settings at this run's database
        from django.db import connections

        connections["default"].close()
        settings.DATABASES["default"]["NAME"] = database
        connections["default"].settings_dict["NAME"] = database
    from django.core.cache import cache
    from django.core.management import call_command
    from django.db import connections

    call_command("createcachetable", verbosity=0)

    def incr(k: str) -> None:
        key = "n:" + k[-2:]
        try:
            cache.incr(key)
        except ValueError:  # Django's incr needs the key to exist
            cache.set(key, 1)

    return {"set": lambda k: cache.set(k, VALUE), "get-hit": cache.get, "get-miss": lambda k: cache.get("missing:" + k),
            "increment": incr, "close": connections["default"].close}


def cache(work: Path, runs: int, keys: int) -> dict:
    names = [f"key:{i}" for i in range(keys)]
    out: dict[str, list[float]] = {}
    for run in range(runs):
        print(f"  run {run + 1}/{runs}: cache on PostgreSQL, SQLite, Django's DatabaseCache ...", flush=True)
        for contender in ("solidstack (PostgreSQL)", "solidstack (SQLite)", "Django DatabaseCache (PostgreSQL)"):
            database = systems_pg.create_database()
            try:
                if contender == "solidstack (PostgreSQL)":
                    ops = _solid_pg(database)
                elif contender == "solidstack (SQLite)":
                    ops = _solid_sqlite(work / f"cache-{run}-{database}")
                else:
                    ops = _django(database, keys)
                try:
                    for op in OPS:  # get-hit reads what set just wrote
                        fn = ops[op]
                        start = time.perf_counter()
                        for key in names:
                            fn(key)
                        out.setdefault(f"{contender}|{op}", []).append(keys / (time.perf_counter() - start))
                finally:
                    ops["close"]()
            finally:
                systems_pg.drop_database(database)
    return {k: spread(v) for k, v in out.items()}


# -- in the suite --------------------------------------------------------------------------------------------------

def run(work: Path, args: Namespace) -> dict:
    out: dict = {}
    messages = 200 if args.quick else 500
    floor: dict[str, list[float]] = {}
    for run in range(args.runs):
        print(f"  run {run + 1}/{args.runs}: the NOTIFY floor ...", flush=True)
        values = sorted(notify_floor(args.samples))
        floor.setdefault("p50", []).append(values[len(values) // 2])
        floor.setdefault("p99", []).append(values[min(len(values) - 1, int(0.99 * len(values)))])
    out["notify_floor"] = {k: spread(v) for k, v in floor.items()}
    try:
        out["cable"] = cable(work, args.runs, messages, args.redis)
    except Exception as exc:  # the cable on PostgreSQL is new: report why, keep the rest of the run
        out["cable_note"] = f"failed: {type(exc).__name__}: {exc}"
        print(f"  cable on PostgreSQL: {out['cable_note']}", flush=True)
    try:
        out["cache"] = cache(work, args.runs, 2000 if args.quick else 5000)
    except Exception as exc:
        out["cache_note"] = f"failed: {type(exc).__name__}: {exc}"
        print(f"  cache on PostgreSQL: {out['cache_note']}", flush=True)
    return out


def rows(extra: dict) -> list[str]:
    lines: list[str] = []
    f = extra.get("notify_floor")
    if f:
        lines += ["", "| the floor of a NOTIFY wake-up across processes (bare psycopg) | p50 (ms) | p99 (ms) |",
                  "|---|---|---|", f"| `pg_notify` in autocommit → a listener blocked in `select` | "
                  f"{_fmt(f['p50'], 2)} | {_fmt(f['p99'], 2)} |"]
    c = extra.get("cable")
    if c:
        lines += ["", "| cable, broadcast-to-receive across processes | p50 (ms) | p99 (ms) |", "|---|---|---|",
                  f"| solidstack cable on PostgreSQL (NOTIFY) | {_fmt(c['cable_p50'], 2)} | "
                  f"{_fmt(c['cable_p99'], 2)} |"]
        if "redis_pubsub_p50" in c:
            lines.append(f"| Redis pub/sub (same run) | {_fmt(c['redis_pubsub_p50'], 2)} | "
                         f"{_fmt(c['redis_pubsub_p99'], 2)} |")
    elif "cable_note" in extra:
        lines += ["", f"Cable on PostgreSQL: {extra['cable_note']}"]
    k = extra.get("cache")
    if k:
        contenders = sorted({key.split("|")[0] for key in k}, key=lambda name: ("Django" in name, "SQLite" in name))
        lines += ["", "| cache, one thread, 100-byte values (ops/s) | " + " | ".join(contenders) + " |",
                  "|---|" + "---|" * len(contenders)]
        for op in OPS:
            lines.append(f"| {op} | " + " | ".join(_fmt(k.get(f"{name}|{op}")) for name in contenders) + " |")
    elif "cache_note" in extra:
        lines += ["", f"Cache on PostgreSQL: {extra['cache_note']}"]
    return lines


def _fmt(s: dict | None, digits: int = 0) -> str:
    if not s:
        return "-"
    return f"{s['median']:,.{digits}f} ({s['min']:,.{digits}f}-{s['max']:,.{digits}f})"
