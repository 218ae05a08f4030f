"""Eviction by each limit, FIFO in small batches triggered by writes, inline and on the background thread."""

from __future__ import annotations

import time

from solidstack.cache import DatabaseStore


def _keys(store: DatabaseStore) -> list[bytes]:
    return [row[0] for row in store.db.query("SELECT key FROM solidstack_cache_entries ORDER BY id")]


def test_max_entries_keeps_the_newest(make_store) -> None:  # type: ignore[no-untyped-def]
    store = make_store(max_entries=100, expiry_batch_size=10)
    for i in range(1000):
        store.write(f"k{i}", i)
    entries = store.stats().entries
    # Two deletions per write keep a full cache at its limit, give or take one batch.
    assert 80 <= entries <= 100 + 10
    assert store.read("k999") == 999
    assert store.read("k0") is None
    assert min(int(key[1:]) for key in _keys(store)) > 700  # first in, first out


def test_max_size_keeps_the_estimate_under_the_limit(make_store) -> None:  # type: ignore[no-untyped-def]
    store = make_store(max_size=100_000, expiry_batch_size=10, compress_threshold=None)
    for i in range(500):
        store.write(f"k{i}", "x" * 1000)
    size = store.stats().size
    assert 80_000 <= size <= 100_000 + 10 * 1200
    assert store.read("k499") == "x" * 1000
    assert store.read("k0") is None


def test_max_size_estimate_from_samples_on_a_large_table(make_store) -> None:  # type: ignore[no-untyped-def]
    store = make_store(max_age=None, size_estimate_samples=100)
    store.write_multi({f"k{i}": "x" * 200 for i in range(2000)})
    entries, size, estimated = store.expiry.estimate()
    assert estimated
    assert entries == 2000  # ids are dense: the window's density is exact
    exact = store.db.query_one("SELECT SUM(byte_size) AS s FROM solidstack_cache_entries")["s"]  # type: ignore[index]
    assert abs(size - exact) / exact < 0.05


def test_max_age_removes_old_entries_only(make_store) -> None:  # type: ignore[no-untyped-def]
    store = make_store(max_age=3600, expiry_batch_size=100)
    for i in range(40):
        store.write(f"old{i}", i)
    store.db.execute("UPDATE solidstack_cache_entries SET created_at = created_at - 7200")
    for i in range(10):
        store.write(f"new{i}", i)  # the 50th write triggers a pass
    assert store.stats().entries == 10
    assert store.read("new3") == 3 and store.read("old3") is None
    assert store.expiry.run(now=time.time() + 1800) == 0
    assert store.expiry.run(now=time.time() + 7200) == 10


def test_entries_past_their_expiry_are_removed(store: DatabaseStore) -> None:
    store.write("gone", 1, expires_at=time.time() - 1)
    store.write("kept", 2)
    assert store.expiry.run() == 1
    assert _keys(store) == [b"kept"]


def test_nothing_to_evict_deletes_nothing(store: DatabaseStore) -> None:
    for i in range(20):
        store.write(f"k{i}", i)
    assert store.expiry.run() == 0
    assert store.stats().entries == 20


def test_eviction_on_the_background_thread(make_store) -> None:  # type: ignore[no-untyped-def]
    store = make_store(max_entries=50, expiry_batch_size=10, expiry_method="thread")
    for i in range(500):
        store.write(f"k{i}", i)
    deadline = time.monotonic() + 10
    while store.stats().entries > 60 and time.monotonic() < deadline:
        store.write("tick", 0)  # each write counts towards the next pass
        time.sleep(0.005)
    assert store.stats().entries <= 60
    assert store.expiry._thread is not None and store.expiry._thread.is_alive()
    store.close()
    assert store.expiry._thread is None
