"""examples/django_app end to end: its one command (bin/dev) started as a user would, driven in headless Chromium:
a submitted form enqueues the email task on commit, the worker process sends it with Django's mail API, and the
page says so live over the Channels consumer (SolidChannelLayer) and over solidstack's Action Cable endpoint
mounted in Django's ASGI app (also from another process); the stats page is served from SolidCache; a staff user
signed in at /admin/ watches the jobs dashboard mounted at /jobs/ update live."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from browser_helpers import ARTIFACTS, headless_chromium

ROOT = Path(__file__).resolve().parents[2]
DEV = ROOT / "examples" / "django_app" / "bin" / "dev"
MANAGE = ROOT / "examples" / "django_app" / "manage.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def app_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("django-example")


@pytest.fixture(scope="module")
def example(app_root: Path) -> str:
    """The example, started once for the module (its storage in ``app_root``)."""
    tmp_path = app_root
    port = free_port()
    env = {**os.environ, "DJANGO_APP_ROOT": str(tmp_path)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    log = (tmp_path / "dev.log").open("w")
    process = subprocess.Popen([sys.executable, str(DEV), "--port", str(port)], env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
                log.close()
                raise AssertionError(f"the example did not start:\n{(tmp_path / 'dev.log').read_text()}") from None
            time.sleep(0.2)
    try:
        yield url
    finally:
        process.send_signal(signal.SIGTERM)  # bin/dev stops its web server and worker
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
        log.close()


def manage(app_root: Path, *args: str, **env: str) -> str:
    """``manage.py`` of the example, as another process on the same storage."""
    environ = {**os.environ, "DJANGO_APP_ROOT": str(app_root), "DJANGO_SETTINGS_MODULE": "mysite.settings", **env}
    done = subprocess.run([sys.executable, str(MANAGE), *args], env=environ, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.slow
def test_email_task_updates_the_page_live(example: str, app_root: Path) -> None:
    with headless_chromium() as browser:
        page = browser.new_page()
        page.goto(example)
        page.wait_for_function("document.getElementById('live').textContent.includes('connected')", timeout=15000)
        page.wait_for_selector("#sent[data-cable=connected]", timeout=15000)  # /cable, @rails/actioncable
        page.fill("input[name=email]", "b@example.com")
        page.click("button[type=submit]")
        page.wait_for_selector("#notices li:has-text('Email to b@example.com sent')", timeout=30000)
        assert page.text_content("#status") == "Queued for b@example.com"
        # The task's broadcast (in the worker process) reached the page over solidstack's Action Cable endpoint.
        page.wait_for_function("document.getElementById('sent-count').textContent === '1'", timeout=15000)
        assert page.text_content("#sent-last") == "(last: b@example.com)"
        # ... and so does one from any other process sharing the cable database.
        manage(app_root, "shell", "-c", "from solidstack.cable import broadcast; "
                                        "broadcast('emails_sent', {'email': 'shell@example.com'})")
        page.wait_for_function("document.getElementById('sent-count').textContent === '2'", timeout=15000)
        assert page.text_content("#sent-last") == "(last: shell@example.com)"
        page.screenshot(path=str(ARTIFACTS / "django-example-notice.png"))
        page.goto(f"{example}/mailbox")
        assert "A note for b@example.com" in page.text_content("body")
        page.goto(f"{example}/stats")
        built = page.text_content("#built")
        time.sleep(0.5)
        page.reload()
        assert page.text_content("#built") == built  # served from the cache


@pytest.mark.slow
def test_jobs_dashboard_mounted_in_django_updates_live(example: str, app_root: Path) -> None:
    manage(app_root, "createsuperuser", "--noinput", "--username", "staff", "--email", "staff@example.com",
           DJANGO_SUPERUSER_PASSWORD="not-a-real-password")
    with headless_chromium() as browser:
        page = browser.new_page()
        response = page.goto(f"{example}/jobs/")
        assert response is not None and response.status == 403  # not signed in: closed
        page.goto(f"{example}/admin/login/?next=/jobs/")
        page.fill("input[name=username]", "staff")
        page.fill("input[name=password]", "not-a-real-password")
        page.click("input[type=submit]")
        page.wait_for_url("**/jobs/default/", timeout=15000)
        page.wait_for_selector("#live[data-cable=connected]", timeout=15000)
        finished = int(page.text_content("main [data-count=finished]") or "0")
        updates = int(page.evaluate("document.body.dataset.updates || '0'"))
        # Another tab sends a note: the worker runs the task, and the dashboard's counts move without a reload.
        other = browser.new_page()
        other.goto(example)
        other.fill("input[name=email]", "c@example.com")
        other.click("button[type=submit]")
        other.wait_for_selector("#notices li:has-text('Email to c@example.com sent')", timeout=30000)
        page.wait_for_function(f"Number(document.querySelector('main [data-count=finished]').textContent) > {finished}",
                               timeout=15000)
        assert int(page.evaluate("document.body.dataset.updates || '0'")) > updates
        assert page.url.endswith("/jobs/default/")  # the same page, updated in place
        page.screenshot(path=str(ARTIFACTS / "django-example-dashboard.png"))
