"""Several processes on one cache file: increments add up exactly; failures are misses, never exceptions."""

from __future__ import annotations

import logging
import multiprocessing as mp
import sqlite3
import time
from pathlib import Path

import pytest

from solidstack.cache import DatabaseStore

PROCESSES = 4
INCREMENTS = 500


def _increment_many(config, key: str | None, barrier, results) -> None:  # type: ignore[no-untyped-def]
    store = DatabaseStore(config, expiry_method="inline", max_entries=1000, expiry_batch_size=10, encryption_key=key)
    barrier.wait(timeout=30)
    failures = 0
    for i in range(INCREMENTS):
        if store.increment("counter") is None:
            failures += 1
        store.write(f"noise:{i % 50}", i)  # writes and eviction passes between increments
    results.put(failures)


# "plain" counters take the one-statement UPSERT; encrypted ones the read-add-write transaction.
@pytest.mark.parametrize("encryption_key", [None, "k" * 32], ids=["plain", "encrypted"])
def test_increment_under_four_processes_sums_exactly(make_store, encryption_key: str | None) -> None:  # type: ignore[no-untyped-def]
    if encryption_key:
        pytest.importorskip("cryptography")
    store = make_store(encryption_key=encryption_key)
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(PROCESSES), ctx.Queue()
    config = make_store.config_for("cache.sqlite3")
    workers = [ctx.Process(target=_increment_many, args=(config, encryption_key, barrier, results))
               for _ in range(PROCESSES)]
    for worker in workers:
        worker.start()
    failures = [results.get(timeout=90) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0
    assert failures == [0] * PROCESSES
    assert store.read("counter") == PROCESSES * INCREMENTS


def _hold_lock(path: str, mode: str, ready, release) -> None:  # type: ignore[no-untyped-def]
    conn = sqlite3.connect(path, isolation_level=None)
    if mode == "exclusive":
        conn.execute("PRAGMA locking_mode=EXCLUSIVE")
        conn.execute("BEGIN EXCLUSIVE")
    else:
        conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO solidstack_cache_entries (key, value, key_hash, byte_size, created_at) "
                 "VALUES (x'00', x'00', 1, 1, 0)")
    ready.set()
    release.wait(30)
    conn.execute("ROLLBACK")
    conn.close()


def _locked_by_another_process(path: Path, mode: str):  # type: ignore[no-untyped-def]
    ctx = mp.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(path), mode, ready, release))
    holder.start()
    assert ready.wait(30)
    return holder, release


def test_write_lock_held_by_another_process(make_sqlite_store, caplog) -> None:  # type: ignore[no-untyped-def]
    store = make_sqlite_store(busy_timeout=0.1, retry_after=0.5)
    store.write("k", "before")
    holder, release = _locked_by_another_process(store.db.path, "immediate")
    try:
        with caplog.at_level(logging.WARNING, logger="solidstack.cache"):
            started = time.monotonic()
            assert store.read("k") == "before"  # WAL: readers do not wait for the writer
            assert store.write("k", "during") is False  # dropped
            assert store.increment("n") is None
            assert store.write("k2", "during") is False  # skipped at once after the failure
            assert store.read("k") is None  # and reads too, for retry_after
            assert time.monotonic() - started < 10
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "locked" in warnings[0].getMessage()
    finally:
        release.set()
        holder.join(30)
    time.sleep(0.6)
    assert store.write("k", "after")
    assert store.read("k") == "after"


def test_file_locked_exclusively_by_another_process(tmp_path: Path, make_sqlite_store) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "locked.sqlite3"
    make_sqlite_store("locked.sqlite3").write("k", "v")
    make_sqlite_store("locked.sqlite3").db.close()
    holder, release = _locked_by_another_process(path, "exclusive")
    try:
        # A store that opens its connection while the lock is held: every operation is a miss or dropped.
        store = DatabaseStore(path, busy_timeout=0.05, retry_after=5)
        started = time.monotonic()
        assert store.read("k") is None
        assert store.write("k", "x") is False
        assert store.fetch("k", lambda: "computed") == "computed"
        assert store.increment("n") is None
        assert store.read_multi(["k"]) == {}
        assert store.delete("k") is False
        assert store.stats().entries == 0
        assert time.monotonic() - started < 20
    finally:
        release.set()
        holder.join(30)


def test_missing_table_and_missing_folder_are_misses(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    unmigrated = DatabaseStore(tmp_path / "new.sqlite3")
    with caplog.at_level(logging.WARNING, logger="solidstack.cache"):
        assert unmigrated.read("k") is None
        assert unmigrated.write("k", "v") is False
        assert unmigrated.read("k") is None
    assert "no such table" in caplog.text
    assert sum("no such table" in r.getMessage() for r in caplog.records) == 1  # logged once
    unmigrated.migrate()
    assert unmigrated.write("k", "v") and unmigrated.read("k") == "v"
    nowhere = DatabaseStore(tmp_path / "no" / "such" / "folder" / "c.sqlite3")
    assert nowhere.read("k") is None
    assert nowhere.write("k", "v") is False


# Python 3.12+ warns about fork() with threads running; forking is what this test is about.
@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
@pytest.mark.parametrize("method", ["fork"])
def test_store_keeps_working_in_a_forked_child(make_store, method: str) -> None:  # type: ignore[no-untyped-def]
    store = make_store(expiry_method="thread", max_entries=10, expiry_batch_size=2)
    store.write("parent", 1)
    ctx = mp.get_context(method)
    results = ctx.Queue()

    def child() -> None:
        results.put((store.read("parent"), store.write("child", 2), store.increment("n")))

    process = ctx.Process(target=child)
    process.start()
    assert results.get(timeout=30) == (1, True, 1)
    process.join(30)
    assert store.read("child") == 2
