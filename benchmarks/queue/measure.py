"""The measurements every system goes through: enqueue rate, throughput from a full queue, idle latency, idle CPU."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from record import read
from systems import System


@dataclass
class Worker:
    """One worker process of a system, writing its records to ``out``."""

    system: System
    out: Path
    proc: subprocess.Popen[str] | None = None
    output: str = field(default="")

    def start(self) -> None:
        self.out.unlink(missing_ok=True)
        env = {**os.environ, **self.system.env(), "BENCH_OUT": str(self.out)}
        self.log = open(self.out.with_suffix(".log"), "w+")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(self.system.worker_cmd(), env=env, cwd=Path(__file__).parent,
                                     stdout=self.log, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)

    def records(self) -> list[tuple[int, int]]:
        return read(str(self.out))

    def wait_for(self, count: int, timeout: float) -> list[tuple[int, int]]:
        deadline = time.monotonic() + timeout
        while True:
            rows = self.records()
            if len(rows) >= count:
                return rows
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.system.name}: {len(rows)} of {count} jobs ran in {timeout} s; "
                                   f"log: {self.out.with_suffix('.log')}")
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.system.name}: the worker exited; log: {self.out.with_suffix('.log')}")
            time.sleep(0.005)

    def cpu_seconds(self) -> float:
        """User + system CPU time of the worker process and its threads (and live children)."""
        assert self.proc is not None
        total = 0.0
        for pid in [self.proc.pid, *_children(self.proc.pid)]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def rss_kib(self) -> int:
        assert self.proc is not None
        return sum(rss_kib(pid) for pid in [self.proc.pid, *_children(self.proc.pid)])

    def stop(self) -> str:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.log.seek(0)
        self.output = self.log.read()
        self.log.close()
        return self.output


def _children(pid: int) -> list[int]:
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            children = Path(f"/proc/{pid}/task/{tid}/children").read_text().split()
            for child in children:
                out += [int(child), *_children(int(child))]
    except OSError:
        pass
    return out


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def enqueue_rate(system: System, count: int) -> float:
    """Jobs/s enqueued one call per job, from this process."""
    start = time.perf_counter()
    for _ in range(count):
        system.enqueue_one(0)
    return count / (time.perf_counter() - start)


def bulk_rate(system: System, count: int) -> float:
    start = time.perf_counter()
    system.enqueue_bulk(count)
    return count / (time.perf_counter() - start)


def throughput(system: System, count: int, work: Path) -> tuple[float, float, str]:
    """(enqueue one-by-one jobs/s, worker jobs/s from a full queue, worker output)."""
    system.setup()
    rate_in = enqueue_rate(system, count)
    worker = Worker(system, work / f"{system.name}-{system.backend}-tp.out")
    worker.start()
    try:
        rows = worker.wait_for(count, timeout=120)
    finally:
        output = worker.stop()
        system.close()
    starts = sorted(started for _sent, started in rows)
    return rate_in, (len(starts) - 1) / ((starts[-1] - starts[0]) / 1e9), output


def latency(system: System, count: int, work: Path, *, pause: float = 0.01,
            idle_for: float = 3.0) -> tuple[list[float], float, int]:
    """(enqueue-to-start latencies in ms, idle worker CPU in % of a core, worker RSS KiB)."""
    system.setup()
    worker = Worker(system, work / f"{system.name}-{system.backend}-lat.out")
    worker.start()
    try:
        # Warm up: the worker is running and has run a job before anything is measured.
        for i in range(5):
            system.enqueue_one(time.monotonic_ns())
            worker.wait_for(i + 1, timeout=60)
        time.sleep(0.5)
        cpu0, t0 = worker.cpu_seconds(), time.monotonic()
        time.sleep(idle_for)
        idle_cpu = 100 * (worker.cpu_seconds() - cpu0) / (time.monotonic() - t0)
        rss = worker.rss_kib()
        for i in range(count):
            system.enqueue_one(time.monotonic_ns())
            worker.wait_for(5 + i + 1, timeout=30)
            time.sleep(pause)
        rows = worker.records()[5:]
    finally:
        worker.stop()
        system.close()
    return [(started - sent) / 1e6 for sent, started in rows], idle_cpu, rss


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
