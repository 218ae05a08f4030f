"""CableApp mounted at /cable inside a Starlette app served by uvicorn; the package's public names."""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path
from typing import Any

from cable_helpers import Server, broadcast_from_child, free_port
from websockets.sync.client import connect

import solidstack
import solidstack.cable


def frames(ws: Any, count: int) -> list[dict[str, Any]]:
    """The next ``count`` frames that are not pings."""
    found: list[dict[str, Any]] = []
    while len(found) < count:
        frame = json.loads(ws.recv(timeout=10))
        if frame.get("type") != "ping":
            found.append(frame)
    return found


def test_mounted_in_a_starlette_app(cable_app: solidstack.App, tmp_path: Path) -> None:
    port = free_port()
    server = Server(cable_app.root, port, tmp_path / "web.log", command=[
        sys.executable, "-m", "uvicorn", "cable_test_app:web", "--port", str(port), "--log-level", "warning",
    ])
    server.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            assert response.read() == b"home"
        for path in ("/cable", "/mounted/"):
            with connect(f"ws://127.0.0.1:{port}{path}?user=web", subprotocols=["actioncable-v1-json"],
                         open_timeout=10) as ws:
                assert frames(ws, 1) == [{"type": "welcome"}]
                identifier = json.dumps({"channel": "ChatChannel", "room": "web"})
                ws.send(json.dumps({"command": "subscribe", "identifier": identifier}))
                assert frames(ws, 1)[0]["type"] == "confirm_subscription"
                broadcast_from_child(cable_app.root, "chat:web", path)
                assert frames(ws, 1) == [{"identifier": identifier, "message": path}]
    finally:
        server.stop()
    assert "Traceback" not in server.output()


def test_public_names() -> None:
    for name in solidstack.cable.__all__:
        assert getattr(solidstack.cable, name) is not None, name
    assert solidstack.cable.CableApp.__module__ == "solidstack.cable.asgi"
