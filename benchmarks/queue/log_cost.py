"""What `solidstack jobs`' logging costs: the real CLI draining a backlog of no-op jobs, per log setting.

    .venv/bin/python benchmarks/queue/log_cost.py [--jobs 5000] [--runs 3] [--variant ARGS ...]

Each variant is the extra arguments of `solidstack jobs` (``""`` is the default). Every run sets up a fresh app
(install, migrate) in a temp folder, enqueues ``--jobs`` jobs in bulk, starts `python -m solidstack jobs` with one
worker process of 3 threads and stderr to a file, and times from the start until every job is finished (the
supervisor's start-up, ~0.3 s, is included in every variant alike). Prints the median jobs/s of each variant and
the median CPU time per job of the supervisor and its workers (start-up included), which a loaded machine
disturbs less than the wall time.
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENVIRONMENT = '''
from solidstack.queue import Job


class NoopJob(Job):
    def perform(self, n):
        pass
'''
QUEUE_YML = """
production:
  dispatchers:
    - polling_interval: 1
  workers:
    - queues: "*"
      threads: 3
      processes: 1
      polling_interval: 0.1
"""


def one_run(args: list[str], jobs: int) -> tuple[float, int, float]:
    import solidstack
    from solidstack.queue import Job, queue_storage
    from solidstack.tasks import install, migrate_all

    with tempfile.TemporaryDirectory(prefix="log-cost-") as folder:
        root = Path(folder)
        install(root, "sqlite3")
        (root / "config" / "environment.py").write_text(ENVIRONMENT)
        (root / "config" / "queue.yml").write_text(QUEUE_YML)
        (root / "config" / "recurring.yml").unlink()  # the template's production task names an example job
        app = solidstack.configure(root, "production")
        migrate_all(app)
        sys.path.insert(0, str(root))
        namespace: dict[str, object] = {}
        exec(compile(ENVIRONMENT, "environment.py", "exec"), namespace)
        noop = namespace["NoopJob"]
        Job.perform_all_later([noop(i) for i in range(jobs)])  # type: ignore[operator]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOLIDSTACK_")}
        env["SOLIDSTACK_ENV"] = "production"
        with open(root / "jobs.log", "w") as log:
            cpu_before = _children_cpu()
            started = time.perf_counter()
            proc = subprocess.Popen([sys.executable, "-m", "solidstack", "--root", str(root), "jobs", *args],
                                    stdout=log, stderr=log, env=env, start_new_session=True)
            try:
                storage = queue_storage()
                while True:
                    counts = storage.counts()
                    if counts.get("finished", 0) >= jobs:
                        break
                    if proc.poll() is not None:
                        raise SystemExit(f"jobs exited with {proc.returncode}: {(root / 'jobs.log').read_text()}")
                    time.sleep(0.01)
                elapsed = time.perf_counter() - started
            finally:
                proc.terminate()
                proc.wait(30)
        cpu = _children_cpu() - cpu_before  # the supervisor and the children it reaped, start-up included
        sys.path.remove(str(root))
        lines = len((root / "jobs.log").read_text().splitlines())
        return jobs / elapsed, lines, cpu / jobs * 1e6


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--variant", action="append", help="extra `solidstack jobs` arguments ('' = default)")
    options = parser.parse_args()
    variants = options.variant or ["", "--log-level debug", "--log-level warning", "--log-format json"]
    rates: dict[str, list[float]] = {v: [] for v in variants}
    cpus: dict[str, list[float]] = {v: [] for v in variants}
    lines: dict[str, int] = {}
    for _ in range(options.runs):  # interleaved, so a load change on the machine hits every variant alike
        for variant in variants:
            rate, lines[variant], cpu = one_run(shlex.split(variant), options.jobs)
            rates[variant].append(rate)
            cpus[variant].append(cpu)
    for variant, values in rates.items():
        print(f"{variant or '(default)':40} {statistics.median(values):6.0f} jobs/s  "
              f"{statistics.median(cpus[variant]):6.1f} CPU µs/job  {lines[variant]:6} log lines  "
              f"(runs: {', '.join(f'{v:.0f}' for v in values)})")


if __name__ == "__main__":
    main()
