"""Cable on PostgreSQL only: commits out of id order, the listening connection dropped, ``listen: false``."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cable_helpers import broadcast_from_child, make_app
from test_cable_pubsub import Inbox

import solidstack
from engines import postgres_database
from solidstack.cable import SolidCablePubSub, pubsub, reset, subscribe


@pytest.fixture
def pg_url() -> Iterator[str]:
    with postgres_database() as url:
        yield url


@pytest.fixture
def pg_app(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[solidstack.App]:
    monkeypatch.setenv("SOLIDSTACK_ROOT", str(tmp_path / "app"))
    monkeypatch.setenv("SOLIDSTACK_ENV", "development")
    try:
        yield make_app(tmp_path / "app", interval="60.seconds", postgres_url=pg_url)
    finally:
        reset()
        solidstack.db.close_all()


def _pubsub() -> SolidCablePubSub:
    current = pubsub()
    assert isinstance(current, SolidCablePubSub)
    return current


def test_a_message_whose_transaction_commits_after_a_later_one_is_not_skipped(pg_app: solidstack.App) -> None:
    """The first broadcast takes its id and holds its transaction open while a second one is sent; then the
    first commits. Reading `id > cursor` alone, the listener would see id 2, move its cursor past id 1 (not yet
    visible), and never deliver the first message."""
    current = _pubsub()
    storage, db = current.storage, current.storage.db
    inbox = Inbox()
    subscribe("race", inbox)
    with db.transaction():
        storage.insert("race", '"first"')  # joins this transaction: id drawn, not visible yet
        thread = threading.Thread(target=storage.insert, args=("race", '"second"'))
        thread.start()
        # Without the ordering lock the second commits at once, its NOTIFY wakes the listener, and the listener
        # reads id 2 (and moves its cursor past id 1) while the first is still open.
        time.sleep(0.5)
    thread.join(10)
    assert inbox.wait(2, timeout=10) == ["first", "second"]
    time.sleep(0.2)
    assert inbox.items == ["first", "second"]


LISTENERS = ("SELECT pid FROM pg_stat_activity WHERE query ILIKE 'LISTEN %%solidstack_cable%%' "
             "AND datname = current_database() AND pid <> pg_backend_pid()")


def test_a_dropped_listening_connection_reconnects_and_misses_nothing(pg_app: solidstack.App,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    """pg_terminate_backend on the listening connection: one line says so, it reconnects, the message committed
    meanwhile is delivered from the table, and NOTIFY wakes the listener again (the polling interval is 60 s)."""
    current = _pubsub()
    db = current.storage.db
    inbox = Inbox()
    subscribe("drop", inbox)
    current.broadcast("drop", 1)
    assert inbox.wait(1, timeout=10) == [1]
    with caplog.at_level(logging.INFO):
        [listener] = db.query(LISTENERS)
        db.query("SELECT pg_terminate_backend(%(pid)s)", {"pid": listener["pid"]})
        current.broadcast("drop", 2)  # committed while the listener is down or reconnecting
        assert inbox.wait(2, timeout=10) == [1, 2]
        deadline = time.monotonic() + 10
        while not db.query(LISTENERS) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert db.query(LISTENERS), "the listener did not LISTEN again"
        started = time.monotonic()
        broadcast_from_child(pg_app.root, "drop", 3)  # another process: only the NOTIFY can deliver it in time
        assert inbox.wait(3, timeout=20) == [1, 2, 3]
        assert time.monotonic() - started < 20
    lost = [r.getMessage() for r in caplog.records if "LISTEN connection failed" in r.getMessage()]
    assert len(lost) == 1, caplog.text
    assert "Traceback" not in caplog.text


def test_listen_off_delivers_by_polling(tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`listen: false` (a pooler in transaction mode drops LISTEN): no listening connection, polling delivers."""
    monkeypatch.setenv("SOLIDSTACK_ROOT", str(tmp_path / "app"))
    monkeypatch.setenv("SOLIDSTACK_ENV", "development")
    app = make_app(tmp_path / "app", interval="0.2.seconds", postgres_url=pg_url, listen=False)
    try:
        inbox = Inbox()
        subscribe("poll", inbox)
        broadcast_from_child(app.root, "poll", "by polling")
        assert inbox.wait(1, timeout=10) == ["by polling"]
        db = _pubsub().storage.db
        assert db.query(LISTENERS) == []
    finally:
        reset()
        solidstack.db.close_all()


def test_websocket_clients_receive_broadcasts_from_other_processes(pg_app: solidstack.App, tmp_path: Path) -> None:
    """A uvicorn server on PostgreSQL (polling every 60 s: only NOTIFY delivers in time): a broadcast from
    another process, and one from an action of another client, reach the subscribed sockets."""
    from cable_helpers import Server, free_port
    from test_cable_server import welcome

    server = Server(pg_app.root, free_port(), tmp_path / "server.log")
    server.start()
    try:
        alice, bob = welcome(server), welcome(server, "?user=bob")
        a_id, reply = alice.subscribe(channel="ChatChannel", room=1)
        assert reply == {"identifier": a_id, "type": "confirm_subscription"}
        b_id, _ = bob.subscribe(channel="ChatChannel", room=1)
        started = time.monotonic()
        broadcast_from_child(pg_app.root, "chat:1", {"text": "from a job"})
        assert alice.recv(timeout=20) == {"identifier": a_id, "message": {"text": "from a job"}}
        assert bob.recv(timeout=20) == {"identifier": b_id, "message": {"text": "from a job"}}
        assert time.monotonic() - started < 20
        bob.perform(b_id, "speak", text="hi")  # a plain action: its broadcast goes through the database
        assert alice.recv(timeout=20) == {"identifier": a_id, "message": {"from": "bob", "text": "hi"}}
        alice.close()
        bob.close()
    finally:
        server.stop()
    assert "Traceback" not in server.output(), server.output()


def test_a_database_not_migrated_is_a_clear_error(pg_url: str) -> None:
    from solidstack.cable.storage import CableStorage
    from solidstack.db import DatabaseError
    from solidstack.db.postgresql import PostgreSQLDatabase

    db = PostgreSQLDatabase(pg_url, name="cable")
    try:
        bus = SolidCablePubSub(CableStorage(db))
        with pytest.raises(DatabaseError, match="migrate"):
            bus.broadcast("s", 1)
        bus.close()
    finally:
        db.close()


def test_behind_pgbouncer_with_listen_off(tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """pgbouncer in transaction mode (LISTEN would be lost there): `listen: false`, broadcasts from another
    process delivered in order by polling."""
    from engines import Pgbouncer

    bouncer = Pgbouncer()
    monkeypatch.setenv("SOLIDSTACK_ROOT", str(tmp_path / "app"))
    monkeypatch.setenv("SOLIDSTACK_ENV", "development")
    try:
        app = make_app(tmp_path / "app", interval="0.1.seconds", postgres_url=bouncer.url(pg_url.rsplit("/", 1)[1]),
                       listen=False, prepared_statements=False)
        inbox = Inbox()
        subscribe("bounced", inbox)
        code = "from solidstack.cable import broadcast\nfor i in range(30): broadcast('bounced', i)\n"
        import subprocess
        import sys

        from cable_helpers import child_env

        subprocess.run([sys.executable, "-c", code], env=child_env(app.root), check=True, timeout=60)
        assert inbox.wait(30, timeout=20) == list(range(30))
    finally:
        reset()
        solidstack.db.close_all()
        bouncer.stop()
