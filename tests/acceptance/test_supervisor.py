"""The real `solidstack jobs` in a subprocess: many jobs, signals, kill -9, concurrent enqueuers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter

import pytest

from solidstack.queue import Job, queue_storage

pytestmark = pytest.mark.slow


def enqueue_counts(n: int, start: int = 0) -> None:
    from app.jobs import CountJob

    Job.perform_all_later([CountJob(i) for i in range(start, start + n)])


def test_thousand_jobs_across_two_worker_processes_none_lost_or_twice(jobs_app) -> None:
    enqueue_counts(1000)
    proc = jobs_app.start()
    jobs_app.wait_for(lambda: len(jobs_app.lines("count")) >= 1000, timeout=60, what="1000 jobs")
    time.sleep(0.2)  # would catch a late duplicate
    code, output = jobs_app.stop(proc)
    counts = Counter(int(parts[1]) for parts in jobs_app.lines("count"))
    assert set(counts) == set(range(1000))
    assert max(counts.values()) == 1, "a job ran twice"
    worker_pids = {parts[2] for parts in jobs_app.lines("count")}
    assert len(worker_pids) == 2, f"expected two worker processes, saw {worker_pids}"
    assert code == 0, output
    assert "database is locked" not in output
    assert queue_storage().counts() == {"ready": 0, "scheduled": 0, "claimed": 0, "blocked": 0, "failed": 0,
                                        "finished": 1000}
    assert queue_storage().processes() == []


def test_sigterm_lets_a_running_job_finish_and_exits_zero(jobs_app) -> None:
    from app.jobs import SlowJob

    job = SlowJob.perform_later(1, 1.5)
    proc = jobs_app.start()
    jobs_app.wait_for(lambda: jobs_app.lines("start"), what="the job to start")
    code, output = jobs_app.stop(proc, signal.SIGTERM)
    assert code == 0, output
    assert [parts[0] for parts in jobs_app.lines()] == ["start", "done"]
    assert queue_storage().job_state(job.provider_job_id)["state"] == "finished"
    assert queue_storage().processes() == []


def test_sigterm_releases_a_job_that_outlives_the_shutdown_timeout(jobs_app) -> None:
    from app.jobs import SlowJob

    jobs_app.configure(processes=1, shutdown_timeout=0.5)
    job = SlowJob.perform_later(1, 30)
    proc = jobs_app.start()
    jobs_app.wait_for(lambda: jobs_app.lines("start"), what="the job to start")
    started = time.monotonic()
    code, output = jobs_app.stop(proc, signal.SIGTERM)
    assert code == 0, output
    assert time.monotonic() - started < 10
    assert queue_storage().job_state(job.provider_job_id)["state"] == "ready"
    assert queue_storage().counts()["claimed"] == 0
    # It stays claimed until the worker has exited (its thread still runs it); the supervisor then hands it back.
    assert "1 job(s) still running after 0.5 s (shutdown_timeout)" in output, output
    assert "exited with status 0: 1 job(s) back to their queues" in output, output


def test_kill_9_of_a_worker_mid_job_runs_the_job_again(jobs_app) -> None:
    from app.jobs import SlowJob

    jobs_app.configure(processes=1)
    job = SlowJob.perform_later(1, 1.0)
    proc = jobs_app.start()
    jobs_app.wait_for(lambda: jobs_app.lines("start"), what="the job to start")
    victim = int(jobs_app.lines("start")[0][2])
    storage = queue_storage()
    assert victim in {p["pid"] for p in storage.processes()}
    os.kill(victim, signal.SIGKILL)
    jobs_app.wait_for(lambda: jobs_app.lines("done"), timeout=30, what="the job to run again and finish")
    starts = jobs_app.lines("start")
    assert len(starts) == 2 and int(starts[1][2]) != victim
    # The finish is committed a moment after the job's last line (with the worker's next claim).
    jobs_app.wait_for(lambda: storage.job_state(job.provider_job_id)["state"] == "finished", timeout=10,
                      what="the job's finish to be committed")
    assert victim not in {p["pid"] for p in storage.processes()}, "the killed worker's row was not pruned"
    code, output = jobs_app.stop(proc)
    assert code == 0, output
    assert "was killed by signal 9" in output


def test_sigquit_stops_at_once_and_leaves_nothing_claimed(jobs_app) -> None:
    from app.jobs import SlowJob

    jobs_app.configure(processes=1, shutdown_timeout=30)
    job = SlowJob.perform_later(1, 60)
    proc = jobs_app.start()
    jobs_app.wait_for(lambda: jobs_app.lines("start"), what="the job to start")
    started = time.monotonic()
    code, output = jobs_app.stop(proc, signal.SIGQUIT)
    assert time.monotonic() - started < 5
    assert code == 0, output
    storage = queue_storage()
    assert storage.job_state(job.provider_job_id)["state"] == "ready"
    assert storage.processes() == []


ENQUEUER = """
import sys
sys.path.insert(0, {root!r})
import solidstack
solidstack.configure({root!r}, "test")
from app.jobs import CountJob
for i in range({start}, {start} + {count}):
    CountJob.perform_later(i)
"""


def test_burst_of_enqueues_from_four_processes_while_workers_run(jobs_app) -> None:
    proc = jobs_app.start()
    enqueuers = [
        subprocess.Popen([sys.executable, "-c", textwrap.dedent(ENQUEUER.format(
            root=str(jobs_app.root), start=k * 250, count=250))], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        for k in range(4)
    ]
    for enqueuer in enqueuers:
        _out, err = enqueuer.communicate(timeout=60)
        assert enqueuer.returncode == 0, err
        assert "locked" not in err
    jobs_app.wait_for(lambda: len(jobs_app.lines("count")) >= 1000, timeout=60, what="1000 jobs")
    code, output = jobs_app.stop(proc)
    assert code == 0
    assert "database is locked" not in output
    counts = Counter(int(parts[1]) for parts in jobs_app.lines("count"))
    assert set(counts) == set(range(1000)) and max(counts.values()) == 1


def test_bin_jobs_from_install_processes_jobs(jobs_app) -> None:
    enqueue_counts(5)
    proc = jobs_app.start(command=[sys.executable, str(jobs_app.root / "bin" / "jobs")])
    jobs_app.wait_for(lambda: len(jobs_app.lines("count")) >= 5, what="5 jobs")
    code, output = jobs_app.stop(proc, signal.SIGINT)
    assert code == 0, output
    assert "Supervisor" in output and "started in fork mode" in output


def test_async_mode_runs_workers_as_threads(jobs_app) -> None:
    enqueue_counts(20)
    proc = jobs_app.start("--mode", "async")
    jobs_app.wait_for(lambda: len(jobs_app.lines("count")) >= 20, what="20 jobs")
    code, output = jobs_app.stop(proc)
    assert code == 0, output
    assert {parts[2] for parts in jobs_app.lines("count")} == {str(proc.pid)}


def test_check_reports_bad_config_and_exits_non_zero(jobs_app) -> None:
    ok = subprocess.run([sys.executable, "-m", "solidstack", "jobs", "check"], cwd=jobs_app.root,
                        env=jobs_app.env(), capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "CountJob" in ok.stdout and "SlowJob" in ok.stdout
    (jobs_app.root / "config" / "queue.yml").write_text("test:\n  workers:\n    - queues: 'a*b'\n")
    bad = subprocess.run([sys.executable, "-m", "solidstack", "jobs", "check"], cwd=jobs_app.root,
                         env=jobs_app.env(), capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2  # a configuration error
    assert "queue.yml [test] workers[0].queues" in bad.stderr and "'a*b'" in bad.stderr
    started = jobs_app.start()
    code, output = started.wait(timeout=30), jobs_app.output(started)
    assert code == 2 and "workers[0].queues" in output


def test_failed_jobs_from_the_cli(jobs_app) -> None:
    from solidstack.queue.storage import NewJob

    storage = queue_storage()
    (job_id,) = storage.enqueue([NewJob("default", "GhostJob", '{"args":[],"kwargs":{}}', 0, "g")], time.time())
    proc = jobs_app.start()
    jobs_app.wait_for(lambda: storage.counts()["failed"] == 1, what="the unknown job to fail")
    jobs_app.stop(proc)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "solidstack", "jobs", *args], cwd=jobs_app.root,
                              env=jobs_app.env(), capture_output=True, text=True, timeout=60)

    listing = cli("failed")
    assert "GhostJob" in listing.stdout and "unknown job class 'GhostJob'" in listing.stdout
    assert "1 job(s) back" in cli("retry", str(job_id)).stdout
    assert storage.job_state(job_id)["state"] == "ready"
    assert cli("retry").returncode == 2


def test_kill_9_of_the_supervisor_lets_children_wind_down_and_the_next_one_prunes_it(jobs_app) -> None:
    from app.jobs import SlowJob

    jobs_app.configure(processes=1)
    job = SlowJob.perform_later(1, 1.0)
    first = jobs_app.start()
    jobs_app.wait_for(lambda: jobs_app.lines("start"), what="the job to start")
    storage = queue_storage()
    supervisor_row = next(p for p in storage.processes() if p["kind"] == "Supervisor")
    first.kill()
    first.wait(10)
    # The orphaned worker sees its supervisor gone, finishes what it holds and deregisters.
    jobs_app.wait_for(lambda: storage.job_state(job.provider_job_id)["state"] == "finished", what="the job to finish")
    jobs_app.wait_for(lambda: [p["kind"] for p in storage.processes()] == ["Supervisor"], what="children to leave")
    second = jobs_app.start()
    jobs_app.wait_for(lambda: supervisor_row["id"] not in {p["id"] for p in storage.processes()},
                      what="the dead supervisor's row to be pruned")
    code, output = jobs_app.stop(second)
    assert code == 0, output
    assert "pruned dead process supervisor-" in output


def test_ctrl_c_to_the_whole_process_group_stops_everything(jobs_app) -> None:
    # A terminal's Ctrl-C, honcho and foreman signal every process of the group at once: children get the
    # signal directly as well as from the supervisor. Each round must end with every process gone.
    storage = queue_storage()
    for _round in range(5):
        enqueue_counts(30)
        proc = jobs_app.start()
        jobs_app.wait_for(lambda: len([p for p in storage.processes() if p["kind"] == "Worker"]) == 2,
                          what="two workers")
        os.killpg(proc.pid, signal.SIGINT)
        try:
            code = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"supervisor did not stop:\n{jobs_app.output(proc)}") from None
        assert code == 0, jobs_app.output(proc)
        assert "did not stop in time" not in jobs_app.output(proc), jobs_app.output(proc)
        jobs_app.wait_for(lambda: storage.processes() == [], timeout=10, what="every process to deregister")
        assert subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True).stdout == b""
    assert storage.counts()["claimed"] == 0


# `solidstack jobs` whose children take a second to build their roles: a stop signal sent in that time reaches
# a child before it would have had its own handlers.
SLOW_CHILD_START = """
import sys, time
from solidstack.queue.processes import supervisor

build = supervisor.RoleSpec.build


def slow_build(self, storage, config):
    time.sleep(1.0)
    return build(self, storage, config)


supervisor.RoleSpec.build = slow_build
sys.argv = ["solidstack", "jobs"]
from solidstack.cli import main

main()
"""


def test_a_stop_in_a_childs_first_moments_is_not_lost(jobs_app) -> None:
    storage = queue_storage()
    proc = jobs_app.start(command=[sys.executable, "-c", SLOW_CHILD_START])
    jobs_app.wait_for(lambda: any(p["kind"] == "Supervisor" for p in storage.processes()), what="the supervisor")
    time.sleep(0.3)  # its children are forked and building their roles
    asked = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    try:
        code = proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"supervisor did not stop:\n{jobs_app.output(proc)}") from None
    output = jobs_app.output(proc)
    assert code == 0, output
    # Lost, the signal left each child running until the supervisor killed it after shutdown_timeout + 2 s.
    assert "did not stop in time" not in output, output
    assert time.monotonic() - asked < 5, output
    jobs_app.wait_for(lambda: storage.processes() == [], timeout=10, what="every process to deregister")


# `solidstack jobs` whose first child hangs before it can register (as one blocked for good on a lock the fork
# copied locked would); the children after it start normally.
FIRST_CHILD_HANGS = """
import os, sys, time
from solidstack.queue.processes import supervisor

build = supervisor.RoleSpec.build


def hanging_build(self, storage, config):
    try:
        os.close(os.open("first-child", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return build(self, storage, config)
    time.sleep(600)


supervisor.RoleSpec.build = hanging_build
sys.argv = ["solidstack", "jobs", "--skip-recurring"]
from solidstack.cli import main

main()
"""

ONE_WORKER_YML = """
test:
  process_heartbeat_interval: 1
  process_alive_threshold: 2
  workers:
    - queues: "*"
      threads: 3
      processes: 1
      polling_interval: 0.02
"""


def test_a_child_that_never_starts_is_killed_and_replaced(jobs_app) -> None:
    (jobs_app.root / "config" / "queue.yml").write_text(ONE_WORKER_YML)
    enqueue_counts(20)
    proc = jobs_app.start(command=[sys.executable, "-c", FIRST_CHILD_HANGS])
    # With one worker configured, nothing would ever run the jobs if the hung child were left alone.
    jobs_app.wait_for(lambda: len(jobs_app.lines("count")) == 20, timeout=30, what="the 20 jobs")
    code, output = jobs_app.stop(proc)
    assert code == 0, output
    assert "did not start within 2 s (process_alive_threshold); killing it" in output, output
    assert "killed by signal 9 before it started (1 failed start(s) in a row); starting another in 0.25 s" in output, \
        output


@pytest.mark.parametrize(
    ("recurring", "reason"),
    [
        ("test:\n  nightly:\n    class: NoSuchJob\n    schedule: every day at 3am\n", "nightly: unknown job class"),
        ("test:\n  often:\n    class: CountJob\n    args: [1]\n    schedule: every fortnight\n",
         "often.schedule: cannot read schedule 'every fortnight'"),
        ("test:\n  broken: [\n", "not valid YAML"),
    ],
)
def test_check_validates_recurring_yml(jobs_app, recurring: str, reason: str) -> None:
    (jobs_app.root / "config" / "recurring.yml").write_text(recurring)
    result = subprocess.run([sys.executable, "-m", "solidstack", "jobs", "check"], cwd=jobs_app.root,
                            env=jobs_app.env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "recurring.yml" in result.stderr and reason in result.stderr


def test_a_recurring_task_added_and_removed_at_run_time(jobs_app) -> None:
    # No recurring.yml tasks: the scheduler runs because queue.yml enables tasks added at run time.
    from app.jobs import CountJob

    from solidstack.queue import schedule_recurring_task, unschedule_recurring_task

    queue_yml = jobs_app.root / "config" / "queue.yml"
    queue_yml.write_text(queue_yml.read_text() + "  scheduler:\n    dynamic_tasks_enabled: true\n"
                                                  "    polling_interval: 0.2\n")
    proc = jobs_app.start()
    schedule_recurring_task("tick", CountJob, schedule="every second", args=[7])
    jobs_app.wait_for(lambda: len(jobs_app.lines("count 7")) >= 2, timeout=20, what="two runs of the task")
    listed = subprocess.run([sys.executable, "-m", "solidstack", "recurring", "list"], cwd=jobs_app.root,
                            env=jobs_app.env(), capture_output=True, text=True, timeout=30)
    assert "tick (added at run time)" in listed.stdout and "CountJob [7]" in listed.stdout, listed
    assert unschedule_recurring_task("tick")
    time.sleep(0.5)  # the scheduler drops it within its polling interval (0.2 s)
    runs = len(jobs_app.lines("count 7"))
    time.sleep(2.2)  # two more seconds would have made two more runs
    assert len(jobs_app.lines("count 7")) == runs
    code, output = jobs_app.stop(proc)
    assert code == 0, output
    assert "recurring task tick: CountJob every second (added at run time)" in output
