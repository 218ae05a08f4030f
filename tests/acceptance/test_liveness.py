"""Which processes are dead, and who says so: the real `solidstack jobs` under kill -9, SIGSTOP, a second PID
namespace and a crash loop (issue 11, items 1-4; decision 0006).

``GuardedJob`` holds an exclusive ``flock`` on a file of its own while it runs. The kernel drops the lock only when
the process that holds it is gone, so a second run of the same job that starts while the first run's process is
still alive (running, or stopped) cannot take it and records ``overlap``: a job run twice at the same time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from solidstack.queue import Job, queue_storage

pytestmark = pytest.mark.slow

GUARDED_PY = '''
import fcntl, os, signal, time
from solidstack.queue import Job

ROOT = os.path.join(os.path.dirname(__file__), "..")


def record(line):
    fd = os.open(os.path.join(ROOT, "results.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\\n").encode())
    finally:
        os.close(fd)


class GuardedJob(Job):
    def perform(self, n, seconds):
        os.makedirs(os.path.join(ROOT, "locks"), exist_ok=True)
        fd = os.open(os.path.join(ROOT, "locks", str(n)), os.O_CREAT | os.O_RDWR, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                record(f"overlap {n} {os.getpid()}")
            record(f"start {n} {os.getpid()}")
            time.sleep(seconds)
            record(f"done {n} {os.getpid()}")
        finally:
            os.close(fd)


class StopsInsideAWriteJob(Job):
    """The first run stops its own process inside a write transaction of the queue database: it holds the
    writer lock, and every other writer waits for it."""

    def perform(self):
        from solidstack.queue import queue_storage

        marker = os.path.join(ROOT, "stopped-once")
        if not os.path.exists(marker):
            open(marker, "w").close()
            with queue_storage().db.transaction() as conn:
                conn.execute("UPDATE solidstack_processes SET name = name")
                record(f"stopping {os.getpid()}")
                os.kill(os.getpid(), signal.SIGSTOP)
        record(f"done held {os.getpid()}")
'''

LIVENESS_YML = """
test:
  shutdown_timeout: {shutdown_timeout}
  process_heartbeat_interval: {heartbeat}
  process_alive_threshold: {threshold}
  dispatchers:
    - polling_interval: 0.05
  workers:
    - queues: "*"
      threads: 3
      processes: {processes}
      polling_interval: 0.02
"""


@pytest.fixture
def app(jobs_app):  # type: ignore[no-untyped-def]
    (jobs_app.root / "app" / "guarded.py").write_text(GUARDED_PY)
    with open(jobs_app.root / "config" / "environment.py", "a") as env:
        env.write("import app.guarded  # noqa: F401\n")
    return jobs_app


def configure(app, *, processes: int = 2, shutdown_timeout: float = 10, heartbeat: float = 1,  # type: ignore[no-untyped-def]
              threshold: float = 300, extra: str = "") -> None:
    (app.root / "config" / "queue.yml").write_text(LIVENESS_YML.format(
        processes=processes, shutdown_timeout=shutdown_timeout, heartbeat=heartbeat, threshold=threshold) + extra)


def enqueue_guarded(count: int, seconds: float) -> list[int]:
    from app.guarded import GuardedJob

    jobs = [GuardedJob(i, seconds) for i in range(count)]
    Job.perform_all_later(jobs)
    return [job.provider_job_id for job in jobs]


def process_deaths(job_ids: list[int]) -> list[int]:
    db = queue_storage().db
    return [db.query_one("SELECT process_deaths FROM solidstack_jobs WHERE id = ?", (job_id,))[0]
            for job_id in job_ids]


def assert_each_ran_once(app, job_ids: list[int]) -> None:  # type: ignore[no-untyped-def]
    starts = Counter(parts[1] for parts in app.lines("start"))
    assert app.lines("overlap") == [], f"a job ran twice at once: {app.lines()}"
    assert starts == Counter(str(i) for i in range(len(job_ids))), f"each job should start once: {app.lines()}"
    storage = queue_storage()
    assert [storage.job_state(job_id)["state"] for job_id in job_ids] == ["finished"] * len(job_ids)
    assert process_deaths(job_ids) == [0] * len(job_ids), "a live process's jobs counted a death"


def test_kill_9_of_the_supervisor_leaves_its_live_workers_jobs_alone(app) -> None:  # type: ignore[no-untyped-def]
    # Issue 11, item 1: the next supervisor pruned the dead one *and its live workers*, whose jobs then ran
    # again at once (4 of 4 twice) and counted a death each.
    configure(app, processes=2, shutdown_timeout=15)
    job_ids = enqueue_guarded(4, 4.0)
    first = app.start()
    app.wait_for(lambda: len(app.lines("start")) == 4, what="the four jobs to start")
    first.kill()
    first.wait(10)
    second = app.start()
    app.wait_for(lambda: "pruned dead process supervisor-" in app.output(second), timeout=20,
                 what="the next supervisor to prune the dead one")
    app.wait_for(lambda: len(app.lines("done")) == 4, timeout=30, what="the orphaned workers to finish the jobs")
    time.sleep(1.0)  # a duplicate would start now
    code, output = app.stop(second)
    assert code == 0, output
    assert_each_ran_once(app, job_ids)
    first_pids = {parts[2] for parts in app.lines("start")}
    assert all(f"pid {pid} " not in output for pid in first_pids), "a live worker was pruned:\n" + output
    # The orphans noticed their supervisor was gone, finished their jobs, and left.
    assert queue_storage().processes() == []


def _unshare_pid_namespace() -> list[str] | None:
    command = ["unshare", "--user", "--map-root-user", "--pid", "--fork", "--mount-proc"]
    try:
        probe = subprocess.run([*command, "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return command if probe.returncode == 0 else None


def test_a_supervisor_in_another_pid_namespace_does_not_prune_by_pid(app) -> None:  # type: ignore[no-untyped-def]
    # Issue 11, item 2: two supervisors with one hostname and one database, in two PID namespaces (containers
    # with host networking sharing a volume). The second saw the first's pids missing from its own namespace
    # and pruned its live processes: their jobs ran again at once.
    unshare = _unshare_pid_namespace()
    if unshare is None:
        pytest.skip("unshare cannot create a PID namespace here (needs util-linux and user namespaces)")
    configure(app, processes=2, shutdown_timeout=10)
    job_ids = enqueue_guarded(4, 4.0)
    host = app.start()
    app.wait_for(lambda: len(app.lines("start")) == 4, what="the four jobs to start")
    contained = app.start(command=[*unshare, sys.executable, "-m", "solidstack", "jobs"])
    storage = queue_storage()
    app.wait_for(lambda: sum(p["kind"] == "Supervisor" for p in storage.processes()) == 2, timeout=20,
                 what="the supervisor in the other namespace")
    app.wait_for(lambda: len(app.lines("done")) == 4, timeout=30, what="the four jobs to finish")
    time.sleep(1.5)  # the other supervisor has pruned (or not) at least once more
    assert len(storage.processes()) == 2 * 4, storage.processes()  # each: supervisor, 2 workers, dispatcher
    os.killpg(contained.pid, signal.SIGTERM)
    contained.wait(20)
    code, output = app.stop(host)
    assert code == 0, output
    both = output + app.output(contained)
    assert "pruned dead process" not in both, both
    assert_each_ran_once(app, job_ids)


def test_a_hung_worker_is_killed_by_its_supervisor_and_its_job_runs_again(app) -> None:  # type: ignore[no-untyped-def]
    # Issue 11, item 3: a worker that stopped heartbeating while its pid lived (here SIGSTOP) kept its jobs
    # until the supervisor stopped: its own supervisor never pruned it.
    configure(app, processes=1, heartbeat=0.5, threshold=2)
    (job_id,) = enqueue_guarded(1, 1.0)
    proc = app.start()
    app.wait_for(lambda: app.lines("start"), what="the job to start")
    victim = int(app.lines("start")[0][2])
    os.kill(victim, signal.SIGSTOP)
    app.wait_for(lambda: app.lines("done"), timeout=25, what="the job to run again in another worker")
    code, output = app.stop(proc)
    assert code == 0, output
    starts = [int(parts[2]) for parts in app.lines("start")]
    assert len(starts) == 2 and starts[1] != victim, app.lines()
    assert app.lines("overlap") == [], "the job ran again while the stopped worker was alive"
    # Found by its heartbeat (TERM, then KILL) or by its state, whichever comes first; killed once.
    assert (f"worker process {victim} has not sent a heartbeat" in output
            and f"process {victim} did not stop after TERM; killing it" in output) or \
        f"worker process {victim} has been stopped for 2 s (process_alive_threshold): killing it" in output, output
    assert len([line for line in output.splitlines() if "killing it" in line or "stopping it" in line]) <= 2, output
    assert queue_storage().job_state(job_id)["state"] == "finished"
    assert process_deaths([job_id]) == [1]
    with pytest.raises(ProcessLookupError):
        os.kill(victim, 0)


# `solidstack jobs` whose workers cannot start (as with a queue database that cannot be used); the dispatcher can.
WORKERS_CANNOT_START = """
import sys
from solidstack.queue.processes import supervisor

build = supervisor.RoleSpec.build


def failing_build(self, storage, config):
    if self.kind == "worker":
        raise RuntimeError("this worker cannot start")
    return build(self, storage, config)


supervisor.RoleSpec.build = failing_build
sys.argv = ["solidstack", "jobs", "--skip-recurring"]
from solidstack.cli import main

main()
"""


def test_a_crash_loop_backs_off_then_gives_up_with_the_reason(app) -> None:  # type: ignore[no-untyped-def]
    # Issue 11, item 4: a child that died at start was forked again at once, forever (hundreds a second).
    configure(app, processes=1, extra="  supervisor:\n    max_restart_failures: 4\n")
    started = time.monotonic()
    proc = app.start(command=[sys.executable, "-c", WORKERS_CANNOT_START])
    try:
        code = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the supervisor did not give up:\n{app.output(proc)}") from None
    elapsed = time.monotonic() - started
    output = app.output(proc)
    assert code == 1, output
    assert output.count("this worker cannot start") == 4, output  # four forks, not hundreds
    for wait in ("0.25", "0.5", "1"):
        assert output.count(f"failed start(s) in a row); starting another in {wait} s") == 1, output
    assert "worker process failed to start 4 times in a row (last: exited with status 1); giving up " \
           "(supervisor.max_restart_failures: 4 in" in output, output
    assert elapsed >= 1.75, "the backoff (0.25 + 0.5 + 1 s) was not waited"
    assert queue_storage().processes() == []


def test_a_crash_loop_forks_a_handful_of_times_not_hundreds(app) -> None:  # type: ignore[no-untyped-def]
    configure(app, processes=1)  # the default max_restart_failures (10) is not reached in 3 s
    proc = app.start(command=[sys.executable, "-c", WORKERS_CANNOT_START])
    time.sleep(3.0)
    code, output = app.stop(proc)
    assert code == 0, output
    # Forks at 0, 0.25, 0.75, 1.75 s after the first failure; the next waits until 3.75 s.
    assert 3 <= output.count("this worker cannot start") <= 5, output


def test_an_orphan_stopping_with_a_job_still_running_keeps_it_until_it_has_exited(app) -> None:  # type: ignore[no-untyped-def]
    # The orphaned worker stops gracefully, but its job outlives shutdown_timeout. Handing it back while its
    # thread still ran it let the next supervisor's idle worker start it at once, in the last milliseconds of
    # the orphan's life; it must stay claimed until the orphan is gone, then run again (a death counted: its run
    # was cut short).
    configure(app, processes=1, shutdown_timeout=3)
    (job_id,) = enqueue_guarded(1, 6.0)
    first = app.start()
    app.wait_for(lambda: app.lines("start"), what="the job to start")
    orphan = int(app.lines("start")[0][2])
    first.kill()
    first.wait(10)
    second = app.start()
    app.wait_for(lambda: app.lines("done"), timeout=30, what="the job to run again and finish")
    code, output = app.stop(second)
    assert code == 0, output
    assert app.lines("overlap") == [], f"the job ran twice at once: {app.lines()}"
    starts = [int(parts[2]) for parts in app.lines("start")]
    assert len(starts) == 2 and starts[0] == orphan != starts[1], app.lines()
    assert queue_storage().job_state(job_id)["state"] == "finished"
    assert process_deaths([job_id]) == [1]


def test_a_worker_stopped_while_it_holds_the_database_is_killed_and_the_rest_go_on(app) -> None:  # type: ignore[no-untyped-def]
    # Found by the soak: a worker SIGSTOPped inside a write transaction held SQLite's writer lock (and the
    # kernel queue in front of it, which has no timeout). Every writer waited for good, the supervisors too, so
    # nobody could see or kill it: the whole queue stopped. Heartbeats could not tell who was hung either.
    from app.guarded import StopsInsideAWriteJob

    configure(app, processes=2, heartbeat=0.5, threshold=2)
    proc = app.start()
    storage = queue_storage()
    app.wait_for(lambda: sum(p["kind"] == "Worker" for p in storage.processes()) == 2, what="two workers")
    job = StopsInsideAWriteJob.perform_later()
    app.wait_for(lambda: app.lines("stopping"), what="the job to stop its worker")
    victim = int(app.lines("stopping")[0][1])
    (count_id,) = enqueue_guarded(1, 0.1)  # waits, as every write does, until the holder is gone
    app.wait_for(lambda: app.lines("done"), timeout=40, what="the stopped worker to be killed and the jobs to run")
    app.wait_for(lambda: storage.job_state(job.provider_job_id)["state"] == "finished", timeout=20,
                 what="the stopping job to run again and finish")
    code, output = app.stop(proc)
    assert code == 0, output
    assert f"worker process {victim} has been stopped for 2 s (process_alive_threshold): killing it" in output or \
        f"process {victim} did not stop after TERM; killing it" in output, output
    killed = [line for line in output.splitlines() if "killing it" in line or "stopping it" in line]
    assert len(killed) == 1, f"only the stopped worker may be stopped or killed: {killed}"
    assert storage.job_state(count_id)["state"] == "finished"


# `solidstack jobs --mode async` whose worker threads end before they register.
ASYNC_WORKERS_CANNOT_START = """
import sys
from solidstack.queue.processes import runner

run = runner.Runner.run


def failing_run(self):
    if self.role.kind == "Worker":
        raise RuntimeError("this worker cannot start")
    return run(self)


runner.Runner.run = failing_run
sys.argv = ["solidstack", "jobs", "--skip-recurring", "--mode", "async"]
from solidstack.cli import main

main()
"""


def test_async_mode_backs_off_and_gives_up_too(app) -> None:  # type: ignore[no-untyped-def]
    configure(app, processes=1, extra="  supervisor:\n    max_restart_failures: 3\n")
    proc = app.start(command=[sys.executable, "-c", ASYNC_WORKERS_CANNOT_START])
    try:
        code = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the supervisor did not give up:\n{app.output(proc)}") from None
    output = app.output(proc)
    assert code == 1, output
    assert output.count("RuntimeError: this worker cannot start") == 3, output
    for wait in ("0.25", "0.5"):
        assert output.count(f"failed start(s) in a row); starting another in {wait} s") == 1, output
    assert "worker process failed to start 3 times in a row (last: its thread ended); giving up" in output, output
