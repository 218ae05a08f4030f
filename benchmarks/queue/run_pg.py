"""The PostgreSQL benchmark suite (issue 17): solidstack's queue against pgqueuer and procrastinate on the same
server, in one run, each system on a fresh database of its own; each figure the median of ``--runs`` runs with its
spread; the targets printed as met or not; saved to ``benchmarks/results/queue_pg.{md,json}``.

    .venv/bin/python benchmarks/queue/run_pg.py [--quick] [--runs 3] [--jobs 3000]
    make bench-pg                                # the same, after installing the bench extra

Needs a PostgreSQL server at ``BENCH_PG_URL`` (default ``postgresql://postgres@127.0.0.1:5432``) whose role may
create databases; Redis on 127.0.0.1:6379 is optional (huey on Redis, the latency reference). See
benchmarks/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

import measure  # noqa: E402
import measure_pg  # noqa: E402
import pg_extra  # noqa: E402
import systems  # noqa: E402
import systems_pg  # noqa: E402
from run import machine  # noqa: E402

RESULTS = HERE.parent / "results"
OURS = "solidstack (PostgreSQL)"
PEER = "pgqueuer (PostgreSQL)"
SYSTEMS = (systems_pg.SolidPg, systems_pg.SolidPg10, systems_pg.PgQueuer, systems_pg.Procrastinate)
GROUPS = (("processes", 3), ("hosts", 3))


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("solidstack", "pgqueuer", "asyncpg", "procrastinate", "psycopg", "psycopg-pool", "django"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "-"
    with systems_pg.admin() as conn:
        out["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]
        out["autovacuum"] = conn.execute("SHOW autovacuum").fetchone()[0]
    return out


def redis_up() -> bool:
    return subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", "6379", "ping"], capture_output=True,
                          text=True).stdout.strip() == "PONG"


def run_queues(work: Path, args: argparse.Namespace) -> dict:
    raw: dict[str, dict[str, list[float]]] = {}
    for run in range(args.runs):
        for cls in SYSTEMS:
            label = systems_pg.label(cls)
            entry = raw.setdefault(label, {})
            add = lambda key, value, e=entry: e.setdefault(key, []).append(value)  # noqa: E731
            print(f"  run {run + 1}/{args.runs}: {label} ...", flush=True)
            for analyze in (False, True):
                r = measure_pg.throughput(cls(work), args.jobs, work, analyze=analyze)
                suffix = "_analyzed" if analyze else ""
                add(f"throughput{suffix}", r["throughput"])
                add(f"commits_per_job{suffix}", r["commits_per_job"])
                if not analyze:
                    add("enqueue", r["enqueue"])
            add("bulk", measure_pg.bulk_rate(cls(work), args.bulk))
            latencies, idle_cpu, rss = measure.latency(cls(work), args.samples, work)
            add("p50", measure.pct(latencies, 0.5))
            add("p99", measure.pct(latencies, 0.99))
            add("rss_mib", rss / 1024)
            idle = measure_pg.idle(cls(work), work, short=args.idle_short, long=args.idle_long)
            add("idle_cpu", idle["idle_cpu"])
            add("idle_commits_per_s", idle["idle_commits_per_s"])
        if args.redis:
            entry = raw.setdefault(systems.label(systems.HueyRedis), {})
            print(f"  run {run + 1}/{args.runs}: huey (Redis), latency only ...", flush=True)
            latencies, idle_cpu, _ = measure.latency(systems.HueyRedis(work), args.samples, work)
            entry.setdefault("p50", []).append(measure.pct(latencies, 0.5))
            entry.setdefault("p99", []).append(measure.pct(latencies, 0.99))
            entry.setdefault("idle_cpu", []).append(idle_cpu)
    return {label: {k: spread(v) for k, v in entry.items()} for label, entry in raw.items()}


def run_groups(work: Path, args: argparse.Namespace) -> dict:
    out: dict[str, list[float]] = {}
    for run in range(args.runs):
        for kind, count in GROUPS:
            print(f"  run {run + 1}/{args.runs}: solidstack, {count} {kind} ...", flush=True)
            r = measure_pg.group_throughput(systems_pg.SolidPg(work), work, kind, count, args.jobs)
            out.setdefault(f"{kind}_throughput", []).append(r["throughput"])
            out.setdefault(f"{kind}_commits_per_job", []).append(r["commits_per_job"])
        latencies = measure_pg.group_latency(systems_pg.SolidPg(work), work, "hosts", GROUPS[1][1], args.samples)
        out.setdefault("hosts_p50", []).append(measure.pct(latencies, 0.5))
        out.setdefault("hosts_p99", []).append(measure.pct(latencies, 0.99))
    return {k: spread(v) for k, v in out.items()}


def fmt(s: dict | None, digits: int = 0) -> str:
    if not s:
        return "-"
    return f"{s['median']:,.{digits}f} ({s['min']:,.{digits}f}-{s['max']:,.{digits}f})"


def targets(q: dict, groups: dict, extra: dict) -> list[tuple[str, str, str, bool | None]]:
    ours, peer = q[OURS], q[PEER]
    med = lambda e, key: e[key]["median"]  # noqa: E731
    rows: list[tuple[str, str, str, bool | None]] = []
    for key, what in (("throughput", "no statistics"), ("throughput_analyzed", "after ANALYZE")):
        ratio = med(ours, key) / med(peer, key)
        rows.append((f"throughput ≥ 1.5x pgqueuer ({what})", f"{ratio:.2f}x", "≥ 1.5x", ratio >= 1.5))
    ratio = med(ours, "enqueue") / med(peer, "enqueue")
    rows.append(("enqueue one by one ≥ 2x pgqueuer", f"{ratio:.2f}x", "≥ 2x", ratio >= 2))
    ratio = med(ours, "bulk") / med(peer, "bulk")
    rows.append(("bulk enqueue ≥ pgqueuer's", f"{ratio:.2f}x", "≥ 1x", ratio >= 1))
    p50, p99 = med(ours, "p50"), med(ours, "p99")
    rows.append(("latency p50 ≤ 2 ms", f"{p50:.2f} ms", "≤ 2 ms", p50 <= 2))
    rows.append(("latency p99 ≤ 5 ms", f"{p99:.2f} ms", "≤ 5 ms", p99 <= 5))
    rows.append(("latency p50 below pgqueuer's", f"{p50:.2f} vs {med(peer, 'p50'):.2f} ms", "<",
                 p50 < med(peer, "p50")))
    rows.append(("latency p99 below pgqueuer's", f"{p99:.2f} vs {med(peer, 'p99'):.2f} ms", "<",
                 p99 < med(peer, "p99")))
    if groups:
        h50, h99 = med(groups, "hosts_p50"), med(groups, "hosts_p99")
        rows.append(("latency across 3 hosts p50 ≤ 2 ms", f"{h50:.2f} ms", "≤ 2 ms", h50 <= 2))
        rows.append(("latency across 3 hosts p99 ≤ 5 ms", f"{h99:.2f} ms", "≤ 5 ms", h99 <= 5))
    cpu = med(ours, "idle_cpu")
    rows.append(("idle worker < 2% of a core", f"{cpu:.2f}%", "< 2%", cpu < 2))
    idle = med(ours, "idle_commits_per_s")
    floor = 1 / 0.1  # the worker's default polling_interval: 0.1 s
    rows.append(("idle queries: only the polling floor (10/s at polling_interval 0.1 s)", f"{idle:.1f}/s",
                 f"≤ {floor:.0f}/s", idle <= floor * 1.1))
    cable = extra.get("cable")
    if cable:
        c50, c99 = cable["cable_p50"]["median"], cable["cable_p99"]["median"]
        rows.append(("cable p50 ≤ 2 ms", f"{c50:.2f} ms", "≤ 2 ms", c50 <= 2))
        rows.append(("cable p99 ≤ 5 ms", f"{c99:.2f} ms", "≤ 5 ms", c99 <= 5))
    else:
        rows.append(("cable p50 ≤ 2 ms, p99 ≤ 5 ms", extra.get("cable_note", "not measured"), "", None))
    return rows


def table(q: dict, groups: dict, extra: dict, target_rows: list, meta: dict) -> str:
    lines = [f"# Queue benchmark on PostgreSQL ({meta['date']})", "", f"Machine: {meta['machine']}", "",
             f"Load average (1 min) at the start and the end: {meta['load_start']:.1f} / {meta['load_end']:.1f} "
             "(2 cores: above 2, every figure is the machine's as much as the system's)", "",
             f"Versions: {', '.join(f'{k} {v}' for k, v in meta['versions'].items())}", "",
             f"Median of {meta['runs']} runs (min-max); every system on a fresh database of its own. Throughput: "
             f"one worker process at its defaults, {meta['jobs']:,} no-op jobs waiting (enqueued one by one), "
             f"without table statistics and again after `ANALYZE`. Bulk: {meta['bulk']:,} jobs in one call. "
             f"Latency: enqueue-to-start across processes, idle system, {meta['samples']} jobs 10 ms apart. "
             "Commits: `pg_stat_database.xact_commit` of the system's database (autocommit statements count).",
             "", "| system | enqueue one by one (jobs/s) | bulk (jobs/s) | throughput, no stats (jobs/s) "
             "| throughput after ANALYZE (jobs/s) | commits per job | latency p50 (ms) | latency p99 (ms) "
             "| idle CPU (% core) | idle commits/s | worker RSS (MiB) |", "|---" * 11 + "|"]
    for label, e in q.items():
        lines.append(f"| {label} | {fmt(e.get('enqueue'))} | {fmt(e.get('bulk'))} | {fmt(e.get('throughput'))} | "
                     f"{fmt(e.get('throughput_analyzed'))} | {fmt(e.get('commits_per_job'), 2)} | "
                     f"{fmt(e.get('p50'), 2)} | {fmt(e.get('p99'), 2)} | {fmt(e.get('idle_cpu'), 2)} | "
                     f"{fmt(e.get('idle_commits_per_s'), 1)} | {fmt(e.get('rss_mib'))} |")
    if groups:
        lines += ["", "| solidstack on PostgreSQL, several processes | figure |", "|---|---|"]
        for kind, count in GROUPS:
            what = ("worker processes (3 threads each), one machine" if kind == "processes" else
                    "simulated hosts: supervisor trees (1 worker, 1 dispatcher), each its own session and "
                    "wake-up folder (no hostname override exists yet)")
            lines.append(f"| {count} {what}: jobs/s, {meta['jobs']:,} jobs arriving in one bulk enqueue | "
                         f"{fmt(groups[f'{kind}_throughput'])} |")
            lines.append(f"| {count} {kind}: commits per job (start-up and idle polls included) | "
                         f"{fmt(groups[f'{kind}_commits_per_job'], 2)} |")
        lines.append(f"| enqueue-to-start across 3 simulated hosts, p50 / p99 | {fmt(groups['hosts_p50'], 2)} / "
                     f"{fmt(groups['hosts_p99'], 2)} ms |")
    lines += pg_extra.rows(extra)
    lines += ["", "| target (issue 17) | measured | goal | met |", "|---|---|---|---|"]
    verdict = {True: "yes", False: "**no**", None: "not measured"}
    lines += [f"| {name} | {value} | {goal} | {verdict[ok]} |" for name, value, goal, ok in target_rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, help="default 3 (--quick: 2)")
    parser.add_argument("--jobs", type=int, help="jobs per throughput run (default 3,000; --quick: 2,000)")
    parser.add_argument("--bulk", type=int, help="jobs per bulk enqueue (default 20,000; --quick: 10,000)")
    parser.add_argument("--samples", type=int, help="jobs per latency run (default 200; --quick: 100)")
    parser.add_argument("--quick", action="store_true", help="2 runs of 2,000 jobs, 100 latency samples")
    parser.add_argument("--only", choices=("queues", "groups", "extra"), action="append",
                        help="run only these parts (repeatable)")
    args = parser.parse_args()
    defaults = (2, 2000, 10_000, 100) if args.quick else (3, 3000, 20_000, 200)
    for name, value in zip(("runs", "jobs", "bulk", "samples"), defaults, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.idle_short, args.idle_long = (1.0, 6.0) if args.quick else (2.0, 12.0)
    args.redis = redis_up()
    parts = set(args.only or ("queues", "groups", "extra"))
    work = Path(tempfile.mkdtemp(prefix="solidstack-bench-pg-"))
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
            "versions": versions(), "runs": args.runs, "jobs": args.jobs, "bulk": args.bulk,
            "samples": args.samples, "load_start": os.getloadavg()[0]}
    print(f"queue benchmark on PostgreSQL, {meta['date']}\n{meta['machine']}\nwork folder {work}", flush=True)
    q = run_queues(work, args) if "queues" in parts else {}
    groups = run_groups(work, args) if "groups" in parts else {}
    extra = pg_extra.run(work, args) if "extra" in parts else {}
    meta["load_end"] = os.getloadavg()[0]
    target_rows = targets(q, groups, extra) if q else []
    text = table(q, groups, extra, target_rows, meta)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "queue_pg.md").write_text(text)
    (RESULTS / "queue_pg.json").write_text(json.dumps({"meta": meta, "queues": q, "groups": groups, "extra": extra,
                                                       "targets": target_rows}, indent=1))
    print("\n" + text)
    for name, value, goal, ok in target_rows:  # the verdicts, once more, where a terminal shows them last
        print(f"{'MET    ' if ok else 'not met' if ok is False else 'n/a    '}  {name}: {value} (goal {goal})")
    print(f"saved {RESULTS / 'queue_pg.md'}, queue_pg.json")


if __name__ == "__main__":
    main()
