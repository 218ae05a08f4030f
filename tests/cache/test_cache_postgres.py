"""The cache on PostgreSQL when the server fails: a server that does not answer, connections the server drops,
a database not migrated. Every call is a miss or a dropped write, logged once, never an exception."""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path

import pytest

from engines import database_config, postgres_database, require_postgres
from solidstack.cache import DatabaseStore


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "solidstack.cache" and r.levelno >= logging.WARNING]


def test_a_server_that_does_not_answer_is_a_miss_logged_once(tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    require_postgres()
    nobody = f"postgresql://postgres@127.0.0.1:{free_port()}/cache"
    store = DatabaseStore(database_config("postgresql", tmp_path, nobody, name="cache"), retry_after=0.2)
    with caplog.at_level(logging.WARNING, logger="solidstack.cache"):
        started = time.monotonic()
        assert store.read("k") is None
        assert store.write("k", "v") is False
        assert store.increment("n") is None
        assert store.fetch("k", lambda: "computed") == "computed"
        assert store.read_multi(["a", "b"]) == {}
        assert store.delete("k") is False
        assert store.write("k", "v", unless_exist=True) is False
        store.clear()
        assert store.stats().entries == 0
        time.sleep(0.3)  # past retry_after: the next call tries the server again, and fails again quietly
        assert store.read("k") is None
        assert time.monotonic() - started < 20
    warnings = _warnings(caplog)
    assert len(warnings) == 1, warnings
    assert "cannot connect" in warnings[0] and "127.0.0.1" in warnings[0]
    store.close()


def test_connections_dropped_by_the_server_are_misses_then_it_works_again(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with postgres_database() as url:
        store = DatabaseStore(database_config("postgresql", tmp_path, url, name="cache"), retry_after=0.2)
        store.migrate()
        for i in range(5):  # several pooled connections
            store.write(f"k{i}", i)
        try:
            with caplog.at_level(logging.INFO, logger="solidstack.cache"):
                terminated = store.db.query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()")
                assert terminated
                results = []
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:  # never an exception, whatever the pool hands out
                    results.append((store.read("k1"), store.write("w", 1), store.increment("n")))
                    if results[-1][0] == 1 and results[-1][1] is True:
                        break
                    time.sleep(0.05)
                assert results[-1][:2] == (1, True), results
            assert len(_warnings(caplog)) <= 1, _warnings(caplog)
        finally:
            store.close()


def test_a_database_not_migrated_is_a_miss_until_it_is(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with postgres_database() as url:
        store = DatabaseStore(database_config("postgresql", tmp_path, url, name="cache"))
        try:
            with caplog.at_level(logging.WARNING, logger="solidstack.cache"):
                assert store.read("k") is None
                assert store.write("k", "v") is False
            assert "not migrated" in caplog.text
            store.migrate()
            assert store.write("k", "v") and store.read("k") == "v"
        finally:
            store.close()


def test_a_lock_held_elsewhere_costs_one_bounded_wait(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Another session holds the entry's row lock: a read-change-write call gives up after busy_timeout (a
    miss, logged once); reads do not wait at all."""
    import psycopg

    from solidstack.cache.database import key_hash

    with postgres_database() as url:
        store = DatabaseStore(database_config("postgresql", tmp_path, url, name="cache"), busy_timeout=0.2,
                              retry_after=0.5, encryption_key=None)
        store.migrate()
        store.write("k", 1)
        holder = psycopg.connect(url)  # a transaction left open on the row
        try:
            holder.execute("SELECT 1 FROM solidstack_cache_entries WHERE key_hash = %s FOR UPDATE",
                           (key_hash(b"k"),))
            with caplog.at_level(logging.WARNING, logger="solidstack.cache"):
                started = time.monotonic()
                assert store.write("k", 2, unless_exist=True) is False
                assert time.monotonic() - started < 5
            assert len(_warnings(caplog)) == 1 and "lock" in _warnings(caplog)[0]
        finally:
            holder.close()
            time.sleep(0.6)
        assert store.read("k") == 1
        assert store.write("k", 3, unless_exist=True) is False and store.write("k", 3) and store.read("k") == 3
        store.close()


def test_behind_pgbouncer_in_transaction_mode(tmp_path: Path) -> None:
    """pgbouncer in transaction mode with `prepared_statements: false` in the entry (as Rails asks): every
    operation works; nothing relies on session state."""
    from engines import Pgbouncer

    with postgres_database() as url:
        bouncer = Pgbouncer()
        try:
            database = url.rsplit("/", 1)[1]
            config = database_config("postgresql", tmp_path, bouncer.url(database), name="cache",
                                     prepared_statements=False)
            store = DatabaseStore(config, max_entries=50, expiry_batch_size=10)
            store.migrate()
            for i in range(200):  # eviction runs as they go (max_entries 50)
                assert store.write(f"k{i}", i)
                assert store.read(f"k{i}") == i
            assert store.stats().entries <= 50 + 10
            assert [store.increment("n") for _ in range(20)] == list(range(1, 21))
            assert store.write("u", 1, unless_exist=True) and not store.write("u", 2, unless_exist=True)
            assert store.read_multi(["k199", "u"]) == {"k199": 199, "u": 1}
            store.close()
        finally:
            bouncer.stop()


def test_the_seed_check_with_the_cache_entry_on_postgresql(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`cache.write("test", "value")` / `cache.read("test")` for an app whose database.yml puts `cache` on
    PostgreSQL, after `solidstack db migrate` (migrate_all), as a user who changed only database.yml."""
    import solidstack
    from solidstack.cache import cache, current_store
    from solidstack.tasks import migrate_all

    with postgres_database() as url:
        root = tmp_path / "app"
        (root / "config").mkdir(parents=True)
        (root / "config" / "database.yml").write_text(
            f"production:\n  cache:\n    adapter: postgresql\n    url: {url}\n    migrations_paths: db/cache_migrate\n")
        monkeypatch.setenv("SOLIDSTACK_ROOT", str(root))
        app = solidstack.configure(root, "production")
        migrate_all(app)
        try:
            cache.write("test", "value")
            assert cache.read("test") == "value"
            assert current_store().db.dialect == "postgresql"  # type: ignore[attr-defined]
        finally:
            solidstack._reset_parts()
            solidstack.db.close_all()
