"""The documentation site as a reader sees it: built, served, and opened in headless Chromium. Every guide page
is in the navigation, the search index loads, code blocks are highlighted, and a screenshot of each main page
goes to ``test-artifacts/docs-*.png`` (look at them)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from browser_helpers import ARTIFACTS, headless_chromium

ROOT = Path(__file__).resolve().parents[1]
MAIN_PAGES = {"getting-started": "", "jobs": "guide/jobs/", "production": "guide/production/",
              "dashboard": "guide/dashboard/", "django": "guide/django/", "configuration": "reference/configuration/",
              "cli": "reference/cli/"}


def _guide_titles() -> list[str]:
    """The titles under ``Guide:`` in mkdocs.yml's nav (read as text: the file has !!python tags)."""
    text = (ROOT / "mkdocs.yml").read_text()
    section = text.split("  - Guide:\n", 1)[1].split("\n  - ", 1)[0]
    return [line.split(":", 1)[0].strip(" -") for line in section.splitlines() if line.strip()]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_built_site_reads_in_a_browser(docs_site: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    built, site = docs_site
    assert built.returncode == 0, built.stdout + built.stderr
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"], cwd=site,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with headless_chromium() as browser:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(20_000)
            for name, path in MAIN_PAGES.items():
                for _ in range(50):  # the server may still be starting
                    try:
                        response = page.goto(f"http://127.0.0.1:{port}/{path}")
                        break
                    except Exception:
                        page.wait_for_timeout(100)
                assert response is not None and response.status == 200, (name, path)
                assert page.locator("article h1").count() == 1, name
                page.screenshot(path=str(ARTIFACTS / f"docs-{name}.png"))
            page.goto(f"http://127.0.0.1:{port}/")
            nav = page.locator("nav.md-nav--primary").inner_text()
            for title in _guide_titles():
                assert title in nav, f"{title!r} is not in the site's navigation"
            assert page.locator("pre code .kn, pre code .k").count() > 0  # highlighted Python
            page.goto(f"http://127.0.0.1:{port}/search/search_index.json")
            assert '"docs"' in page.content()
    finally:
        server.terminate()
        server.wait(timeout=10)
