"""The worker command, enqueue on commit, migrate and check, with real processes on both engines."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import transaction
from djproject import tasks as t

from solidstack.django.tasks import enqueue_on_commit
from solidstack.queue import queue_storage

HERE = Path(__file__).parent


def wait_for(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def manage(*args: str, **popen: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, str(HERE / "djproject" / "manage.py"), *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **popen)  # type: ignore[call-overload]


def stop(process: subprocess.Popen[str]) -> str:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    assert process.stdout is not None
    with process.stdout:
        return process.stdout.read()


def test_enqueue_on_commit_waits_for_the_commit(project: Path) -> None:
    storage = queue_storage()
    with transaction.atomic():
        enqueue_on_commit(t.add, 1, 2)
        assert storage.counts()["ready"] == 0  # not before the commit
    assert storage.counts()["ready"] == 1


def test_enqueue_on_commit_is_dropped_on_rollback(project: Path) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue_on_commit(t.add, 1, 2)
        raise RuntimeError("roll back")
    assert queue_storage().counts()["ready"] == 0


def test_enqueue_on_commit_refuses_bad_arguments_at_once(project: Path) -> None:
    from django.tasks.exceptions import InvalidTask

    with pytest.raises(InvalidTask, match=r"djproject\.tasks\.add: argument 0"), transaction.atomic():
        enqueue_on_commit(t.add, object(), 2)


def test_migrate_creates_the_tables_and_check_passes(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    call_command("migrate", verbosity=1, interactive=False)
    assert "solidstack: queue" in capsys.readouterr().out
    call_command("check")  # raises SystemCheckError on any error


def test_check_reports_a_bad_queue_config(project: Path) -> None:
    from django.core.management.base import SystemCheckError
    from django.test import override_settings

    from solidstack.django.conf import configure_from_settings

    with override_settings(SOLIDSTACK={"ENV": "test", "QUEUE": {"workers": [{"threads": 0}]}}):
        configure_from_settings()
        with pytest.raises(SystemCheckError, match=r"settings.SOLIDSTACK\['QUEUE'\].*threads"):
            call_command("check")


@pytest.mark.slow
def test_worker_command_runs_tasks_and_a_killed_task_runs_again(project: Path) -> None:
    os.environ["SLOW_SECONDS"] = "2"
    try:
        done = t.add.enqueue(20, 22)
        t.slow.enqueue("k")
        worker = manage("solidstack", "jobs")
        try:
            started = wait_for(lambda: [r for r in t.performed() if r[0] == "slow-start"], what="the slow task")
            os.kill(started[0][2], signal.SIGKILL)  # the worker process running it dies mid-task
            wait_for(lambda: any(r[0] == "slow-done" for r in t.performed()), timeout=60, what="the rerun")
        finally:
            output = stop(worker)
    finally:
        del os.environ["SLOW_SECONDS"]
    starts = [r for r in t.performed() if r[0] == "slow-start"]
    assert len(starts) == 2 and starts[0][2] != starts[1][2], output
    assert ["add", 20, 22] in t.performed()
    from django.tasks import TaskResultStatus, default_task_backend

    assert default_task_backend.get_result(done.id).status == TaskResultStatus.SUCCESSFUL
    assert queue_storage().counts()["claimed"] == 0


def test_worker_command_runs_recurring_tasks(project: Path) -> None:
    (project / "config").mkdir()
    (project / "config" / "recurring.yml").write_text(
        "test:\n  adder:\n    class: djproject.tasks.add\n    args: [1, 1]\n    schedule: every second\n")
    worker = manage("solidstack", "jobs")
    try:
        wait_for(lambda: ["add", 1, 1] in t.performed(), timeout=30, what="the recurring task")
    finally:
        output = stop(worker)
    assert "Traceback" not in output, output


def test_check_then_migrate_from_the_command_line(tmp_path: Path) -> None:
    """On a fresh project `check` names each unmigrated database; `migrate` is not stopped by that (its checks run
    before it migrates), creates the tables, and `check` then passes."""
    env = {**os.environ, "SOLIDSTACK_TEST_ROOT": str(tmp_path)}
    manage_py = [sys.executable, str(HERE / "djproject" / "manage.py")]
    before = subprocess.run([*manage_py, "check"], env=env, capture_output=True, text=True, timeout=60)
    assert before.returncode != 0 and "solidstack.E002" in before.stderr and "queue database" in before.stderr
    migrated = subprocess.run([*manage_py, "migrate"], env=env, capture_output=True, text=True, timeout=60)
    assert migrated.returncode == 0, migrated.stderr
    assert "solidstack: queue" in migrated.stdout and "solidstack: cable" in migrated.stdout
    after = subprocess.run([*manage_py, "check"], env=env, capture_output=True, text=True, timeout=60)
    assert after.returncode == 0, after.stderr


def test_bad_solidstack_settings_are_named(project: Path) -> None:
    from django.core.exceptions import ImproperlyConfigured
    from django.test import override_settings

    from solidstack.django.conf import configure_from_settings

    with override_settings(SOLIDSTACK={"QUEUES": {}}), pytest.raises(ImproperlyConfigured, match="unknown key"):
        configure_from_settings()
    with override_settings(SOLIDSTACK={"DATABASES": {"queue": "nope"}}), \
            pytest.raises(ImproperlyConfigured, match=r"names 'nope', which settings.DATABASES does not define"):
        configure_from_settings()
    with override_settings(SOLIDSTACK={"DATABASES": {"jobs": "default"}}), \
            pytest.raises(ImproperlyConfigured, match="unknown part"):
        configure_from_settings()


@pytest.mark.parametrize("engine", ["sqlite"])
def test_a_sqlite_alias_of_databases_holds_the_queue(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from django.conf import settings
    from django.test import override_settings

    from solidstack.config import current_app
    from solidstack.django.conf import configure_from_settings, migrate_parts

    path = project / "jobs.sqlite3"
    databases = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
                 "jobs": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(path)}}
    monkeypatch.setattr(settings, "DATABASES", databases)  # (override_settings warns for DATABASES)
    with override_settings(SOLIDSTACK={"ENV": "test", "DATABASES": {"queue": "jobs"}}):
        configure_from_settings()
        migrate_parts()
        t.add.enqueue(1, 1)
        assert current_app().database("queue").database == str(path)
        assert queue_storage().counts()["ready"] == 1 and path.exists()


def test_the_worker_prints_djangos_task_lines_at_debug_only(project: Path) -> None:
    """Django's INFO lines per task (started, finished) are the worker's at --log-level debug (decision 0706); a
    failed task's ERROR line is printed at the default level too."""
    t.add.enqueue(1, 2)
    t.boom.enqueue()
    worker = manage("solidstack", "jobs")
    try:
        wait_for(lambda: ["add", 1, 2] in t.performed() and queue_storage().counts()["failed"] == 1,
                 what="both tasks")
    finally:
        output = stop(worker)
    assert "Task id=" in output and "state=FAILED" in output, output
    assert "state=SUCCESSFUL" not in output and "state=RUNNING" not in output, output
    t.add.enqueue(3, 4)
    worker = manage("solidstack", "jobs", "--log-level", "debug")
    try:
        wait_for(lambda: ["add", 3, 4] in t.performed(), what="the task")
        time.sleep(0.3)  # its finished line follows the task's return
    finally:
        output = stop(worker)
    assert "state=RUNNING" in output and "state=SUCCESSFUL" in output, output
