"""The example app's skeleton: the magic-link model and jobs, and the demo the README runs."""

from __future__ import annotations

import email
import email.policy
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import solidstack
from solidstack.queue import Worker, queue_storage
from solidstack.queue import job as job_module
from solidstack.tasks import migrate_all

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "magic_link"


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "magic_link"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("storage", "__pycache__"))
    monkeypatch.syspath_prepend(str(root))
    for name in [m for m in sys.modules if m == "app" or m.startswith("app.")]:
        monkeypatch.delitem(sys.modules, name)
    # Other test modules define job classes with the seed's names; the app's own take their place here.
    monkeypatch.setattr(job_module, "_registry", dict(job_module._registry))
    for name in ("MagicLinkCleanupJob", "SendMagicLinkEmailJob"):
        job_module._registry.pop(name, None)
    migrate_all(solidstack.configure(root, "test"))
    return root


def test_cleanup_deletes_only_expired_links(example: Path) -> None:
    from app.models import MagicLink

    now = time.time()
    fresh = MagicLink.create("fresh@example.com", now=now)
    MagicLink.create("old@example.com", lifetime=60, now=now - 120)
    MagicLink.create("older@example.com", lifetime=60, now=now - 7200)
    assert MagicLink.cleanup(now=now) == 2
    assert MagicLink.count() == 1 and MagicLink.find_by_token(fresh.token) is not None
    assert MagicLink.cleanup(now=now) == 0


def test_jobs_send_the_email_and_log_the_cleanup(example: Path, caplog: pytest.LogCaptureFixture) -> None:
    from app.jobs import MagicLinkCleanupJob, SendMagicLinkEmailJob
    from app.models import MagicLink

    link = MagicLink.create("a@example.com")
    MagicLink.create("gone@example.com", lifetime=-1)
    SendMagicLinkEmailJob.perform_later("a@example.com", link.token)
    MagicLinkCleanupJob.perform_later()
    storage = queue_storage()
    worker = Worker(storage)
    worker.process_id = storage.register_process("Worker", "w", time.time())
    with caplog.at_level(logging.INFO, logger="app"):
        worker.poll(time.time())
        worker.shutdown(10)
    assert storage.counts()["finished"] == 2
    (path,) = (example / "storage" / "mailbox").iterdir()
    mail = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert mail["To"] == "a@example.com"
    assert f"/session/{link.token}" in mail.get_content()
    assert "Cleaned up 1 expired magic links" in caplog.text


def test_the_demo_runs_jobs_under_the_supervisor(example: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOLIDSTACK_")}
    result = subprocess.run([sys.executable, str(example / "demo.py"), "--seconds", "5.5"], cwd=example, env=env,
                            capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Performed SendMagicLinkEmailJob" in output
    assert "Cleaned up 1 expired magic links" in output
    assert "supervisor exited with 0" in output
    assert (example / "storage" / "development_queue.sqlite3").exists()
