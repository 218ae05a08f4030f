"""Turbo's own ``<turbo-cable-stream-source>`` in headless Chromium against solidstack's cable server.

The page loads the published ``@hotwired/turbo-rails`` bundle (Turbo with Action Cable; npm, locked in
``tests/cable/js/package-lock.json``) and is served with ``CableApp([StreamsChannel])`` at ``/cable`` by uvicorn
in a subprocess; the cable adapter is SQLite, and the ``<turbo-stream>`` is broadcast by yet another process,
as a job would. A name signed with another key is rejected: the server logs it and the page gets nothing.
Fails (never skips) without chromium or npm. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from cable_helpers import Server, child_env, ensure_js, free_port

sys.path.append(str(Path(__file__).parents[1]))  # browser_helpers, shared with tests/example
import solidstack
from browser_helpers import ARTIFACTS, headless_chromium
from solidstack.db import connect

pytestmark = pytest.mark.timeout(900)  # the first run on a new machine may install chromium with apt

HERE = Path(__file__).parent
APPEND = '<turbo-stream action="append" target="messages"><template>{}</template></turbo-stream>'
REJECTED = "Turbo::StreamsChannel rejected a stream name whose signature does not verify"


def broadcast_from_job(root: Path, *streams_and_messages: str) -> None:
    """Broadcast from another process, in this order, as a job would."""
    code = ("import sys; from solidstack.cable import broadcast\n"
            "for stream, message in zip(sys.argv[1::2], sys.argv[2::2]): broadcast(stream, message)")
    subprocess.run([sys.executable, "-c", code, *streams_and_messages], env=child_env(root), check=True,
                   timeout=30)


def wait_for_log(server: Server, text: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in server.output():
        if time.monotonic() > deadline:
            raise AssertionError(f"the server did not log {text!r}:\n{server.output()}")
        time.sleep(0.05)


def test_turbo_cable_stream_source_in_chromium(cable_app: solidstack.App, tmp_path: Path) -> None:
    ensure_js("@hotwired/turbo-rails")
    port = free_port()
    server = Server(cable_app.root, port, tmp_path / "server.log",
                    command=[sys.executable, str(HERE / "cable_turbo_page.py"), str(port)])
    server.start()
    problems: list[str] = []
    try:
        with headless_chromium() as browser:
            context = browser.new_context(viewport={"width": 640, "height": 320})
            page, forged = context.new_page(), context.new_page()
            for p in (page, forged):
                p.on("pageerror", lambda error: problems.append(f"page error: {error}"))
                p.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
            url = f"http://127.0.0.1:{port}"

            page.goto(url)
            # Turbo sets `connected` when the server confirms the subscription: the stream is being listened to.
            page.wait_for_selector("#board-42[connected]", state="attached", timeout=10_000)
            forged.goto(f"{url}/forged")
            forged.wait_for_selector("#board-7[connected]", state="attached", timeout=10_000)
            wait_for_log(server, REJECTED)

            hello = APPEND.format('<p id="m1">hello from a job</p>')
            control = APPEND.format('<p id="control">board 7</p>')
            # board:42 first, then board:7 on the same socket: once the forged page shows the control, the
            # board:42 message, had it been subscribed, would have arrived before it.
            broadcast_from_job(cable_app.root, "board:42", hello, "board:7", control)

            page.wait_for_selector("#messages #m1", timeout=10_000)
            assert page.inner_text("#m1") == "hello from a job"
            page.screenshot(path=str(ARTIFACTS / "cable_turbo_stream_received.png"))

            forged.wait_for_selector("#messages #control", timeout=10_000)
            assert forged.locator("#m1").count() == 0
            assert forged.inner_text("#messages") == "board 7"
            assert forged.get_attribute("#forged-board-42", "connected") is None
            forged.screenshot(path=str(ARTIFACTS / "cable_turbo_forged_name_rejected.png"))
            assert page.locator("#control").count() == 0  # and the first page has only its own stream
            context.close()
    finally:
        server.stop()
    assert problems == []
    assert server.output().count(REJECTED) == 1, server.output()
    # The page got it through the app's cable database, not through memory.
    rows = connect(cable_app.database("cable")).query("SELECT channel FROM solidstack_cable_messages ORDER BY id")
    assert [row["channel"] for row in rows] == ["board:42", "board:7"]

