"""The real `solidstack jobs` on PostgreSQL: jobs across processes, signals, kill -9, wake-ups by NOTIFY from
another process, a lost connection, and the errors of an entry that points at the wrong place."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from engines import postgres_database_yml
from solidstack.queue import Job, queue_storage

pytestmark = pytest.mark.slow


def enqueue_counts(n: int, start: int = 0) -> None:
    from app.jobs import CountJob

    Job.perform_all_later([CountJob(i) for i in range(start, start + n)])


def test_jobs_across_two_worker_processes_none_lost_or_twice_and_term_stops_gracefully(pg_jobs_app: Any) -> None:
    enqueue_counts(1000)
    proc = pg_jobs_app.start()
    pg_jobs_app.wait_for(lambda: len(pg_jobs_app.lines("count")) >= 1000, timeout=60, what="1000 jobs")
    time.sleep(0.3)  # would catch a late duplicate
    code, output = pg_jobs_app.stop(proc, signal.SIGTERM)
    counts = Counter(int(parts[1]) for parts in pg_jobs_app.lines("count"))
    assert set(counts) == set(range(1000))
    assert max(counts.values()) == 1, "a job ran twice"
    assert len({parts[2] for parts in pg_jobs_app.lines("count")}) == 2, "expected two worker processes"
    assert code == 0, output
    assert "Traceback" not in output, output
    assert queue_storage().counts() == {"ready": 0, "scheduled": 0, "claimed": 0, "blocked": 0, "failed": 0,
                                        "finished": 1000}
    assert queue_storage().processes() == []


def test_sigterm_lets_a_running_job_finish(pg_jobs_app: Any) -> None:
    from app.jobs import SlowJob

    job = SlowJob.perform_later(1, 1.0)
    proc = pg_jobs_app.start()
    pg_jobs_app.wait_for(lambda: pg_jobs_app.lines("start"), what="the job to start")
    code, output = pg_jobs_app.stop(proc, signal.SIGTERM)
    assert code == 0, output
    assert [parts[0] for parts in pg_jobs_app.lines()] == ["start", "done"]
    assert queue_storage().job_state(job.provider_job_id)["state"] == "finished"


def test_kill_9_of_a_worker_mid_job_runs_the_job_again(pg_jobs_app: Any) -> None:
    from app.jobs import SlowJob

    pg_jobs_app.configure(processes=1)
    job = SlowJob.perform_later(1, 1.0)
    proc = pg_jobs_app.start()
    pg_jobs_app.wait_for(lambda: pg_jobs_app.lines("start"), what="the job to start")
    victim = int(pg_jobs_app.lines("start")[0][2])
    os.kill(victim, signal.SIGKILL)
    pg_jobs_app.wait_for(lambda: pg_jobs_app.lines("done"), timeout=30, what="the job to run again")
    code, output = pg_jobs_app.stop(proc)
    starts = pg_jobs_app.lines("start")
    assert len(starts) == 2 and starts[1][2] != str(victim), starts
    assert code == 0, output
    state = queue_storage().job_state(job.provider_job_id)
    assert state["state"] == "finished"
    assert queue_storage().counts()["claimed"] == 0


ENQUEUE_ONE = """
import sys, time
sys.path.insert(0, {root!r})
import solidstack
solidstack.configure({root!r}, "test")
from app.jobs import StampJob
StampJob.perform_later(time.time())
"""

STAMP_JOB = '''

class StampJob(Job):
    def perform(self, enqueued_at):
        record(f"stamp {time.time() - enqueued_at:.6f}")
'''


def test_a_job_enqueued_by_another_process_starts_at_once_through_notify(pg_jobs_app: Any) -> None:
    """The worker polls every 5 s: only the NOTIFY from the enqueuing process can start these jobs in time."""
    with (pg_jobs_app.root / "app" / "jobs.py").open("a") as f:
        f.write(STAMP_JOB)
    (pg_jobs_app.root / "config" / "queue.yml").write_text(
        "test:\n  dispatchers:\n    - polling_interval: 5\n  workers:\n    - queues: '*'\n      threads: 1\n"
        "      processes: 1\n      polling_interval: 5\n")
    proc = pg_jobs_app.start()
    pg_jobs_app.wait_for(lambda: any(p["kind"] == "Worker" for p in queue_storage().processes()), timeout=20,
                         what="the worker to register")
    time.sleep(1.0)  # the worker past its first poll, asleep on its 5 s interval
    script = ENQUEUE_ONE.format(root=str(pg_jobs_app.root))
    for n in range(3):
        subprocess.run([sys.executable, "-c", script], check=True, env=pg_jobs_app.env(), timeout=60)
        pg_jobs_app.wait_for(lambda n=n: len(pg_jobs_app.lines("stamp")) > n, timeout=10, what="the stamp job")
        time.sleep(0.5)
    code, output = pg_jobs_app.stop(proc)
    delays = [float(parts[1]) for parts in pg_jobs_app.lines("stamp")]
    assert len(delays) == 3
    # Generous bounds on a loaded machine; polling alone would take up to 5 s.
    assert max(delays) < 2.0, delays
    assert code == 0, output


def test_jobs_survive_the_connections_being_terminated(pg_jobs_app: Any) -> None:
    """pg_terminate_backend of every connection of the app mid-run: logged in a line, reconnected, nothing lost."""
    from engines import admin_execute

    enqueue_counts(300)
    proc = pg_jobs_app.start()
    pg_jobs_app.wait_for(lambda: len(pg_jobs_app.lines("count")) >= 50, timeout=60, what="the first jobs")
    dbname = queue_storage().db.params["dbname"]
    for _ in range(3):
        admin_execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{dbname}' "
                      "AND pid <> pg_backend_pid()")
        # An enqueue that races the termination (its connection still open when it is sent) raises instead of
        # being sent twice (decision 0065); once the backends have gone, the pool replaces their connections.
        time.sleep(1.0)
        enqueue_counts(100, start=300 + 100 * _)
        time.sleep(0.5)
    pg_jobs_app.wait_for(lambda: len(set(int(p[1]) for p in pg_jobs_app.lines("count"))) >= 600, timeout=90,
                         what="every job after the terminations")
    code, output = pg_jobs_app.stop(proc)
    assert set(int(p[1]) for p in pg_jobs_app.lines("count")) == set(range(600))
    assert code == 0, output
    counts = queue_storage().counts()
    assert counts["claimed"] == 0 and counts["ready"] == 0 and counts["finished"] >= 600 - counts["failed"]
    assert counts["failed"] == 0


# -- bad input through the real CLI ---------------------------------------------------------------------------


def run_cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOLIDSTACK_", "SOLID_QUEUE_"))}
    env.update(SOLIDSTACK_ENV="test", PYTHONPATH=str(root))
    return subprocess.run([sys.executable, "-m", "solidstack", *args], cwd=root, env=env, capture_output=True,
                          text=True, timeout=60)


def bad_app(tmp_path: Path, url: str) -> Path:
    from solidstack.tasks import install

    root = tmp_path / "bad"
    (root / "config").mkdir(parents=True)
    (root / "config" / "database.yml").write_text(postgres_database_yml(url))
    install(root, "postgresql")
    return root


@pytest.mark.parametrize("command", [("db", "migrate"), ("jobs", "check"), ("jobs",)])
def test_wrong_port_is_one_clear_line_naming_the_entry(tmp_path: Path, command: tuple[str, ...]) -> None:
    from engines import require_postgres

    require_postgres()
    root = bad_app(tmp_path, "postgresql://postgres@127.0.0.1:1/nothing")
    result = run_cli(root, *command)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert "cannot connect to the queue database postgresql://postgres@127.0.0.1:1/nothing" in output, output
    assert "config/database.yml [test] queue" in output, output


def test_wrong_database_name_and_unmigrated_database(tmp_path: Path) -> None:
    from engines import postgres_database

    with postgres_database(create=False) as url:
        root = bad_app(tmp_path, url)
        for command in (("jobs", "check"), ("jobs", "status")):
            result = run_cli(root, *command)
            output = result.stdout + result.stderr
            assert result.returncode != 0 and "Traceback" not in output, output
            assert "does not exist: run `solidstack db migrate`" in output, output
        from engines import admin_execute

        admin_execute(f'CREATE DATABASE "{url.rsplit("/", 1)[1]}"')  # there, but without tables
        result = run_cli(root, "jobs", "status")
        output = result.stdout + result.stderr
        assert result.returncode != 0 and "Traceback" not in output, output
        assert "is not migrated" in output and "run `solidstack db migrate`" in output, output
        result = run_cli(root, "db", "migrate")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "0001_create_queue_tables" in result.stdout
        assert run_cli(root, "jobs", "status").returncode == 0


def test_a_server_restart_mid_run_loses_nothing(make_jobs_app: Any) -> None:
    """The server restarted under a running `solidstack jobs` (its own throwaway cluster: the shared server is
    never restarted): every job runs, none twice, nothing is left claimed, the log says so in plain lines."""
    from engines import ThrowawayCluster, postgres_database_yml, require_postgres

    require_postgres()
    cluster = ThrowawayCluster()
    try:
        app = make_jobs_app(postgres_database_yml(f"{cluster.url}/restart_test"))
        enqueue_counts(3000)
        proc = app.start()
        app.wait_for(lambda: len(app.lines("count")) >= 50, timeout=60, what="the first jobs")
        assert len(app.lines("count")) < 3000, "every job ran before the restart: it was not mid-run"
        cluster.restart()
        enqueue_counts(200, start=3000)
        app.wait_for(lambda: len({int(p[1]) for p in app.lines("count")}) >= 3200, timeout=120,
                     what="every job after the restart")
        code, output = app.stop(proc)
        counts = Counter(int(p[1]) for p in app.lines("count"))
        assert set(counts) == set(range(3200))
        assert code == 0, output
        assert queue_storage().counts()["claimed"] == 0
        assert "Traceback" not in output, output
        assert "retrying quietly until it answers" in output and "answers again" in output, output
    finally:
        import solidstack

        solidstack._reset_parts()
        cluster.stop()


ENQUEUER = """
import sys
sys.path.insert(0, {root!r})
import solidstack
solidstack.configure({root!r}, "test")
from app.jobs import CountJob
for i in range({start}, {start} + {count}):
    CountJob.perform_later(i)
"""


def test_three_supervisors_and_three_enqueuers_run_every_job_once(pg_jobs_app: Any) -> None:
    """Three supervisors of two workers each on one database while three other processes enqueue one job at a
    time: SKIP LOCKED claims give every job to exactly one worker."""
    procs = [pg_jobs_app.start() for _ in range(3)]
    enqueuers = [subprocess.Popen([sys.executable, "-c", ENQUEUER.format(root=str(pg_jobs_app.root), start=k * 700,
                                                                        count=700)],
                                  env=pg_jobs_app.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for k in range(3)]
    for enqueuer in enqueuers:
        _out, err = enqueuer.communicate(timeout=120)
        assert enqueuer.returncode == 0, err
    pg_jobs_app.wait_for(lambda: len(pg_jobs_app.lines("count")) >= 2100, timeout=120, what="2100 jobs")
    time.sleep(0.3)  # would catch a late duplicate
    outputs = [pg_jobs_app.stop(proc) for proc in procs]
    counts = Counter(int(parts[1]) for parts in pg_jobs_app.lines("count"))
    assert set(counts) == set(range(2100))
    assert max(counts.values()) == 1, "a job ran twice"
    assert len({parts[2] for parts in pg_jobs_app.lines("count")}) >= 4, "the work was not shared"
    for code, output in outputs:
        assert code == 0 and "Traceback" not in output, output
    assert queue_storage().counts()["claimed"] == 0 and queue_storage().processes() == []


def test_listen_false_runs_jobs_by_polling_without_a_listening_connection(make_jobs_app: Any) -> None:
    """For poolers in transaction mode (pgbouncer drops LISTEN): no LISTEN anywhere, the workers poll."""
    from engines import admin_execute, postgres_database

    with postgres_database(create=False) as url:
        app = make_jobs_app(postgres_database_yml(url, listen=False))
        proc = app.start()
        enqueue_counts(50)
        app.wait_for(lambda: len(app.lines("count")) >= 50, timeout=60, what="50 jobs by polling")
        dbname = url.rsplit("/", 1)[1]
        import psycopg

        with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
            listening = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND query LIKE "
                                     "'LISTEN%%'", (dbname,)).fetchone()[0]
        assert listening == 0
        code, output = app.stop(proc)
        assert code == 0, output
        import solidstack

        solidstack._reset_parts()
        admin_execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def test_behind_pgbouncer_in_transaction_mode_with_listen_false(make_jobs_app: Any) -> None:
    """pgbouncer (transaction pooling) drops LISTEN and, before 1.21, named prepared statements: with
    `listen: false` and `prepared_statements: false` the queue migrates and runs every job, by polling."""
    from engines import Pgbouncer, postgres_database

    with postgres_database() as url:
        bouncer = Pgbouncer()
        try:
            app = make_jobs_app(postgres_database_yml(bouncer.url(url.rsplit("/", 1)[1]), listen=False,
                                                      prepared_statements=False))
            proc = app.start()
            enqueue_counts(400)
            app.wait_for(lambda: len(app.lines("count")) >= 400, timeout=90, what="400 jobs through pgbouncer")
            time.sleep(0.3)
            code, output = app.stop(proc)
            counts = Counter(int(p[1]) for p in app.lines("count"))
            assert set(counts) == set(range(400)) and max(counts.values()) == 1
            assert code == 0 and "Traceback" not in output, output
            assert queue_storage().counts()["claimed"] == 0
            # It really went through pgbouncer (its log has the logins to this database), in transaction mode.
            assert f"db={url.rsplit('/', 1)[1]}" in bouncer.log(), bouncer.log()[-2000:]
            assert "pool_mode = transaction" in (bouncer.dir / "pgbouncer.ini").read_text()
        finally:
            import solidstack

            solidstack._reset_parts()
            bouncer.stop()


def test_async_mode_runs_workers_as_threads_sharing_one_pool_and_one_listener(pg_jobs_app: Any) -> None:
    enqueue_counts(200)
    proc = pg_jobs_app.start("--mode", "async")
    pg_jobs_app.wait_for(lambda: len(pg_jobs_app.lines("count")) >= 200, timeout=60, what="200 jobs")
    code, output = pg_jobs_app.stop(proc)
    assert code == 0 and "Traceback" not in output, output
    assert len({parts[2] for parts in pg_jobs_app.lines("count")}) == 1  # one process
    assert sorted(int(parts[1]) for parts in pg_jobs_app.lines("count")) == list(range(200))
