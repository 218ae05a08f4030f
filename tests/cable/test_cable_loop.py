"""The ASGI endpoint never reads the database on its event loop: subscribing a stream (which reads the table's
newest id) runs in a worker thread, also from ``async def subscribed`` and for a connection's internal stream."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.testclient import TestClient

from solidstack.cable import CableApp, Channel, Connection, MemoryPubSub


class RecordingPubSub(MemoryPubSub):
    """Records whether each subscribe ran on an event loop (where a database read would block every socket)."""

    def __init__(self) -> None:
        super().__init__()
        self.on_loop: list[tuple[str, bool]] = []

    def subscribe(self, stream: str, callback: Any, *, raw: bool = False) -> None:
        try:
            asyncio.get_running_loop()
            on_loop = True
        except RuntimeError:
            on_loop = False
        self.on_loop.append((stream, on_loop))
        threading.Event().wait(0.05)  # as slow as a round trip to a distant server
        super().subscribe(stream, callback, raw=raw)


class Identified(Connection):
    identified_by = ("current_user",)

    def connect(self) -> None:
        self.current_user = "alice"


class AsyncRoom(Channel):
    async def subscribed(self) -> None:
        self.stream_from(f"room:{self.params['room']}")


class PlainRoom(Channel):
    def subscribed(self) -> None:
        self.stream_from(f"plain:{self.params['room']}")


def _frame(ws: Any) -> dict[str, Any]:
    """The next frame that is not a ping."""
    while True:
        frame = ws.receive_json()
        if frame.get("type") != "ping":
            return frame  # type: ignore[no-any-return]


def test_subscribing_streams_never_runs_on_the_event_loop() -> None:
    bus = RecordingPubSub()
    cable = CableApp([AsyncRoom, PlainRoom], connection_class=Identified, pubsub=bus)
    app = Starlette(routes=[WebSocketRoute("/cable", cable)])
    with TestClient(app) as client, client.websocket_connect("/cable", subprotocols=["actioncable-v1-json"]) as ws:
        assert _frame(ws) == {"type": "welcome"}
        for channel in ("AsyncRoom", "PlainRoom"):
            identifier = json.dumps({"channel": channel, "room": 1})
            ws.send_json({"command": "subscribe", "identifier": identifier})
            assert _frame(ws) == {"identifier": identifier, "type": "confirm_subscription"}
        # Confirmed only once the stream is subscribed: a broadcast right after it is delivered.
        bus.broadcast("room:1", {"n": 1})
        assert _frame(ws) == {"identifier": json.dumps({"channel": "AsyncRoom", "room": 1}), "message": {"n": 1}}
    streams = [stream for stream, _ in bus.on_loop]
    assert "room:1" in streams and "plain:1" in streams and any(s.startswith("action_cable/") for s in streams)
    assert [entry for entry in bus.on_loop if entry[1]] == []
