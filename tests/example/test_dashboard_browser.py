"""The jobs dashboard end to end, in headless Chromium, mounted at /jobs in the example app under bin/dev.

Open the dashboard; see a failed job's backtrace; retry it and watch it finish without reloading (the counts
arrive over the dashboard's cable); pause a queue and see the workers leave its new job alone until it is
resumed. Screenshots of every page go to test-artifacts/dashboard_*.png.

The failure is recorded through the queue's storage (``fail``, as a worker records one, with the traceback of a
real exception): the example's jobs do not fail on demand, and the retried job must then succeed for real.
"""

from __future__ import annotations

import time
import traceback
from typing import Any

import pytest
from magic_link_helpers import Running, use_app

from browser_helpers import ARTIFACTS

pytestmark = pytest.mark.timeout(900)  # the first run on a new machine may install chromium with apt


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"dashboard_{name}.png"), full_page=True)


def count(page: Any, state: str) -> str:
    return page.inner_text(f'.cards [data-count="{state}"]')


def wait_count(page: Any, state: str, value: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while count(page, state) != value:
        assert time.monotonic() < deadline, f"{state} count stayed {count(page, state)!r}, expected {value!r}"
        page.wait_for_timeout(100)


def test_dashboard_in_a_browser(live_app: Running, browser: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    use_app(live_app.root, "development", monkeypatch)
    from app.jobs import SendMagicLinkEmailJob
    from app.models import MagicLink

    from solidstack.queue import Queue, queue_storage
    from solidstack.queue.admin.inspect import QueueInspector
    from solidstack.queue.recurring import schedule_recurring_task

    storage = queue_storage()
    inspector = QueueInspector(storage)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"{r.status} {r.url}"))
    base = f"{live_app.url}/jobs"

    # A failed job, with an argument and an error that are HTML, and a real traceback.
    queue = Queue("default")
    queue.pause()
    link = MagicLink.create("<script>alert('x')</script>@example.com")
    job = SendMagicLinkEmailJob("<script>alert('x')</script>@example.com", link.token)
    job.enqueue()
    job_id = job.provider_job_id
    # Claimed by nobody, as a worker's claim would (claims skip the paused queue, which holds it from the workers).
    with storage.db.transaction() as conn:
        ids = storage.db.array([job_id])
        assert conn.execute(storage.sql["delete_ready"], {"ids": ids}).rowcount == 1
        conn.execute(storage.sql["insert_claimed"], {"ids": ids, "process_id": None, "now": time.time()})
    try:
        raise ConnectionRefusedError("<b>SMTP</b> server refused the connection")
    except ConnectionRefusedError as exc:
        message, backtrace = str(exc), traceback.format_exception(exc)
    storage.fail(job_id, None, {"exception_class": "ConnectionRefusedError", "message": message,
                                "backtrace": [line.rstrip() for line in backtrace]}, time.time())
    queue.resume()
    schedule_recurring_task("nightly_report", SendMagicLinkEmailJob, schedule="every day at 6am",
                            args=["ops@example.com", "tok"], description="A dynamic task for the screenshot")
    SendMagicLinkEmailJob.set(wait=3600).perform_later("later@example.com", "tok-later")

    page.goto(f"{base}/")
    page.wait_for_url("**/jobs/default/")
    page.wait_for_selector('#live[data-cable="connected"]', timeout=10_000)
    assert count(page, "failed") == "1"
    page.wait_for_selector("#chart-throughput svg")
    shot(page, "1_queues")

    page.click('nav.main a[href$="/jobs/failed"]')
    page.wait_for_selector(f'tr[data-job="{job_id}"]')
    assert page.locator("script", has_text="alert").count() == 0  # shown as text, never run
    assert "<script>alert('x')</script>@example.com" in page.inner_text(f'tr[data-job="{job_id}"]')
    shot(page, "2_failed")

    page.click(f'tr[data-job="{job_id}"] a')
    page.wait_for_selector("#backtrace")
    assert "ConnectionRefusedError: <b>SMTP</b> server refused" in page.inner_text("#backtrace")
    assert "[REDACTED]" in page.inner_text("#arguments")  # the token, by perform's parameter name
    assert link.token not in page.content()
    shot(page, "3_failed_job")

    # Retry, then watch the job finish on the queues page without reloading it.
    page.click('button[data-action="retry"]')
    page.wait_for_selector(".flash")
    assert page.inner_text(".flash") == "Retried 1 job."
    page.goto(f"{base}/default/")
    page.wait_for_selector('#live[data-cable="connected"]')
    page.evaluate("window.notReloaded = true")
    wait_count(page, "failed", "0")
    wait_count(page, "finished", "1")
    assert page.evaluate("window.notReloaded") is True
    assert inspector.job(job_id).state == "finished"
    shot(page, "4_retried_and_finished_live")

    # Pause the queue from the page: its new job waits; resume: it runs, and the page shows it live.
    page.click('tr[data-queue="default"] button:has-text("Pause")')
    page.wait_for_selector(".flash")
    assert page.inner_text(".flash").startswith("Paused queue default")
    page.wait_for_selector('tr[data-queue="default"] .tag.paused')
    page.wait_for_selector('#live[data-cable="connected"]')
    page.evaluate("window.notReloaded = true")
    waiting = MagicLink.create("paused@example.com")
    SendMagicLinkEmailJob.perform_later("paused@example.com", waiting.token)
    wait_count(page, "ready", "1")
    page.wait_for_timeout(1500)  # many polls of the workers: the paused queue's job stays ready
    assert count(page, "ready") == "1" and count(page, "finished") == "1"
    assert page.inner_text('tr[data-queue="default"] .size') == "1"
    shot(page, "5_paused_queue")
    page.click('tr[data-queue="default"] button:has-text("Resume")')
    page.wait_for_selector(".flash")
    page.wait_for_selector('#live[data-cable="connected"]')
    wait_count(page, "finished", "2")
    wait_count(page, "ready", "0")

    for name, path in [("6_scheduled", "/default/jobs/scheduled"), ("7_finished", "/default/jobs/finished"),
                       ("8_processes", "/default/processes"), ("9_recurring", "/default/recurring"),
                       ("10_cache_and_cable", "/default/stats"),
                       ("11_clear_confirm", "/default/queues/clear?queue=default")]:
        page.goto(base + path)
        page.wait_for_selector("main h1")
        shot(page, name)
    page.goto(f"{base}/default/processes")
    assert "worker" in page.inner_text("table.grid")
    page.goto(f"{base}/default/recurring")
    assert "nightly_report" in page.inner_text("table.grid")
    assert problems == []
    context.close()
