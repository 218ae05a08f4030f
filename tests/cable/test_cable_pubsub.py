"""The pub/sub core on each engine (a real SQLite file, a real PostgreSQL database): order, exactly once, only
after subscribing, across processes."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cable_helpers import broadcast_from_child, child_env, make_app

import solidstack
from engines import postgres_database
from solidstack.cable import MemoryPubSub, SolidCablePubSub, broadcast, broadcasts, pubsub, reset, subscribe
from solidstack.cable.storage import CableStorage, channel_hash
from solidstack.db import connect


class Inbox:
    """Collects messages from the listener thread; ``wait(n)`` blocks until n arrived (bounded)."""

    def __init__(self) -> None:
        self.items: list[object] = []
        self.cond = threading.Condition()

    def __call__(self, message: object) -> None:
        with self.cond:
            self.items.append(message)
            self.cond.notify_all()

    def wait(self, count: int, timeout: float = 20.0) -> list[object]:
        with self.cond:
            self.cond.wait_for(lambda: len(self.items) >= count, timeout)
            return list(self.items)


@contextlib.contextmanager
def engine_app(engine: str, root: Path, **options: object) -> Iterator[solidstack.App]:
    """An app whose cable database is of ``engine`` (a fresh PostgreSQL database, dropped after)."""
    with contextlib.ExitStack() as stack:
        url = None if engine == "sqlite" else stack.enter_context(postgres_database())
        try:
            yield make_app(root, postgres_url=url, **options)  # type: ignore[arg-type]
        finally:
            reset()  # stops the listener thread and closes the connections before the database is dropped
            solidstack.db.close_all()


@pytest.fixture
def cable_app(engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[solidstack.App]:
    """Each engine in turn (this module's contract); the process's pub/sub is closed after."""
    monkeypatch.setenv("SOLIDSTACK_ROOT", str(tmp_path / "app"))
    monkeypatch.setenv("SOLIDSTACK_ENV", "development")
    with engine_app(engine, tmp_path / "app") as app:
        yield app


def test_broadcast_reaches_subscribers_of_the_stream_only_in_order(cable_app: solidstack.App) -> None:
    room1, room2 = Inbox(), Inbox()
    subscribe("room:1", room1)
    subscribe("room:2", room2)
    for i in range(50):
        broadcast("room:1", {"n": i})
    broadcast("room:2", "hello")
    assert room1.wait(50) == [{"n": i} for i in range(50)]
    assert room2.wait(1) == ["hello"]
    time.sleep(0.2)  # nothing more arrives
    assert len(room1.items) == 50 and len(room2.items) == 1


def test_a_subscriber_sees_only_messages_published_after_it_subscribed(cable_app: solidstack.App) -> None:
    early = Inbox()
    subscribe("news", early)
    broadcast("news", 1)
    early.wait(1)
    late = Inbox()
    subscribe("news", late)
    broadcast("news", 2)
    assert early.wait(2) == [1, 2]
    assert late.wait(1) == [2]


def test_messages_are_json_and_other_values_fail_at_broadcast(cable_app: solidstack.App) -> None:
    with pytest.raises(TypeError, match="JSON"):
        broadcast("x", {"when": object()})
    with pytest.raises(TypeError, match="JSON"):
        broadcast("x", float("nan"))


def test_a_failing_subscriber_does_not_stop_the_others(cable_app: solidstack.App,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    def bad(message: object) -> None:
        raise ValueError("boom")

    good = Inbox()
    subscribe("s", bad)
    subscribe("s", good)
    broadcast("s", 1)
    broadcast("s", 2)
    assert good.wait(2) == [1, 2]
    assert "subscriber of 's' failed" in caplog.text


def test_unsubscribe_stops_delivery(cable_app: solidstack.App) -> None:
    inbox = Inbox()
    subscribe("s", inbox)
    broadcast("s", 1)
    inbox.wait(1)
    pubsub().unsubscribe("s", inbox)
    broadcast("s", 2)
    time.sleep(0.3)
    assert inbox.items == [1]
    assert "s" not in pubsub().streams  # type: ignore[attr-defined]


def test_broadcasts_from_other_processes_arrive_once_each_in_publish_order(cable_app: solidstack.App) -> None:
    """Four processes publish at once; every message arrives exactly once, each publisher's in its order."""
    inbox = Inbox()
    subscribe("load", inbox)
    code = (
        "import sys; from solidstack.cable import broadcast\n"
        "for i in range(150): broadcast('load', [int(sys.argv[1]), i])\n"
    )
    children = [subprocess.Popen([sys.executable, "-c", code, str(p)], env=child_env(cable_app.root))
                for p in range(4)]
    for child in children:
        assert child.wait(60) == 0
    received = inbox.wait(600)
    time.sleep(0.3)
    assert len(inbox.items) == 600
    assert sorted(map(tuple, received)) == sorted((p, i) for p in range(4) for i in range(150))  # type: ignore[arg-type]
    for publisher in range(4):
        assert [i for p, i in received if p == publisher] == list(range(150))  # type: ignore[misc]
    # Delivery order is the table's id order, the order in which the commits happened.
    storage = CableStorage(connect(cable_app.database("cable")))
    ids = storage.poll(0, ["load"]).messages
    assert [json.loads(m.payload) for m in ids] == received


def test_a_broadcast_from_another_process_wakes_the_listener_before_the_polling_interval(
        engine: str, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """With a 60 s polling interval, only the wake-up signal (a datagram, a NOTIFY) can deliver in time."""
    monkeypatch.setenv("SOLIDSTACK_ROOT", str(tmp_path / "app"))
    monkeypatch.setenv("SOLIDSTACK_ENV", "development")
    with engine_app(engine, tmp_path / "app", interval="60.seconds") as app:
        inbox = Inbox()
        subscribe("wake", inbox)
        time.sleep(0.2)  # the listener is now blocked in its 60 s wait
        broadcast_from_child(app.root, "wake", {"hi": 1})
        assert inbox.wait(1, timeout=30) == [{"hi": 1}]


def test_poll_reads_in_batches_and_skips_nothing(cable_app: solidstack.App) -> None:
    current = pubsub()
    assert isinstance(current, SolidCablePubSub)
    storage = current.storage
    first = storage.last_id()
    for i in range(25):
        storage.insert("batch", json.dumps(i))
        storage.insert("other", json.dumps(i))
    seen: list[int] = []
    since = first
    while True:
        result = storage.poll(since, ["batch"], limit=7)
        seen += [json.loads(m.payload) for m in result.messages]
        since = result.last_id
        if not result.truncated:
            break
    assert seen == list(range(25))


def test_channel_hash_is_stable_and_signed_64_bit() -> None:
    assert channel_hash("chat:1") == channel_hash("chat:1")
    assert channel_hash("chat:1") != channel_hash("chat:2")
    assert -(2**63) <= channel_hash("x") < 2**63


def test_trim_deletes_old_messages_in_batches(cable_app: solidstack.App) -> None:
    current = pubsub()
    assert isinstance(current, SolidCablePubSub)
    storage = current.storage
    now = time.time()
    for i in range(30):
        storage.insert("old", json.dumps(i), now=now - 2 * 86400)
    storage.insert("new", json.dumps("fresh"), now=now)
    assert storage.trim(86400, 20) == 20
    assert storage.trim(86400, 20) == 10
    assert storage.trim(86400, 20) == 0
    assert storage.count() == 1


def test_trim_reads_only_the_rows_it_deletes(cable_app: solidstack.App) -> None:
    # Ordering by id made SQLite scan the whole table in id order, testing created_at on every row (~30 ms at
    # 100,000 rows, under the write lock); the created_at index bounds a pass by the rows it deletes.
    storage = CableStorage(connect(cable_app.database("cable")))
    if storage.db.dialect != "sqlite":
        pytest.skip("PostgreSQL plans by its statistics; the query is the same, ordered by created_at")
    plan = storage.db.query("EXPLAIN QUERY PLAN " + storage.queries["trim_messages"],
                            {"cutoff": 0.0, "batch_size": 10})
    details = " | ".join(row["detail"] for row in plan)
    assert "index_solidstack_cable_messages_on_created_at" in details, details
    assert "SCAN solidstack_cable_messages" not in details, details


def test_trim_with_nothing_old_takes_no_write_lock(cable_app: solidstack.App) -> None:
    storage = CableStorage(connect(cable_app.database("cable")))
    if storage.db.dialect != "sqlite":
        pytest.skip("holds SQLite's write lock")
    storage.insert("new", json.dumps("fresh"))

    holder = sqlite3.connect(storage.db.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock a trim pass would wait for
    try:
        done: list[int] = []
        worker = threading.Thread(target=lambda: done.append(storage.trim(86400, 100)), daemon=True)
        started = time.monotonic()
        worker.start()
        worker.join(3.0)
        assert done == [0], "a trim with nothing to delete waited for the write lock"
        assert time.monotonic() - started < 1.0
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_autotrim_runs_in_the_background(cable_app: solidstack.App) -> None:
    current = pubsub()
    assert isinstance(current, SolidCablePubSub)
    current.trim_batch_size = 2  # trim after about every broadcast
    current.storage.insert("old", "1", now=time.time() - 2 * 86400)

    def channels() -> set[str]:
        return {row["channel"] for row in current.storage.db.query("SELECT channel FROM solidstack_cable_messages")}

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and channels() != {"fresh"}:
        broadcast("fresh", 1)
        time.sleep(0.05)
    assert channels() == {"fresh"}


def test_the_test_adapter_delivers_in_memory_and_records(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SOLIDSTACK_ROOT", str(tmp_path))
    monkeypatch.setenv("SOLIDSTACK_ENV", "test")
    (tmp_path / "config").mkdir()
    seed = Path(solidstack.__file__).parent / "templates" / "config" / "cable.yml"
    (tmp_path / "config" / "cable.yml").write_text(seed.read_text())
    solidstack.configure(tmp_path, "test")
    try:
        assert isinstance(pubsub(), MemoryPubSub)
        got: list[object] = []
        subscribe("s", got.append)
        broadcast("s", {"a": 1})
        assert got == [{"a": 1}]
        assert broadcasts("s") == [{"a": 1}]
        assert not (tmp_path / "storage").exists()  # no database in test
    finally:
        reset()

