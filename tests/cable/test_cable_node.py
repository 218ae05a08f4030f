"""The published ``@rails/actioncable`` npm client, unchanged, under Node.js against a real uvicorn server.

The client is installed by ``npm ci`` from ``tests/cable/js/package-lock.json`` when ``node_modules`` is
missing. Without node or npm the test fails: CI has both, and a skipped browser-protocol test hides breakage.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from cable_helpers import Server, broadcast_from_child, ensure_js

JS = Path(__file__).parent / "js"


def ensure_client() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node and npm are needed to run the @rails/actioncable client test (install Node.js >= 18)")
    ensure_js("@rails/actioncable", "ws")
    return node


class NodeClient:
    def __init__(self, node: str, url: str, origin: str) -> None:
        self.process = subprocess.Popen([node, str(JS / "scenario.js"), url, origin], cwd=JS, text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if line.startswith("{"):
                self.events.put(json.loads(line))

    def send(self, **command: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def expect(self, event: str, name: str | None = None, timeout: float = 20.0) -> dict[str, Any]:
        """The next event of that kind (others are skipped), or fail with what node printed."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                item = self.events.get(timeout=left)
            except queue.Empty:
                break
            if item["event"] == event and (name is None or item.get("name") == name):
                return item
        raise AssertionError(f"no {event!r} event for {name!r}; node printed:\n{''.join(self.lines)}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.send(do="exit")
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture
def node() -> str:
    return ensure_client()


def test_the_actioncable_npm_client(node: str, server: Server) -> None:
    client = NodeClient(node, server.url + "?user=nodeuser", f"http://127.0.0.1:{server.port}")
    try:
        assert client.expect("ready")["version"]
        client.send(do="subscribe", name="chat", params={"channel": "ChatChannel", "room": "node"})
        client.send(do="subscribe", name="secret", params={"channel": "SecretChannel"})
        client.expect("connected", "chat")
        client.expect("rejected", "secret")

        broadcast_from_child(server.root, "chat:node", {"text": "from another process"})
        assert client.expect("received", "chat")["data"] == {"text": "from another process"}

        client.send(do="perform", name="chat", action="speak", data={"text": "hello"})
        assert client.expect("received", "chat")["data"] == {"from": "nodeuser", "text": "hello"}
        client.send(do="perform", name="chat", action="echo", data={"text": "just me"})
        assert client.expect("received", "chat")["data"] == {"echo": "just me"}

        # Restart the server: the client is told to reconnect, does so on its own, and resubscribes.
        server.stop()
        client.expect("disconnected", "chat")
        server.start()
        client.expect("connected", "chat", timeout=40)
        broadcast_from_child(server.root, "chat:node", {"text": "after restart"})
        assert client.expect("received", "chat")["data"] == {"text": "after restart"}
    finally:
        client.stop()
    assert "Traceback" not in server.output()
