"""The seed's verification list, on the reference app, each as a test.

- ``bin/jobs`` starts the supervisor, and enqueuing the email job processes it;
- ``MagicLinkCleanupJob`` removes expired (and used) links, and only those;
- the cache works (``cache.write("test", "value")`` / ``cache.read("test")``), across processes;
- (cable: a broadcast reaches a subscribed client — ``test_magic_link_live.py``, through the app's /cable).
"""

from __future__ import annotations

import email
import email.policy
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest
from magic_link_helpers import copy_example, process_env, use_app, wait_for

import solidstack
from solidstack.queue import Worker, queue_storage
from solidstack.tasks import migrate_all


def test_cleanup_deletes_expired_and_used_links_only(example: Path) -> None:
    from app.models import MagicLink

    now = time.time()
    fresh = MagicLink.create("fresh@example.com", now=now)
    MagicLink.create("old@example.com", lifetime=60, now=now - 120)
    MagicLink.create("older@example.com", lifetime=60, now=now - 7200)
    used = MagicLink.create("used@example.com", now=now)
    assert MagicLink.redeem(used.token, now=now)[0] == "signed_in"
    assert MagicLink.cleanup(now=now) == 3
    assert MagicLink.count() == 1 and MagicLink.find_by_token(fresh.token) is not None
    assert MagicLink.cleanup(now=now) == 0


def test_jobs_send_the_email_and_log_the_cleanup(example: Path, caplog: pytest.LogCaptureFixture) -> None:
    from app.jobs import MagicLinkCleanupJob, SendMagicLinkEmailJob
    from app.models import MagicLink

    from solidstack.cable import broadcasts

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
    found = MagicLink.find(link.id)
    assert found is not None and found.sent_at is not None
    # The "check your inbox" page of this link was told (cable's test adapter records broadcasts).
    assert broadcasts(link.stream) == [{"status": "sent", "email": "a@example.com", "sent_at": found.sent_at}]


def test_the_email_goes_by_smtp_when_a_server_is_configured(example: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from app import mailer, smtp_sink
    from app.jobs import SendMagicLinkEmailJob
    from app.models import MagicLink
    from magic_link_helpers import free_port

    port = free_port()
    monkeypatch.setenv("SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SMTP_PORT", str(port))
    link = MagicLink.create("smtp@example.com")
    with pytest.raises(OSError):  # no server yet: the job would be retried (retry_on OSError)
        SendMagicLinkEmailJob.perform_now("smtp@example.com", link.token)
    server = smtp_sink.start(port=port)
    try:
        SendMagicLinkEmailJob.perform_now("smtp@example.com", link.token)
    finally:
        server.stop()
    (mail,) = mailer.delivered()
    assert mail.to == "smtp@example.com" and f"/session/{link.token}" in mail.body


def test_cache_write_and_read(example: Path, engine: str) -> None:
    from solidstack.cache import cache

    cache.write("test", "value")
    assert cache.read("test") == "value"
    # The cache is the database of config/database.yml: another process reads the same entry.
    code = ("import sys, solidstack; from solidstack.cache import cache; solidstack.configure(sys.argv[1], 'test'); "
            "print(cache.read('test')); cache.write('from-child', 42)")
    result = subprocess.run([sys.executable, "-c", code, str(example)], capture_output=True, text=True,
                            timeout=60, env=process_env())
    assert result.stdout.strip() == "value", result.stderr
    assert cache.read("from-child") == 42
    assert (example / "storage" / "test_cache.sqlite3").exists() == (engine == "sqlite")


def test_one_command_migrates_all_four_databases(tmp_path: Path) -> None:
    root = copy_example(tmp_path / "magic_link")
    result = subprocess.run([sys.executable, "-m", "solidstack", "db", "migrate"], cwd=root, capture_output=True,
                            text=True, timeout=60, env=process_env(SOLIDSTACK_ENV="production"))
    assert result.returncode == 0, result.stderr
    for entry in ("primary", "queue", "cache", "cable"):
        assert entry in result.stdout
    for name in ("production", "production_queue", "production_cache", "production_cable"):
        assert (root / "storage" / f"{name}.sqlite3").exists()


@pytest.mark.timeout(60)
def test_bin_jobs_starts_the_supervisor_and_processes_the_email_job(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    root = copy_example(tmp_path / "magic_link")
    migrate_all(solidstack.configure(root, "development"))
    log = root / "storage" / "jobs.log"
    with log.open("wb") as out:
        jobs = subprocess.Popen([sys.executable, "bin/jobs"], cwd=root, stdout=out, stderr=subprocess.STDOUT,
                                env=process_env(), start_new_session=True)
    try:
        assert wait_for(lambda: "Supervisor supervisor-" in log.read_text() and "Worker worker-" in log.read_text()),\
            log.read_text()
        use_app(root, "development", monkeypatch)
        from app.jobs import SendMagicLinkEmailJob
        from app.models import MagicLink

        kinds = {row["kind"] for row in queue_storage().processes()}
        assert {"Supervisor", "Worker", "Dispatcher"} <= kinds
        link = MagicLink.create("jobs@example.com")
        SendMagicLinkEmailJob.perform_later("jobs@example.com", link.token)
        assert wait_for(lambda: (found := MagicLink.find(link.id)) is not None and found.sent_at is not None)
        assert wait_for(lambda: "Sent magic link to" in log.read_text())
    finally:
        jobs.terminate()
        code = jobs.wait(30)
    assert code == 0, log.read_text()
    assert queue_storage().processes() == []


def test_the_demo_runs_jobs_under_the_supervisor(tmp_path: Path) -> None:
    root = copy_example(tmp_path / "magic_link")
    result = subprocess.run([sys.executable, str(root / "demo.py"), "--seconds", "5.5"], cwd=root,
                            env=process_env(), capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Sent magic link to" in output
    assert "Cleaned up 1 expired magic links" in output
    assert "supervisor exited with 0" in output
    assert (root / "storage" / "development_queue.sqlite3").exists()
