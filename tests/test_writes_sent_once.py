"""On PostgreSQL a write whose answer is lost is never sent again (decision 0065): the cache's increment and
cable's broadcast run through ``Database.connection()`` outside a transaction, which used to repeat a statement
on the next pooled connection when its own broke — after the server had committed it. A TCP proxy between the
pool and the server cuts the connection the moment the server answers."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest

from dropping_proxy import DroppingProxy
from engines import database_config, pg_url_parts, postgres_database, require_postgres
from solidstack.db import DatabaseUnavailable, connect, migrate, package_migrations


@pytest.fixture(autouse=True)
def _no_idle_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """The armed proxy cuts the next statement sent: on a machine slow enough that the pool's idle check (a
    round trip after 2 s idle) ran first, the check would take the cut instead of the write under test."""
    monkeypatch.setattr("solidstack.db.postgresql.CHECK_IDLE_AFTER", 3600.0)


def _proxy(url: str) -> DroppingProxy:
    parts = pg_url_parts(url)
    return DroppingProxy(parts["host"], int(parts["port"]))


def test_a_cache_increment_whose_answer_is_lost_is_counted_once(tmp_path: Path) -> None:
    from solidstack.cache import DatabaseStore

    require_postgres()
    with postgres_database() as url:
        proxy = _proxy(url)
        store = DatabaseStore(database_config("postgresql", tmp_path, proxy.url(url), name="cache"), retry_after=0)
        store.migrate()
        try:
            assert store.increment("n") == 1
            proxy.armed.set()
            assert store.increment("n") is None  # failure is a miss: the answer was lost
            assert proxy.dropped.is_set()
            time.sleep(0.05)
            assert store.increment("n") == 3  # the lost one counted once, not twice
        finally:
            store.close()
            proxy.close()


def test_a_broadcast_whose_answer_is_lost_raises_and_is_stored_once(tmp_path: Path) -> None:
    from solidstack.cable.storage import CableStorage

    require_postgres()
    with postgres_database() as url:
        proxy = _proxy(url)
        db = connect(database_config("postgresql", tmp_path, proxy.url(url), name="cable"))
        migrate(db, package_migrations("solidstack.cable", "postgresql"))
        storage = CableStorage(db)
        try:
            storage.insert("room", '"first"')
            proxy.armed.set()
            with pytest.raises(DatabaseUnavailable):
                storage.insert("room", '"lost answer"')
            assert proxy.dropped.is_set()
            storage.insert("room", '"third"')
            with psycopg.connect(url, autocommit=True) as conn:
                payloads = [row[0] for row in conn.execute("SELECT payload FROM solidstack_cable_messages ORDER BY id")]
            assert payloads == ['"first"', '"lost answer"', '"third"']
        finally:
            db.close()
            proxy.close()
