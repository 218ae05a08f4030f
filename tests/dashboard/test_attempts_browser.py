"""A job's page in headless Chromium: each failed attempt with its error and full backtrace (decision 0048).

A job that failed twice (retried after the first error, failed for good after the second), recorded through the
queue's storage as a worker records them, with the tracebacks of real exceptions whose messages are HTML. The
dashboard runs under uvicorn in this process. Screenshot: test-artifacts/dashboard_job_attempts.png.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from browser_helpers import ARTIFACTS, headless_chromium
from solidstack.dashboard import dashboard_app
from solidstack.db.migrate import migrate, package_migrations
from solidstack.db.sqlite import SQLiteDatabase
from solidstack.queue.job import error_record
from solidstack.queue.rows import NewJob
from solidstack.queue.storage import QueueStorage

pytestmark = pytest.mark.timeout(300)


def deliver(address: str, attempt: int) -> None:
    """Two frames deep, as a job's perform would be."""
    connect(address, attempt)


def connect(address: str, attempt: int) -> None:
    if attempt == 1:
        raise ConnectionResetError(f"<b>SMTP</b> connection to {address} reset by peer")
    raise TimeoutError(f"SMTP server for {address} did not answer within 10 s")


def failure(attempt: int) -> dict[str, object]:
    try:
        deliver("mx.example.com", attempt)
    except OSError as exc:
        return error_record(exc)
    raise AssertionError("deliver did not raise")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """The dashboard of a queue holding a job that failed twice: its URL and the job's id."""
    import uvicorn

    storage = QueueStorage(SQLiteDatabase(tmp_path / "queue.sqlite3"))
    migrate(storage.db, package_migrations("solidstack.queue", "sqlite"))
    now = time.time()
    pid = storage.register_process("Worker", "worker-7f3a", now - 60)
    arguments = json.dumps({"args": ["newsletter-42"], "kwargs": {"recipients": 1200}})
    [job_id] = storage.enqueue([NewJob("mailers", "DeliverNewsletter", arguments, 0, "aj-42")], now - 60)
    storage.claim(pid, ["*"], 1, now - 58)
    assert storage.retry_later(job_id, pid, 1, now - 50, now - 55, error=failure(1))
    storage.dispatch_due(now - 50, 10)
    storage.claim(pid, ["*"], 1, now - 49)
    assert storage.fail(job_id, pid, failure(2), now - 39)

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(dashboard_app(storage, allow_unauthenticated=True), host="127.0.0.1",
                                           port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the dashboard did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", job_id
    finally:
        server.should_exit = True
        thread.join(10)


def test_a_jobs_page_shows_each_failed_attempts_backtrace(served: tuple[str, int]) -> None:
    url, job_id = served
    with headless_chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on("response", lambda r: r.status >= 400 and problems.append(f"{r.status} {r.url}"))
        page.goto(f"{url}/default/job/{job_id}")
        page.wait_for_selector("#attempts")
        attempts = page.locator("li.attempt")
        assert attempts.count() == 2
        # Newest first; the newest is the job's error, shown above, so its attempt starts folded.
        assert [attempts.nth(i).get_attribute("data-attempt") for i in range(2)] == ["2", "1"]
        assert attempts.nth(1).locator("pre.backtrace").is_visible()
        assert not attempts.nth(0).locator("pre.backtrace").is_visible()
        attempts.nth(0).locator("summary").click()
        newest, first = (attempts.nth(i).locator("pre.backtrace") for i in range(2))
        assert newest.is_visible()
        for text, frames in ((first.inner_text(), "ConnectionResetError: <b>SMTP</b> connection to mx.example.com"),
                             (newest.inner_text(), "TimeoutError: SMTP server for mx.example.com did not answer")):
            assert "Traceback (most recent call last)" in text and frames in text
            assert "in deliver" in text and "in connect" in text  # the full backtrace, every frame
        assert "Retried" in attempts.nth(1).inner_text() and "Failed" in attempts.nth(0).inner_text()
        assert "worker-7f3a" in attempts.nth(1).inner_text()
        assert page.locator("#attempts b").count() == 0  # the error's HTML is text, never markup
        assert page.inner_text("#error-attempt").startswith("Attempt 2, run by worker-7f3a (pid ")
        assert problems == []
        page.screenshot(path=str(ARTIFACTS / "dashboard_job_attempts.png"), full_page=True)
