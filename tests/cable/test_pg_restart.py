"""The PostgreSQL server restarted under a cache and a cable listener (a throwaway cluster of the test's own:
the shared server is never restarted). The cache misses meanwhile and works afterwards, never raising; cable
delivers what was broadcast around the restart, and NOTIFY wakes its listener again afterwards."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from cable_helpers import broadcast_from_child, make_app
from test_cable_pubsub import Inbox

import solidstack
from engines import ThrowawayCluster, database_config, require_postgres
from solidstack.cable import SolidCablePubSub, pubsub, reset, subscribe
from solidstack.cache import DatabaseStore


def test_cache_and_cable_survive_a_server_restart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    require_postgres()
    cluster = ThrowawayCluster()
    store = None
    try:
        monkeypatch.setenv("SOLIDSTACK_ROOT", str(tmp_path / "app"))
        monkeypatch.setenv("SOLIDSTACK_ENV", "development")
        app = make_app(tmp_path / "app", interval="60.seconds", postgres_url=f"{cluster.url}/cable")
        store = DatabaseStore(database_config("postgresql", tmp_path, f"{cluster.url}/cable", name="cache"),
                              retry_after=0.2)
        store.migrate()
        current = pubsub()
        assert isinstance(current, SolidCablePubSub)
        inbox = Inbox()
        subscribe("restart", inbox)
        store.write("k", "before")
        current.broadcast("restart", "before")
        assert inbox.wait(1, timeout=10) == ["before"]

        with caplog.at_level(logging.INFO):
            cluster.restart()
            # Right after the restart: the pool's connections and the LISTEN connection are all dead.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if store.read("k") == "before" and store.write("k", "after"):  # misses until it works again
                    break
                time.sleep(0.1)
            assert store.read("k") == "after"
            assert store.increment("n") == 1
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    current.broadcast("restart", "meanwhile")  # the publisher's pool reconnects
                    break
                except solidstack.db.DatabaseError:
                    time.sleep(0.2)
            assert inbox.wait(2, timeout=30) == ["before", "meanwhile"]
            time.sleep(1.0)  # the listener listens again (a lost notification would cost the 60 s poll)
            started = time.monotonic()
            broadcast_from_child(app.root, "restart", "after")
            assert inbox.wait(3, timeout=30) == ["before", "meanwhile", "after"]
            assert time.monotonic() - started < 30
        assert "Traceback" not in caplog.text
        assert sum("cache" in r.name and r.levelno == logging.WARNING for r in caplog.records) <= 1
    finally:
        if store is not None:
            store.close()
        reset()
        solidstack.db.close_all()
        cluster.stop()
