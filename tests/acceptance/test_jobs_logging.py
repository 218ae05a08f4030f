"""`solidstack jobs` logging and exit statuses: --log-level, SOLIDSTACK_LOG_LEVEL, queue.yml's log_level,
--log-format json, and 2 for a configuration error against 1 at run time."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from solidstack.queue import Job


@pytest.fixture(autouse=True)
def _forget_the_app_package() -> Iterator[None]:
    """Each test's app is a package named ``app`` in its own folder: a later test module must not find this one's
    in ``sys.modules`` (test_liveness imports ``app.guarded`` from its own)."""
    yield
    for name in [name for name in sys.modules if name == "app" or name.startswith("app.")]:
        del sys.modules[name]


def enqueue_counts(n: int) -> None:
    from app.jobs import CountJob

    Job.perform_all_later([CountJob(i) for i in range(n)])


def test_json_lines_carry_the_job_at_debug(jobs_app) -> None:
    enqueue_counts(3)
    proc = jobs_app.start("--log-format", "json", "--log-level", "debug")
    jobs_app.wait_for(lambda: len(jobs_app.lines("count")) >= 3, what="3 jobs")
    jobs_app.wait_for(lambda: jobs_app.output(proc).count('"Performed CountJob') >= 3, what="3 job lines")
    code, output = jobs_app.stop(proc)
    assert code == 0, output
    entries = [json.loads(line) for line in output.splitlines() if line.strip()]  # every line is one object
    assert {"time", "level", "logger", "message", "pid"} <= set(entries[0])
    performed = [e for e in entries if e["message"].startswith("Performed CountJob")]
    assert len(performed) == 3
    assert all(e["job_class"] == "CountJob" and isinstance(e["job_id"], int) and e["level"] == "debug"
               for e in performed)
    assert any("Supervisor" in e["message"] and "started" in e["message"] for e in entries)


def test_info_by_default_logs_starts_and_stops_but_not_each_job(jobs_app) -> None:
    enqueue_counts(5)
    proc = jobs_app.start()
    jobs_app.wait_for(lambda: len(jobs_app.lines("count")) >= 5, what="5 jobs")
    code, output = jobs_app.stop(proc)
    assert code == 0, output
    assert "started in fork mode" in output and "Supervisor" in output
    assert "Performed" not in output


def test_queue_yml_log_level_is_read_and_validated(jobs_app) -> None:
    queue_yml = jobs_app.root / "config" / "queue.yml"
    queue_yml.write_text(queue_yml.read_text().replace("test:\n", "test:\n  log_level: warning\n", 1))
    enqueue_counts(2)
    proc = jobs_app.start()
    jobs_app.wait_for(lambda: len(jobs_app.lines("count")) >= 2, what="2 jobs")
    code, output = jobs_app.stop(proc)
    assert code == 0, output
    assert "started" not in output  # INFO lines are below warning
    queue_yml.write_text(queue_yml.read_text().replace("log_level: warning", "log_level: loud"))
    bad = jobs_app.start()
    code = bad.wait(timeout=30)
    assert code == 2, jobs_app.output(bad)
    assert "queue.yml [test] log_level" in jobs_app.output(bad) and "unknown log level 'loud'" in jobs_app.output(bad)


def test_the_environment_variable_sets_the_level_and_a_bad_one_is_a_config_error(jobs_app) -> None:
    def run(level: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "solidstack", "jobs"], cwd=jobs_app.root,
                              env={**jobs_app.env(), "SOLIDSTACK_LOG_LEVEL": level}, capture_output=True, text=True,
                              timeout=60)

    bad = run("chatty")
    assert bad.returncode == 2
    assert "SOLIDSTACK_LOG_LEVEL" in bad.stderr and "unknown log level 'chatty'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_usage_and_config_errors_exit_2_runtime_database_errors_exit_1(jobs_app) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "solidstack", *args], cwd=jobs_app.root, env=jobs_app.env(),
                              capture_output=True, text=True, timeout=60)

    assert run("jobs", "--log-level", "loud").returncode == 2  # click's usage error
    assert run("jobs", "--no-such-option").returncode == 2
    (jobs_app.root / "config" / "queue.yml").write_text("test:\n  workers: 3\n")
    assert run("jobs", "check").returncode == 2
    assert run("jobs").returncode == 2


def test_an_unsupported_database_adapter_is_a_configuration_error(jobs_app) -> None:
    (jobs_app.root / "config" / "database.yml").write_text(
        "test:\n  primary:\n    adapter: mysql2\n    database: app\n")
    for args in (("db", "migrate"), ("jobs", "check"), ("jobs",)):
        done = subprocess.run([sys.executable, "-m", "solidstack", *args], cwd=jobs_app.root, env=jobs_app.env(),
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, (args, done.stderr)
        assert "database.yml" in done.stderr and "adapter" in done.stderr and "'mysql2'" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
