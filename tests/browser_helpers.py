"""Headless Chromium for the browser tests of every folder (Debian's chromium, driven by Playwright)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium() -> str:
    """Debian's chromium, installed with apt when missing (CI runs as root). Never a downloaded browser."""
    if not Path(CHROMIUM).exists():
        result = subprocess.run("apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium",
                                shell=True, capture_output=True, text=True, timeout=900)
        if not Path(CHROMIUM).exists():
            pytest.fail(f"chromium is missing and apt-get could not install it:\n{result.stdout[-2000:]}"
                        f"{result.stderr[-2000:]}")
    return CHROMIUM


@contextmanager
def headless_chromium() -> Iterator[Any]:
    """A launched browser; screenshots go to ``ARTIFACTS``. Playwright's sync API keeps an event loop in this
    thread while it runs, which other tests' ``asyncio.run`` must not meet: use it for one module at most."""
    from playwright.sync_api import sync_playwright

    path = chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / ".gitignore").write_text("*\n")  # screenshots are artifacts of a run, never committed
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
