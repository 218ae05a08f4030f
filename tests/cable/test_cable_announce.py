"""SQLite: a broadcast's wake-up datagram carries the message, delivered without reading the table when it is
provably the next one (decision 0222). Real processes, real SQLite files; the polling interval is 60 s, so
anything delivered in time came by a datagram or by a read the datagrams made the listener do."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cable_helpers import Server, child_env, free_port, make_app, welcome
from test_cable_pubsub import Inbox

import solidstack
from solidstack.cable import SolidCablePubSub, pubsub, reset
from solidstack.cable.pubsub import DATAGRAM_LIMIT, announcement
from solidstack.cable.storage import CableStorage
from solidstack.cable.wakeup import notify
from solidstack.db import connect

#: A publisher process. Modes: ``broadcast`` (datagram with the message), ``large`` (a message too large for
#: one: an empty datagram), ``empty`` (inserts and sends an empty datagram, as before decision 0222), ``silent``
#: (inserts and sends nothing: another machine, a lost datagram).
PUBLISHER = r"""
import json, sys, time
from solidstack.cable import pubsub
from solidstack.cable.wakeup import notify
mode, name, count, streams = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].split(",")
bus = pubsub()
for i in range(count):
    stream = streams[i % len(streams)]
    message = [name, i]
    if mode == "broadcast":
        bus.broadcast(stream, message)
    elif mode == "large":
        bus.broadcast(stream, message + ["x" * 20000])
    else:
        bus.storage.insert(stream, json.dumps(message))
        if mode == "empty":
            notify(bus._wakeup_dir)
    if i % 7 == 0:
        time.sleep(0.001)
"""


@pytest.fixture
def slow_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[solidstack.App]:
    """SQLite cable with a 60 s polling interval: the floor never delivers within a test."""
    monkeypatch.setenv("SOLIDSTACK_ROOT", str(tmp_path / "app"))
    monkeypatch.setenv("SOLIDSTACK_ENV", "development")
    app = make_app(tmp_path / "app", interval="60.seconds")
    yield app
    reset()
    solidstack.db.close_all()


def publishers(root: Path, specs: list[tuple[str, str, int, list[str]]]) -> None:
    children = [subprocess.Popen([sys.executable, "-c", PUBLISHER, mode, name, str(count), ",".join(streams)],
                                 env=child_env(root)) for mode, name, count, streams in specs]
    for child in children:
        assert child.wait(60) == 0


def recorded(app: solidstack.App, streams: list[str]) -> dict[str, list[Any]]:
    """Each stream's messages as the table holds them, in id order (the delivery order)."""
    storage = CableStorage(connect(app.database("cable")))
    found: dict[str, list[Any]] = {s: [] for s in streams}
    since = 0
    while True:
        result = storage.poll(since, streams)
        for message in result.messages:
            found[message.channel].append(json.loads(message.payload))
        since = result.last_id
        if not result.truncated:
            return found


def bus() -> SolidCablePubSub:
    current = pubsub()
    assert isinstance(current, SolidCablePubSub)
    return current


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop running in a thread of its own, as a server's."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def test_on_an_event_loop_concurrent_publishers_reach_subscribers_once_each_in_id_order(
        slow_app: solidstack.App, loop: asyncio.AbstractEventLoop) -> None:
    """Loop mode (the ASGI server's): the loop delivers the datagrams' messages, the thread's reads are applied
    on the loop too; every callback runs there."""
    on_loop = SolidCablePubSub(bus().storage, polling_interval=60, autotrim=False, loop=loop)
    threads: set[int] = set()
    streams = ["a", "b", "c"]
    inboxes = {s: Inbox() for s in streams}

    def recording(inbox: Inbox) -> Any:
        def callback(message: Any) -> None:
            threads.add(threading.get_ident())
            inbox(message)
        return callback

    try:
        for stream in streams:
            on_loop.subscribe(stream, recording(inboxes[stream]))
        publishers(slow_app.root, [("broadcast", "p1", 120, streams), ("broadcast", "p2", 120, streams[::-1]),
                                   ("empty", "e", 60, streams), ("large", "l", 20, streams),
                                   ("silent", "s", 60, streams)])
        bus().broadcast("a", ["end", 0])
        expected = recorded(slow_app, streams)
        for stream in streams:
            assert inboxes[stream].wait(len(expected[stream]), timeout=20) == expected[stream]
        time.sleep(0.3)
        assert {s: len(inboxes[s].items) for s in streams} == {s: len(expected[s]) for s in streams}
        assert threads == {_loop_thread_id(loop)}
    finally:
        on_loop.close()


def _loop_thread_id(loop: asyncio.AbstractEventLoop) -> int:
    async def ident() -> int:
        return threading.get_ident()
    return asyncio.run_coroutine_threadsafe(ident(), loop).result(5)


def test_concurrent_publishers_of_every_kind_reach_a_subscriber_once_each_in_id_order(
        slow_app: solidstack.App) -> None:
    streams = ["a", "b", "c"]
    inboxes = {s: Inbox() for s in streams}
    for stream in streams:
        bus().subscribe(stream, inboxes[stream])
    publishers(slow_app.root, [("broadcast", "p1", 120, streams), ("broadcast", "p2", 120, streams[::-1]),
                               ("empty", "e", 60, streams), ("large", "l", 20, streams),
                               ("silent", "s", 60, streams)])
    bus().broadcast("a", ["end", 0])  # the silent publisher's last messages are behind this one's id
    expected = recorded(slow_app, streams)
    assert sum(map(len, expected.values())) == 381
    for stream in streams:
        assert inboxes[stream].wait(len(expected[stream]), timeout=20) == expected[stream]
    time.sleep(0.3)
    assert {s: len(inboxes[s].items) for s in streams} == {s: len(expected[s]) for s in streams}


@pytest.mark.parametrize("on_loop", [False, True], ids=["thread", "loop"])
def test_a_message_in_its_datagram_is_delivered_without_reading_the_table(
        slow_app: solidstack.App, loop: asyncio.AbstractEventLoop, on_loop: bool) -> None:
    storage = CableStorage(connect(slow_app.database("cable")))
    listener = SolidCablePubSub(storage, polling_interval=60, autotrim=False, loop=loop if on_loop else None)
    inbox = Inbox()
    listener.subscribe("fast", inbox)
    listener.subscribe("other", Inbox())
    time.sleep(0.2)  # the listener's first read is done
    reads = 0
    poll = storage.poll

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal reads
        reads += 1
        return poll(*args, **kwargs)

    storage.poll = counted  # type: ignore[method-assign]
    code = ("import time; from solidstack.cable import broadcast\n"
            "for i in range(40): broadcast('fast' if i % 2 else 'other', i); time.sleep(0.003)")
    subprocess.run([sys.executable, "-c", code], env=child_env(slow_app.root), check=True, timeout=60)
    try:
        assert inbox.wait(20) == list(range(1, 40, 2))
        assert reads <= 2, reads
    finally:
        listener.close()


def test_a_message_without_datagram_is_read_when_a_later_one_shows_the_gap(slow_app: solidstack.App) -> None:
    first, second = Inbox(), Inbox()
    bus().subscribe("first", first)
    bus().subscribe("second", second)
    time.sleep(0.2)
    storage = bus().storage
    storage.insert("first", json.dumps("silent 1"))  # committed, never announced
    bus().broadcast("first", "announced 1")  # the same stream: must not overtake the silent one
    assert first.wait(2, timeout=10) == ["silent 1", "announced 1"]
    storage.insert("first", json.dumps("silent 2"))
    bus().broadcast("second", "announced 2")  # another stream: its datagram still shows the gap
    assert second.wait(1, timeout=10) == ["announced 2"]
    assert first.wait(3, timeout=10) == ["silent 1", "announced 1", "silent 2"]
    storage.insert("first", json.dumps("silent 3"))
    bus().broadcast("unwatched", "elsewhere")  # a stream no one here listens to: its id shows the gap too
    assert first.wait(4, timeout=10) == ["silent 1", "announced 1", "silent 2", "silent 3"]


def test_a_datagram_of_a_message_committed_before_subscribe_delivers_nothing(slow_app: solidstack.App) -> None:
    bus().subscribe("other", Inbox())
    time.sleep(0.2)
    storage = bus().storage
    early = storage.insert("news", json.dumps("before"))  # committed before subscribe; its datagram comes after
    inbox = Inbox()
    bus().subscribe("news", inbox)
    for _ in range(2):  # late and twice: neither delivers it
        notify(bus()._wakeup_dir, announcement(early, "news", json.dumps("before")))  # type: ignore[arg-type]
    bus().broadcast("news", "after")
    assert inbox.wait(1, timeout=10) == ["after"]
    time.sleep(0.3)
    assert inbox.items == ["after"]


def test_datagrams_lost_to_a_full_queue_are_read_from_the_table(slow_app: solidstack.App) -> None:
    """The listener is held in a callback while a publisher sends 50: its queue holds about ten datagrams and
    the rest are refused, the last message's among them."""
    release = threading.Event()
    inbox = Inbox()

    def held(message: Any) -> None:
        if message == 0:
            release.wait(30)
        inbox(message)

    bus().subscribe("burst", held)
    time.sleep(0.2)
    code = ("import time; from solidstack.cable import broadcast\n"
            "broadcast('burst', 0); time.sleep(0.3)\n"
            "for i in range(1, 50): broadcast('burst', i)")
    subprocess.run([sys.executable, "-c", code], env=child_env(slow_app.root), check=True, timeout=60)
    release.set()
    assert inbox.wait(50, timeout=10) == list(range(50))


def test_announcement_is_empty_for_a_large_message() -> None:
    assert announcement(1, "s", "x" * DATAGRAM_LIMIT) == b""
    assert announcement(1, "s", "\ud800") == b""
    assert announcement(1, "s", '"hi"') != b""


def test_websocket_clients_get_every_message_of_concurrent_publishers_once_in_order(
        slow_app: solidstack.App, tmp_path: Path) -> None:
    server = Server(slow_app.root, free_port(), tmp_path / "server.log")
    server.start()
    try:
        client = welcome(server)
        rooms = [1, 2, 3]
        identifiers = {}
        for room in rooms:
            identifier, reply = client.subscribe(channel="ChatChannel", room=room)
            assert reply["type"] == "confirm_subscription"
            identifiers[identifier] = f"chat:{room}"
        streams = [f"chat:{room}" for room in rooms]
        publishers(slow_app.root, [("broadcast", "p1", 100, streams), ("broadcast", "p2", 100, streams),
                                   ("empty", "e", 40, streams), ("large", "l", 10, streams),
                                   ("silent", "s", 40, streams)])
        bus().broadcast("chat:1", ["end", 0])
        expected = recorded(slow_app, streams)
        total = sum(map(len, expected.values()))
        assert total == 291
        received: dict[str, list[Any]] = {s: [] for s in streams}
        for _ in range(total):
            frame = client.recv(timeout=20)
            received[identifiers[frame["identifier"]]].append(frame["message"])
        assert received == expected
        with pytest.raises(TimeoutError):
            client.recv(timeout=0.3)
        client.close()
    finally:
        server.stop()


def test_a_listener_bound_after_the_folder_listing_was_kept_is_woken(tmp_path: Path) -> None:
    from solidstack.db.wakeup import WakeupSocket

    folder = tmp_path / "wakeups"
    first = WakeupSocket(folder)
    try:
        time.sleep(0.1)  # the folder has settled: its listing is kept
        notify(folder, b"one")
        assert first.receive(1.0, 64) == [b"one"]
        second = WakeupSocket(folder)
        try:
            notify(folder, b"two")
            assert first.receive(1.0, 64) == [b"two"]
            assert second.receive(1.0, 64) == [b"two"]
        finally:
            second.close()
        time.sleep(0.1)
        notify(folder)  # the closed socket's file is gone: only the first is left
        assert first.receive(1.0, 64) == [b""]
    finally:
        first.close()


def test_the_asgi_app_subscribes_on_its_loop_on_sqlite_only(slow_app: solidstack.App) -> None:
    from solidstack.cable import CableApp, MemoryPubSub
    from solidstack.cable.router import StreamRouter

    async def build(app: CableApp) -> tuple[Any, bool]:
        loop = asyncio.get_running_loop()
        subscriptions = app._subscriptions(loop)
        return subscriptions, StreamRouter(subscriptions, loop)._on_loop

    sqlite_app = CableApp(pubsub=bus())
    subscriptions, direct = asyncio.run(build(sqlite_app))
    assert isinstance(subscriptions, SolidCablePubSub) and subscriptions is not bus()
    assert subscriptions.storage is bus().storage and direct
    memory = MemoryPubSub()
    subscriptions, direct = asyncio.run(build(CableApp(pubsub=memory)))
    assert subscriptions is memory and not direct


def test_a_broadcast_inside_a_transaction_is_announced_at_its_commit_and_never_after_a_rollback(
        slow_app: solidstack.App) -> None:
    """A broadcast in an open transaction sends its datagram after the commit: before it, a listener would
    deliver a message a rollback takes back, and then skip the next one, which reuses its id."""
    bus = pubsub()
    inbox = Inbox()
    bus.subscribe("room", inbox)
    db = bus.storage.db
    try:
        with db.transaction():
            bus.broadcast("room", "rolled back")
            time.sleep(0.3)
            assert inbox.items == []  # nothing announced before the commit
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    with db.transaction():
        bus.broadcast("room", "kept")
    assert inbox.wait(1, timeout=5) == ["kept"]
    time.sleep(0.2)
    assert inbox.items == ["kept"]


@pytest.mark.parametrize("how", ["trim", "take"])
def test_an_id_is_never_used_twice_after_the_newest_message_is_deleted(slow_app: solidstack.App, how: str) -> None:
    """Deleting the newest message (a trim that empties the table; the Django layer's take_message) must not
    let the next broadcast reuse its id: listeners past that id would skip it (decision 0223)."""
    bus = pubsub()
    inbox = Inbox()
    bus.subscribe("room", inbox)
    bus.broadcast("room", "first")
    assert inbox.wait(1, timeout=5) == ["first"]
    first = bus.storage.last_id()
    db = bus.storage.db
    with db.transaction() as conn:
        if how == "trim":
            conn.execute("DELETE FROM solidstack_cable_messages")
        else:
            conn.execute("DELETE FROM solidstack_cable_messages WHERE id = ?", (first,))
    bus.broadcast("room", "second")
    assert bus.storage.last_id() > first
    assert inbox.wait(2, timeout=5) == ["first", "second"]
