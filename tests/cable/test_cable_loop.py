"""The ASGI endpoint never reads the database on its event loop: subscribing a stream (which reads the table's
newest id) runs in a worker thread, also from ``async def subscribed`` and for a connection's internal stream."""

from __future__ import annotations

import asyncio
import json
import threading
import time
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


class SlowPubSub(MemoryPubSub):
    """Subscribing ``slow:*`` streams waits until ``gate`` opens (a database that does not answer)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def subscribe(self, stream: str, callback: Any, *, raw: bool = False) -> None:
        if stream.startswith("slow:"):
            assert self.gate.wait(30)
        super().subscribe(stream, callback, raw=raw)


class SlowRoom(Channel):
    def subscribed(self) -> None:
        self.stream_from(f"slow:{self.params['room']}")


def test_a_stuck_subscribe_does_not_stall_other_sockets() -> None:
    """While one socket's subscription waits on the database, other sockets subscribe and unsubscribe other
    streams (unsubscribing runs on the loop) without waiting for it."""
    bus = SlowPubSub()
    cable = CableApp([PlainRoom, SlowRoom], pubsub=bus)
    app = Starlette(routes=[WebSocketRoute("/cable", cable)])
    with TestClient(app) as client, \
            client.websocket_connect("/cable", subprotocols=["actioncable-v1-json"]) as stuck, \
            client.websocket_connect("/cable", subprotocols=["actioncable-v1-json"]) as other:
        assert _frame(stuck) == {"type": "welcome"} and _frame(other) == {"type": "welcome"}
        slow = json.dumps({"channel": "SlowRoom", "room": 1})
        stuck.send_json({"command": "subscribe", "identifier": slow})
        time.sleep(0.2)  # its subscribe is now waiting in a worker thread
        started = time.monotonic()
        for room in (2, 3, 2):
            identifier = json.dumps({"channel": "PlainRoom", "room": room})
            other.send_json({"command": "subscribe", "identifier": identifier})
            assert _frame(other) == {"identifier": identifier, "type": "confirm_subscription"}
            other.send_json({"command": "unsubscribe", "identifier": identifier})
        assert time.monotonic() - started < 10
        bus.gate.set()
        assert _frame(stuck) == {"identifier": slow, "type": "confirm_subscription"}


def test_router_keeps_one_pubsub_subscription_per_routed_stream_under_races() -> None:
    """Threads add and remove routes of a few streams at once while subscribing is slow: afterwards each stream
    with routes has exactly one pub/sub subscription and the others none (no duplicate deliveries, no leak)."""
    import random

    from solidstack.cable.router import StreamRouter

    class Jittery(MemoryPubSub):
        def subscribe(self, stream: str, callback: Any, *, raw: bool = False) -> None:
            time.sleep(random.random() * 0.003)
            super().subscribe(stream, callback, raw=raw)

    bus = Jittery()
    loop = asyncio.new_event_loop()
    router = StreamRouter(bus, loop)
    streams = ["a", "b", "c"]

    def churn(worker: int) -> None:
        rng = random.Random(worker)
        for _ in range(200):
            stream, key = rng.choice(streams), rng.randrange(2)  # shared keys: streams empty often
            if rng.random() < 0.5:
                router.add(stream, key, lambda payload: None)
            else:
                router.remove(stream, key)

    threads = [threading.Thread(target=churn, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for stream in streams:
        subscribed = len(bus._subscribers.get(stream, []))
        assert subscribed == (1 if router._routes.get(stream) else 0), (stream, subscribed, router._routes)
    assert not router._subscribing
    loop.close()
