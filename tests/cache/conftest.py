"""Fixtures of the cache tests: stores on real SQLite files in a temp dir, closed after each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from solidstack.cache import DatabaseStore, MemoryStore, NullStore, Store


@pytest.fixture
def make_store(tmp_path: Path) -> Iterator[Callable[..., DatabaseStore]]:
    """Build migrated database stores in ``tmp_path`` (inline expiry unless asked otherwise)."""
    made: list[DatabaseStore] = []

    def make(name: str = "cache.sqlite3", **options: Any) -> DatabaseStore:
        options.setdefault("expiry_method", "inline")
        store = DatabaseStore(tmp_path / name, **options)
        store.migrate()
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture
def store(make_store: Callable[..., DatabaseStore]) -> DatabaseStore:
    return make_store()


@pytest.fixture(params=["database", "memory"])
def any_store(request: pytest.FixtureRequest, make_store: Callable[..., DatabaseStore]) -> Store:
    """The same contract on the database store and the memory store."""
    if request.param == "database":
        return make_store()
    return MemoryStore()


@pytest.fixture
def null_store() -> NullStore:
    return NullStore()
