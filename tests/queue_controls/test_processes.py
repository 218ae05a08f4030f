"""Real processes: two supervisors scheduling the same task on one database; a concurrency limit under load."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from solidstack.config import App
from solidstack.queue import queue_storage
from solidstack.queue.serialization import dump_arguments
from solidstack.queue.storage import NewJob, QueueStorage

HERE = Path(__file__).resolve().parent
SOLIDSTACK = Path(sys.executable).parent / "solidstack"


def test_two_supervisors_enqueue_each_run_of_every_second_once(storage: QueueStorage) -> None:
    base, speed, real = 1_800_000_000.5, 10.0, 1.4  # ~14 simulated seconds in 1.4 real ones
    t0 = time.time() + 3.0  # both start their clocks at the same instant, after importing (slow on a loaded machine)
    procs = [subprocess.Popen([sys.executable, str(HERE / "_supervisor_proc.py"), str(storage.db.path), str(base),
                               str(t0), str(speed), str(real)]) for _ in range(2)]
    try:
        assert [proc.wait(timeout=30) for proc in procs] == [0, 0]
    finally:
        for proc in procs:
            proc.kill()
    rows = storage.db.query("SELECT r.run_at, j.class_name FROM solidstack_recurring_executions r "
                            "JOIN solidstack_jobs j ON j.id = r.job_id ORDER BY r.run_at")
    run_ats = [row[0] for row in rows]
    assert len(run_ats) >= 10
    first = run_ats[0]
    assert run_ats == [first + n for n in range(len(run_ats))]  # every second, none twice, none missing
    assert storage.counts()["ready"] == len(run_ats)  # no job without its run row, none duplicated
    assert {row[1] for row in rows} == {"Queue2SecondJob"}


def test_concurrency_limit_of_two_under_fifty_jobs_on_two_processes(app: App, tmp_path: Path) -> None:
    log = tmp_path / "intervals.log"
    (app.root / "config" / "queue.yml").write_text(textwrap.dedent("""
        test:
          dispatchers:
            - polling_interval: 0.1
          workers:
            - queues: "*"
              threads: 3
              processes: 2
              polling_interval: 0.05
          shutdown_timeout: 2
    """))
    (app.root / "config" / "environment.py").write_text(textwrap.dedent(f"""
        import os, time
        from solidstack.queue import Job, limits_concurrency

        @limits_concurrency(to=2, key=lambda job: "shared")
        class Queue2LimitedJob(Job):
            def perform(self, n):
                start = time.time()
                time.sleep(0.02)
                line = f"{{n}} {{start!r}} {{time.time()!r}} {{os.getpid()}}\\n"
                fd = os.open({str(log)!r}, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
                os.write(fd, line.encode())
                os.close(fd)
    """))
    storage = queue_storage()
    now = time.time()
    storage.enqueue([NewJob("default", "Queue2LimitedJob", dump_arguments((n,), {}, job="Queue2LimitedJob"), 0,
                            f"job-{n}", None, "Queue2LimitedJob/shared", 2, 180.0, "block") for n in range(50)], now)
    assert storage.counts()["ready"] == 2 and storage.counts()["blocked"] == 48
    env = {**os.environ, "SOLIDSTACK_ROOT": str(app.root), "SOLIDSTACK_ENV": "test"}
    proc = subprocess.Popen([str(SOLIDSTACK), "jobs"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 40
        while storage.counts()["finished"] < 50 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert storage.counts()["finished"] == 50, err.decode()[-3000:]
    intervals = [tuple(map(float, line.split()[1:3])) for line in log.read_text().splitlines()]
    assert len(intervals) == 50  # (which of the two worker processes wins each claim is up to the race)
    points = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
                    key=lambda p: (p[0], p[1]))
    running = peak = 0
    for _, delta in points:
        running += delta
        peak = max(peak, running)
    assert peak == 2
    counts = storage.counts()
    assert (counts["blocked"], counts["ready"], counts["claimed"], counts["failed"]) == (0, 0, 0, 0)
