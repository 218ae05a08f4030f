"""Results, cancel and timeouts with the real `solidstack jobs` supervisor and CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest

from solidstack.queue import Job
from solidstack.queue.features.outcomes import JobFailed

pytestmark = pytest.mark.slow

OUTCOME_JOBS = '''
import os, time
from solidstack.queue import Job
from app.jobs import record


class OcpAddJob(Job):
    def perform(self, a, b):
        return {"sum": a + b, "pid": os.getpid()}


class OcpPatientJob(Job):
    def perform(self):
        record(f"patient started {os.getpid()}")
        while not self.cancelled:
            time.sleep(0.01)
        record(f"patient stopped {os.getpid()}")
        return "stopped"


class OcpHungJob(Job):
    timeout = 0.5

    def perform(self):
        record(f"hung started {os.getpid()}")
        time.sleep(3600)  # never checks self.cancelled: its thread is stuck
'''


@pytest.fixture(params=["sqlite", "postgresql"])
def app(request: pytest.FixtureRequest) -> Any:
    jobs_app = request.getfixturevalue("jobs_app" if request.param == "sqlite" else "pg_jobs_app")
    (jobs_app.root / "app" / "outcome_jobs.py").write_text(textwrap.dedent(OUTCOME_JOBS))
    (jobs_app.root / "config" / "environment.py").write_text("import app.jobs, app.outcome_jobs  # noqa: F401\n")
    jobs_app.configure(processes=1, shutdown_timeout=2)
    forget_app_modules()
    return jobs_app


def cli(app: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "solidstack", "jobs", *args], cwd=app.root, env=app.env(),
                          capture_output=True, text=True, timeout=60)


def test_results_and_cancel_across_processes(app: Any) -> None:
    from app.outcome_jobs import OcpAddJob, OcpPatientJob

    proc = app.start()
    added = OcpAddJob.perform_later(2, 3)
    value = added.result(timeout=30)
    assert value["sum"] == 5 and value["pid"] != proc.pid
    assert Job.result(added.provider_job_id) == value
    shown = cli(app, "result", str(added.provider_job_id))
    assert shown.returncode == 0 and '"status": "finished"' in shown.stdout and '"sum": 5' in shown.stdout

    patient = OcpPatientJob.perform_later()
    app.wait_for(lambda: app.lines("patient started"), what="the patient job to start")
    done = cli(app, "cancel", str(patient.provider_job_id))
    assert done.returncode == 0, done.stderr
    assert f"job {patient.provider_job_id}: running" in done.stdout
    app.wait_for(lambda: app.lines("patient stopped"), what="the patient job to see self.cancelled")

    waiting = OcpAddJob.set(wait=600).perform_later(1, 1)
    both = cli(app, "cancel", str(waiting.provider_job_id), "987654")
    assert both.returncode == 1
    assert f"job {waiting.provider_job_id}: cancelled" in both.stdout
    assert "job 987654: no such job" in both.stderr
    again = cli(app, "cancel", str(added.provider_job_id))
    assert again.returncode == 1 and f"job {added.provider_job_id}: it is finished already" in again.stderr
    code, output = app.stop(proc, signal.SIGTERM)
    assert code == 0, output


def test_a_hung_plain_job_times_out_and_its_worker_process_is_replaced(app: Any) -> None:
    from app.jobs import CountJob
    from app.outcome_jobs import OcpHungJob

    proc = app.start()
    hung = OcpHungJob.perform_later()
    begun = time.monotonic()
    with pytest.raises(JobFailed) as failed:
        hung.result(timeout=30)
    assert "JobTimeout" in failed.value.error["exception_class"]
    assert time.monotonic() - begun < 20
    first_pid = app.lines("hung started")[0][2]
    # Its thread cannot be stopped: after the grace the worker stops gracefully and a fresh process replaces it.
    app.wait_for(lambda: "still running long past their timeout" in app.output(proc), timeout=30,
                 what="the worker to give up on its hung thread")
    CountJob.perform_later(1)
    app.wait_for(lambda: app.lines("count 1"), timeout=30, what="a job run after the replacement")
    assert app.lines("count 1")[0][2] != first_pid
    from solidstack.queue import queue_storage

    assert queue_storage().job_result(hung.provider_job_id).status == "failed"  # not run again, not lost
    code, output = app.stop(proc, signal.SIGTERM)
    assert code == 0, output


def forget_app_modules() -> None:
    """Another test's app may have been imported as ``app`` already (from its own folder): import this one's."""
    for name in [name for name in sys.modules if name == "app" or name.startswith("app.")]:
        del sys.modules[name]
