"""The queue benchmark suite: solidstack against huey (SQLite, Redis), RQ, Dramatiq and Celery (Redis), measured
in one run, each figure the median of ``--runs`` runs with its spread, printed as a table with the ratios against
the targets of issue 7, and saved to ``benchmarks/results/`` (JSON, Markdown, PNG chart).

    make bench                                   # installs the bench extra into .venv, then runs this
    .venv/bin/python benchmarks/queue/run.py [--runs 3] [--jobs 3000] [--quick]

Needs Redis on 127.0.0.1:6379. See benchmarks/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

import contention  # noqa: E402
import measure  # noqa: E402
import scale  # noqa: E402
import systems  # noqa: E402

RESULTS = HERE.parent / "results"


class Solid10(systems.Solid):
    """solidstack with 10 worker threads (the default is 3): bigger claim batches."""

    name = "solidstack 10 threads"

    def worker_cmd(self) -> list[str]:
        return [*super().worker_cmd(), "10"]


SYSTEMS = (systems.Solid, Solid10, systems.HueySqlite, systems.HueyRedis, systems.RQ, systems.Dramatiq,
           systems.Celery)


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    disk = subprocess.run(["df", "-h", str(tempfile.gettempdir())], capture_output=True, text=True).stdout
    fs = disk.splitlines()[-1].split()[0] if disk else "?"
    return (f"{platform.node()}: {os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, Linux {platform.release()}, "
            f"Python {platform.python_version()}, SQLite {__import__('sqlite3').sqlite_version}, temp dir on {fs}")


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("solidstack", "huey", "rq", "dramatiq", "celery", "redis"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "-"
    info = subprocess.run(["redis-cli", "-h", "127.0.0.1", "info", "server"], capture_output=True, text=True)
    out["redis-server"] = (info.stdout.partition("redis_version:")[2].split() or ["?"])[0]
    return out


def run_queues(work: Path, runs: int, jobs: int, samples: int) -> dict:
    raw: dict[str, dict[str, list[float]]] = {}
    for run in range(runs):
        for cls in SYSTEMS:
            system = cls(work)
            label = systems.label(system)
            print(f"  run {run + 1}/{runs}: {label} ...", flush=True)
            entry = raw.setdefault(label, {})
            rate_in, rate, output = measure.throughput(system, jobs, work)
            entry.setdefault("enqueue", []).append(rate_in)
            entry.setdefault("throughput", []).append(rate)
            if output.startswith("commits"):
                entry.setdefault("commits_per_job", []).append(int(output.split()[1]) / jobs)
            latencies, idle_cpu, rss = measure.latency(system, samples, work)
            entry.setdefault("p50", []).append(measure.pct(latencies, 0.5))
            entry.setdefault("p99", []).append(measure.pct(latencies, 0.99))
            entry.setdefault("idle_cpu", []).append(idle_cpu)
            entry.setdefault("rss_mib", []).append(rss / 1024)
    return {label: {k: spread(v) for k, v in entry.items()} for label, entry in raw.items()}


def run_solid_only(work: Path, runs: int, quick: bool) -> dict:
    out: dict[str, list[float]] = {}
    deep = 100_000 if quick else 1_000_000
    print(f"  bulk enqueue, SQLite ceiling, memory; depth 1,000 vs {deep:,} ...", flush=True)
    for _ in range(runs):
        out.setdefault("bulk_enqueue", []).append(scale.bulk_enqueue_rate(work, 100_000))
        out.setdefault("ceiling_commits", []).append(scale.commit_ceiling(work))
    rss, count = scale.supervisor_rss(work)
    out["supervisor_tree_rss_mib"] = [rss / 1024]
    out["supervisor_tree_processes"] = [count]
    shallow_sys = scale.build(work, 1_000)
    t = time.perf_counter()
    deep_sys = scale.build(work, deep)
    out["build_deep_s"] = [time.perf_counter() - t]
    for _ in range(runs):
        out.setdefault("tp_depth_1k", []).append(scale.throughput_at_depth(shallow_sys, 1_000, 5_000))
        out.setdefault("tp_depth_deep", []).append(scale.throughput_at_depth(deep_sys, deep, 5_000))
    shallow_sys.close()
    deep_sys.close()
    out["depth_deep"] = [deep]
    print("  write contention, writer lock off and on ...", flush=True)
    for _ in range(runs):
        for lock in (False, True):
            r = contention.run(work, 4.0, lock)
            key = "lock" if lock else "nolock"
            out.setdefault(f"contention_{key}_p99_ms", []).append(r["p99_ms"])
            out.setdefault(f"contention_{key}_worst_ms", []).append(r["worst_ms"])
            out.setdefault(f"contention_{key}_gap_ms", []).append(1000 * r["longest_gap_s"])
    return {k: spread(v) for k, v in out.items()}


def run_cable(work: Path, runs: int, messages: int) -> dict:
    import cable_bench

    import solidstack
    from solidstack.tasks import migrate_all

    root = work / "cable-app"
    (root / "config").mkdir(parents=True, exist_ok=True)
    (root / "config" / "cable.yml").write_text(cable_bench.CABLE_YML)
    app = solidstack.configure(root, "development")
    migrate_all(app)
    env = dict(os.environ)
    out: dict[str, list[float]] = {}
    for _ in range(runs):
        for name, bench in (("cable", cable_bench.bench_cable), ("redis_pubsub", cable_bench.bench_redis)):
            latencies, _ = bench(messages, 0.005, env)
            out.setdefault(f"{name}_p50", []).append(cable_bench.pct(latencies, 0.5))
            out.setdefault(f"{name}_p99", []).append(cable_bench.pct(latencies, 0.99))
    solidstack.cable.reset()
    return {k: spread(v) for k, v in out.items()}


def fmt(s: dict, digits: int = 0, scale_: float = 1.0) -> str:
    m, lo, hi = s["median"] * scale_, s["min"] * scale_, s["max"] * scale_
    return f"{m:,.{digits}f} ({lo:,.{digits}f}-{hi:,.{digits}f})"


def targets(q: dict, solo: dict, cable: dict) -> list[tuple[str, str, str, bool]]:
    ours = q["solidstack (SQLite)"]
    med = lambda label, key: q[label][key]["median"]  # noqa: E731
    rows = []
    tp = ours["throughput"]["median"]
    huey_sqlite = med("huey (SQLite)", "throughput")
    rows.append(("throughput ≥ 2x huey SQLite", f"{tp / huey_sqlite:.2f}x", "≥ 2x", tp >= 2 * huey_sqlite))
    for label in ("huey (Redis)", "Dramatiq (Redis)", "Celery (Redis)", "RQ (Redis)"):
        other = med(label, "throughput")
        rows.append((f"throughput above {label}", f"{tp / other:.2f}x", "> 1x", tp > other))
    enq = ours["enqueue"]["median"] / med("huey (SQLite)", "enqueue")
    rows.append(("enqueue one by one ≥ 1.5x huey SQLite", f"{enq:.2f}x", "≥ 1.5x", enq >= 1.5))
    bulk = solo["bulk_enqueue"]["median"]
    rows.append(("bulk enqueue ≥ 100,000 jobs/s", f"{bulk:,.0f}/s", "≥ 100,000/s", bulk >= 100_000))
    p50, p99 = ours["p50"]["median"], ours["p99"]["median"]
    rows.append(("latency p50 ≤ 2 ms", f"{p50:.2f} ms", "≤ 2 ms", p50 <= 2))
    rows.append(("latency p99 ≤ 5 ms", f"{p99:.2f} ms", "≤ 5 ms", p99 <= 5))
    cpu = ours["idle_cpu"]["median"]
    rows.append(("idle worker < 2% of a core", f"{cpu:.2f}%", "< 2%", cpu < 2))
    cp50, cp99 = cable["cable_p50"]["median"], cable["cable_p99"]["median"]
    rows.append(("cable p50 ≤ 1 ms", f"{cp50:.2f} ms", "≤ 1 ms", cp50 <= 1))
    rows.append(("cable p99 ≤ 2 ms", f"{cp99:.2f} ms", "≤ 2 ms", cp99 <= 2))
    ratio = solo["tp_depth_deep"]["median"] / solo["tp_depth_1k"]["median"]
    deep = int(solo["depth_deep"]["median"])
    rows.append((f"throughput at {deep:,} waiting ≥ 80% of at 1,000", f"{ratio:.0%}", "≥ 80%", ratio >= 0.8))
    worst = solo["contention_lock_worst_ms"]["median"]
    rows.append(("worst write wait under contention ≤ 50 ms", f"{worst:.1f} ms", "≤ 50 ms", worst <= 50))
    gap = solo["contention_lock_gap_ms"]["median"]
    rows.append(("no process starved (commits every second)", f"longest gap {gap:.0f} ms", "< 1,000 ms",
                 gap < 1000))
    return rows


def table(q: dict, solo: dict, cable: dict, target_rows: list, meta: dict) -> str:
    lines = [f"# Queue benchmark results ({meta['date']})", "", f"Machine: {meta['machine']}", "",
             f"Versions: {', '.join(f'{k} {v}' for k, v in meta['versions'].items())}", "",
             f"Median of {meta['runs']} runs (min-max). Throughput: one worker process, {meta['jobs']:,} no-op "
             f"jobs waiting. Latency: enqueue-to-start, producer and worker in different processes, idle system, "
             f"{meta['samples']} jobs 10 ms apart.", "",
             "| system | enqueue one by one (jobs/s) | throughput (jobs/s) | latency p50 (ms) | latency p99 (ms) "
             "| idle CPU (% core) | worker RSS (MiB) |", "|---|---|---|---|---|---|---|"]
    for label, e in q.items():
        lines.append(f"| {label} | {fmt(e['enqueue'])} | {fmt(e['throughput'])} | {fmt(e['p50'], 2)} | "
                     f"{fmt(e['p99'], 2)} | {fmt(e['idle_cpu'], 2)} | {fmt(e['rss_mib'])} |")
    ours = q["solidstack (SQLite)"]
    ceiling = solo["ceiling_commits"]["median"]
    cpj = ours["commits_per_job"]["median"]
    lines += ["", "| solidstack alone | figure |", "|---|---|",
              f"| bulk enqueue (100,000 jobs, one transaction) | {fmt(solo['bulk_enqueue'])} jobs/s |",
              f"| throughput, 1,000 jobs waiting | {fmt(solo['tp_depth_1k'])} jobs/s |",
              f"| throughput, {int(solo['depth_deep']['median']):,} jobs waiting (half ready, half scheduled) | "
              f"{fmt(solo['tp_depth_deep'])} jobs/s |",
              f"| SQLite ceiling on this disk (smallest write transaction) | {fmt(solo['ceiling_commits'])} "
              "commits/s |",
              f"| commits per job (3 threads / 10 threads) | {cpj:.2f} / "
              f"{q['solidstack 10 threads (SQLite)']['commits_per_job']['median']:.2f} "
              f"(a job costs {cpj * ours['throughput']['median'] / ceiling:.1%} of the ceiling's commits/s) |",
              f"| supervisor tree RSS (supervisor, worker, dispatcher) | "
              f"{solo['supervisor_tree_rss_mib']['median']:.0f} MiB in "
              f"{int(solo['supervisor_tree_processes']['median'])} processes |",
              f"| write wait under contention, lock off: p99 / worst | {fmt(solo['contention_nolock_p99_ms'], 1)} / "
              f"{fmt(solo['contention_nolock_worst_ms'], 1)} ms |",
              f"| write wait under contention, lock on: p99 / worst | {fmt(solo['contention_lock_p99_ms'], 1)} / "
              f"{fmt(solo['contention_lock_worst_ms'], 1)} ms |",
              f"| longest stretch without a commit, one process (off / on) | "
              f"{fmt(solo['contention_nolock_gap_ms'])} / {fmt(solo['contention_lock_gap_ms'])} ms |",
              f"| cable broadcast-to-receive p50 / p99 (SQLite) | {fmt(cable['cable_p50'], 2)} / "
              f"{fmt(cable['cable_p99'], 2)} ms |",
              f"| Redis pub/sub p50 / p99 (same run) | {fmt(cable['redis_pubsub_p50'], 2)} / "
              f"{fmt(cable['redis_pubsub_p99'], 2)} ms |",
              "", "| target (issue 7) | measured | goal | met |", "|---|---|---|---|"]
    lines += [f"| {name} | {value} | {goal} | {'yes' if ok else '**no**'} |" for name, value, goal, ok in target_rows]
    return "\n".join(lines) + "\n"


def chart(q: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(q)
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    tp = [q[label]["throughput"]["median"] for label in labels]
    err = [[t - q[label]["throughput"]["min"] for t, label in zip(tp, labels, strict=True)],
           [q[label]["throughput"]["max"] - t for t, label in zip(tp, labels, strict=True)]]
    colors = ["#2a7" if label.startswith("solidstack") else "#889" for label in labels]
    left.barh(labels, tp, xerr=err, color=colors)
    left.invert_yaxis()
    left.set_xlabel("no-op jobs/s, one worker process (higher is better)")
    left.set_title("Throughput from a full queue")
    y = range(len(labels))
    p50 = [q[label]["p50"]["median"] for label in labels]
    p99 = [q[label]["p99"]["median"] for label in labels]
    right.barh([i - 0.2 for i in y], p50, height=0.4, label="p50", color="#2a7")
    right.barh([i + 0.2 for i in y], p99, height=0.4, label="p99", color="#d84")
    right.set_yticks(list(y), labels)
    right.invert_yaxis()
    right.set_xscale("log")
    right.set_xlabel("ms, log scale (lower is better)")
    right.set_title("Enqueue-to-start latency, idle system")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=3000, help="jobs per throughput run")
    parser.add_argument("--samples", type=int, default=200, help="jobs per latency run")
    parser.add_argument("--quick", action="store_true", help="100,000 jobs deep instead of 1,000,000")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="solidstack-bench-"))
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), "versions": versions(),
            "runs": args.runs, "jobs": args.jobs, "samples": args.samples}
    print(f"queue benchmark suite, {meta['date']}\n{meta['machine']}\nwork folder {work}", flush=True)
    q = run_queues(work, args.runs, args.jobs, args.samples)
    solo = run_solid_only(work, args.runs, args.quick)
    cable = run_cable(work, args.runs, 500)
    target_rows = targets(q, solo, cable)
    text = table(q, solo, cable, target_rows, meta)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "queue.md").write_text(text)
    (RESULTS / "queue.json").write_text(json.dumps({"meta": meta, "queues": q, "solidstack": solo,
                                                    "cable": cable}, indent=1))
    chart(q, RESULTS / "queue.png")
    print("\n" + text)
    print(f"saved {RESULTS / 'queue.md'}, queue.json, queue.png")


if __name__ == "__main__":
    main()
