"""The cache API, on the database store and the memory store alike."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from decimal import Decimal

import pytest

import solidstack
from solidstack.cache import DatabaseStore, MemoryStore, NullStore, Store, cache


def test_seed_verification_write_then_read(app: solidstack.App) -> None:
    """The seed: `Rails.cache.write("test", "value")` / `Rails.cache.read("test")`."""
    cache.write("test", "value")
    assert cache.read("test") == "value"
    assert isinstance(solidstack.cache.current_store(), DatabaseStore)


def test_values_round_trip(any_store: Store) -> None:
    values = ["value", "", "ünïcödé ✓", b"\x00\xffbytes", 0, -7, 2**80, 1.5, float("inf"), True, False, None,
              [1, "a", None, [2.5, {"k": [True]}]], {"a": 1, "b": {"c": [None, "x"]}}, [], {}, "x" * 50_000]
    for index, value in enumerate(values):
        assert any_store.write(f"k{index}", value)
    for index, value in enumerate(values):
        got = any_store.read(f"k{index}")
        assert got == value and type(got) is type(value)


def test_safe_serializer_refuses_objects(any_store: Store) -> None:
    for value in [object(), {1: "int key"}, [1, {"deep": object()}], (1, object())]:
        with pytest.raises(TypeError, match="cannot cache it with the safe serializer"):
            any_store.write("k", value)
    assert not any_store.exist("k")


def test_typed_values_round_trip_with_the_safe_serializer(any_store: Store) -> None:
    # The values job arguments may hold (solidstack.typed): what a cached query or computation returns.
    values = [datetime(2026, 11, 28, 14, 30, tzinfo=UTC), date(2026, 11, 28), dt_time(9, 15),
              timedelta(hours=36), Decimal("19.99"), uuid.UUID("12345678-1234-5678-1234-567812345678"), (1, "a"),
              {1, 2}, frozenset({"x"}), {"when": datetime(2026, 1, 1), "tags": ("a", "b"), "_ss": "not a tag"},
              [Decimal("1.5"), None, b"\x00raw"]]
    for index, value in enumerate(values):
        assert any_store.write(f"t{index}", value)
    for index, value in enumerate(values):
        got = any_store.read(f"t{index}")
        assert got == value and type(got) is type(value), (value, got)


def test_fetch_computes_once_and_stores(any_store: Store) -> None:
    calls: list[int] = []

    def compute() -> str:
        calls.append(1)
        return "computed"

    assert any_store.fetch("f", compute) == "computed"
    assert any_store.fetch("f", compute) == "computed"
    assert len(calls) == 1
    assert any_store.fetch("f", compute, force=True) == "computed" and len(calls) == 2
    assert any_store.fetch("nothing") is None
    assert any_store.fetch("none", lambda: None, skip_nil=True) is None and "none" not in any_store
    assert any_store.fetch("none2", lambda: None) is None and "none2" in any_store


def test_delete_exist_and_mapping_face(any_store: Store) -> None:
    any_store["a"] = 1
    assert "a" in any_store and any_store["a"] == 1 and any_store.exist("a")
    any_store.write("nil", None)
    assert any_store.get("nil", "default") is None
    assert any_store.get("missing", "default") == "default"
    with pytest.raises(KeyError):
        any_store["missing"]
    assert any_store.delete("a") is True
    assert any_store.delete("a") is False
    with pytest.raises(KeyError):
        del any_store["a"]
    assert "a" not in any_store


def test_increment_and_decrement(any_store: Store) -> None:
    assert any_store.increment("n") == 1
    assert any_store.increment("n", 10) == 11
    assert any_store.decrement("n", 3) == 8
    assert any_store.read("n") == 8
    any_store.write("text", "not a number")
    assert any_store.increment("text") is None
    assert any_store.read("text") == "not a number"


def test_multi_operations(any_store: Store) -> None:
    assert any_store.write_multi({"a": 1, "b": "two", ("c", 3): [3]})
    assert any_store.read_multi(["a", "b", ("c", 3), "nope"]) == {"a": 1, "b": "two", ("c", 3): [3]}
    assert any_store.read("c/3") == [3]  # a tuple key expands as ActiveSupport does: "c/3"
    fetched = any_store.fetch_multi(["a", "x", "y"], lambda key: key.upper())
    assert fetched == {"a": 1, "x": "X", "y": "Y"}
    assert any_store.read("y") == "Y"
    assert any_store.delete_multi(["a", "x", "nope"]) == 2
    assert any_store.read_multi(["a", "x", "y"]) == {"y": "Y"}
    any_store.clear()
    assert any_store.read_multi(["b", "y"]) == {}


def test_expires_in_is_checked_on_read(any_store: Store) -> None:
    any_store.write("short", "v", expires_in=0.05)
    any_store.write("past", "v", expires_at=time.time() - 1)
    any_store.write("long", "v", expires_in=60)
    assert any_store.read("short") == "v"
    assert any_store.read("past") is None
    time.sleep(0.06)
    assert any_store.read("short") is None and "short" not in any_store
    assert any_store.read("long") == "v"
    assert any_store.increment("short") == 1  # an expired counter starts again from zero


def test_store_wide_expires_in(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = MemoryStore(expires_in=0.05)
    store.write("k", "v")
    time.sleep(0.06)
    assert store.read("k") is None


def test_version_mismatch_is_a_miss(any_store: Store) -> None:
    any_store.write("v", "one", version="1")
    assert any_store.read("v", version="1") == "one"
    assert any_store.read("v", version="2") is None
    assert any_store.read("v") == "one"  # no version asked: any version answers (as Rails)
    assert any_store.fetch("v", lambda: "two", version="2") == "two"
    assert any_store.read("v", version="2") == "two"


def test_namespaces_keep_keys_apart(make_store) -> None:  # type: ignore[no-untyped-def]
    one = make_store("shared.sqlite3", namespace="one")
    two = make_store("shared.sqlite3", namespace="two")
    one.write("k", "from one")
    two.write("k", "from two")
    assert one.read("k") == "from one" and two.read("k") == "from two"
    assert one.normalize_key("k") == b"one:k"


def test_long_keys_are_hashed_and_distinct(any_store: Store) -> None:
    a, b = "k" * 5000 + "a", "k" * 5000 + "b"
    any_store.write(a, 1)
    any_store.write(b, 2)
    assert any_store.read(a) == 1 and any_store.read(b) == 2
    normalized = any_store.normalize_key(a)
    assert len(normalized) == 1024 and b":hash:" in normalized


def test_key_types(any_store: Store) -> None:
    any_store.write(42, "int key")
    assert any_store.read("42") == "int key"
    any_store.write(b"raw", "bytes key")
    assert any_store.read("raw") == "bytes key"

    class Model:
        def cache_key(self) -> str:
            return "models/7"

    any_store.write(Model(), "model")
    assert any_store.read("models/7") == "model"
    with pytest.raises(TypeError, match="cache key"):
        any_store.write(1.5, "float key")


def test_stats_counts_entries_hits_and_misses(any_store: Store) -> None:
    any_store.write("a", "x" * 100)
    any_store.write("b", "y")
    any_store.read("a")
    any_store.read("zzz")
    stats = any_store.stats()
    assert stats.entries == 2
    assert stats.size > 100
    assert stats.oldest_age is not None and 0 <= stats.oldest_age < 60
    assert (stats.hits, stats.misses) == (1, 1)


def test_values_read_back_are_copies(any_store: Store) -> None:
    value = {"list": [1]}
    any_store.write("d", value)
    value["list"].append(2)
    got = any_store.read("d")
    got["list"].append(3)
    assert any_store.read("d") == {"list": [1]}


def test_compression_above_threshold(store: DatabaseStore) -> None:
    store.write("big", "abc" * 10_000)
    row = store.db.query_one("SELECT length(value) AS n FROM solidstack_cache_entries")
    assert row is not None and row["n"] < 2_000
    assert store.read("big") == "abc" * 10_000


def test_null_store_keeps_nothing(null_store: NullStore) -> None:
    assert null_store.write("k", "v") is True
    assert null_store.read("k") is None and "k" not in null_store
    assert null_store.increment("n") is None
    assert null_store.fetch("k", lambda: 5) == 5
    assert null_store.stats().entries == 0


def test_memory_store_evicts_least_recently_used() -> None:
    store = MemoryStore(max_entries=4)
    for key in "abcd":
        store.write(key, key)
    store.read("a")  # a is now the most recently used
    store.write("e", "e")  # over the limit: pruned to 3/4 of it
    assert "a" in store and "e" in store
    assert "b" not in store
    assert store.stats().entries <= 4


def test_async_twins(any_store: Store) -> None:
    async def scenario() -> None:
        assert await any_store.awrite("k", "v")
        assert await any_store.aread("k") == "v"
        assert await any_store.aexist("k")

        async def compute() -> str:
            return "async value"

        assert await any_store.afetch("f", compute) == "async value"
        assert await any_store.afetch("f", compute) == "async value"
        assert await any_store.aincrement("n", 2) == 2
        assert await any_store.adecrement("n") == 1
        assert await any_store.awrite_multi({"x": 1, "y": 2})
        assert await any_store.aread_multi(["x", "y"]) == {"x": 1, "y": 2}
        assert await any_store.afetch_multi(["x", "z"], lambda key: key * 2) == {"x": 1, "z": "zz"}
        assert await any_store.adelete("k")
        assert await any_store.adelete_multi(["x", "y"]) == 2
        assert (await any_store.astats()).entries >= 1
        await any_store.aclear()
        assert await any_store.aread("z") is None

    asyncio.run(scenario())


def test_cache_follows_configure(app_root, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SOLIDSTACK_CACHE_STORE", "memory")
    solidstack.configure(app_root, "test")
    assert isinstance(solidstack.cache.current_store(), MemoryStore)
    cache["k"] = "v"
    assert cache["k"] == "v" and "k" in cache
    monkeypatch.setenv("SOLIDSTACK_CACHE_STORE", "null")
    solidstack.configure(app_root, "test")
    assert isinstance(solidstack.cache.current_store(), NullStore)
    assert "k" not in cache


def test_increment_edge_cases(any_store: Store) -> None:
    any_store.write("w", 5)
    assert any_store.increment("w", 2) == 7  # a counter written with write()
    assert any_store.decrement("neg", 5) == -5 and any_store.increment("neg", 2) == -3
    any_store.write("big", 2**62)
    assert any_store.increment("big") == 2**62 + 1  # past 64-bit-safe sizes: the general path
    assert any_store.increment("big", 2**63) == 2**62 + 1 + 2**63
    any_store.write("versioned", 1, version="v1")
    assert any_store.increment("versioned") == 2
    any_store.write("gone", 100, expires_at=time.time() - 1)
    assert any_store.increment("gone", 3) == 3
    any_store.write("dead", 1, expires_in=0.05)
    assert any_store.increment("dead", 1) == 2
    time.sleep(0.06)
    assert any_store.read("dead") is None  # an increment keeps the entry's expiry
    assert any_store.increment("n", expires_in=60) == 1


def test_increment_over_a_colliding_row(store: DatabaseStore) -> None:
    store.write("k", 41)
    store.db.execute(store.db.statement("UPDATE solidstack_cache_entries SET key = :key"),
                     {"key": b"another key with the same hash"})
    assert store.increment("k") == 1  # the other key's entry is not added to: overwritten, as a write would
    assert store.read("k") == 1


def test_a_closed_store_reopens_on_use(store: DatabaseStore) -> None:
    store.write("k", "v")
    store.close()
    assert store.read("k") == "v"
    assert store.write("k2", "v2") and store.read("k2") == "v2"


def test_write_unless_exist(any_store: Store) -> None:
    assert any_store.write("u", "first", unless_exist=True)
    assert not any_store.write("u", "second", unless_exist=True)
    assert any_store.read("u") == "first"
    any_store.write("gone", "old", expires_at=time.time() - 1)  # expired: as if absent
    assert any_store.write("gone", "new", unless_exist=True) and any_store.read("gone") == "new"
    any_store.write("v", "one", version="1")  # another version: a miss for this one, so it is written
    assert any_store.write("v", "two", version="2", unless_exist=True) and any_store.read("v", version="2") == "two"
    any_store.delete("u")
    assert any_store.write("u", "third", unless_exist=True) and any_store.read("u") == "third"


@pytest.mark.parametrize(("expired_ago", "meanwhile_gets"), [(1, "stale"), (60, "second computation")])
def test_race_condition_ttl(any_store: Store, expired_ago: float, meanwhile_gets: str) -> None:
    # Expired less than race_condition_ttl ago: the first caller gives the stale value more life and recomputes;
    # another caller meanwhile gets the stale value. Expired longer ago: everyone recomputes.
    any_store.write("r", "stale", expires_at=time.time() - expired_ago)
    meanwhile: list[str] = []

    def recompute() -> str:
        meanwhile.append(any_store.fetch("r", lambda: "second computation", race_condition_ttl=10))
        return "fresh"

    assert any_store.fetch("r", recompute, race_condition_ttl=10) == "fresh"
    assert meanwhile == [meanwhile_gets]
    assert any_store.read("r") == "fresh"
    # Without the option an expired entry is a plain miss, as before.
    any_store.write("p", "stale", expires_at=time.time() - 1)
    assert any_store.fetch("p", lambda: "fresh") == "fresh"


def test_afetch_race_condition_ttl(any_store: Store) -> None:
    any_store.write("a", "stale", expires_at=time.time() - 1)

    async def scenario() -> tuple[str, list[str], str]:
        meanwhile: list[str] = []

        async def recompute() -> str:
            meanwhile.append(await any_store.afetch("a", lambda: "second", race_condition_ttl=10))
            return "fresh"

        got = await any_store.afetch("a", recompute, race_condition_ttl=10)
        return got, meanwhile, await any_store.aread("a")

    assert asyncio.run(scenario()) == ("fresh", ["stale"], "fresh")
