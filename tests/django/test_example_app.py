"""examples/django_app end to end: its one command (bin/dev) started as a user would, driven in headless Chromium:
a submitted form enqueues the email task on commit, the worker process sends it with Django's mail API, and the
page says so live over the Channels consumer (SolidChannelLayer); the stats page is served from SolidCache."""

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def example(tmp_path: Path) -> str:
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


@pytest.mark.slow
def test_email_task_updates_the_page_live(example: str) -> None:
    with headless_chromium() as browser:
        page = browser.new_page()
        page.goto(example)
        page.wait_for_function("document.getElementById('live').textContent.includes('connected')", timeout=15000)
        page.fill("input[name=email]", "b@example.com")
        page.click("button[type=submit]")
        page.wait_for_selector("#notices li:has-text('Email to b@example.com sent')", timeout=30000)
        assert page.text_content("#status") == "Queued for b@example.com"
        page.screenshot(path=str(ARTIFACTS / "django-example-notice.png"))
        page.goto(f"{example}/mailbox")
        assert "A note for b@example.com" in page.text_content("body")
        page.goto(f"{example}/stats")
        built = page.text_content("#built")
        time.sleep(0.5)
        page.reload()
        assert page.text_content("#built") == built  # served from the cache
