"""Fixtures of the cache tests: stores on a real SQLite file or a real PostgreSQL database, closed after each test.

``make_store``, ``store`` and ``any_store`` run the cache's contract on each engine (``engine`` of
tests/conftest.py: PostgreSQL skips with the reason where no server answers, and fails in CI). The
``sqlite_*`` fixtures are for what is about SQLite files themselves (locks held by another process, a file's
bytes on disk).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engines import ENGINES, database_config, postgres_database, require_postgres
from solidstack.cache import DatabaseStore, MemoryStore, NullStore, Store
from solidstack.config import DatabaseConfig


@contextlib.contextmanager
def _store_factory(engine: str, tmp_path: Path) -> Iterator[Callable[..., DatabaseStore]]:
    """Builds migrated stores; the same ``name`` is the same database (a file, or a PostgreSQL database)."""
    made: list[DatabaseStore] = []
    with contextlib.ExitStack() as stack:
        configs: dict[str, DatabaseConfig] = {}

        def config_for(name: str) -> DatabaseConfig:
            if name not in configs:
                if engine == "sqlite":
                    configs[name] = database_config("sqlite", tmp_path, name=Path(name).stem)
                else:
                    url = stack.enter_context(postgres_database())
                    configs[name] = database_config("postgresql", tmp_path, url, name="cache")
            return configs[name]

        def make(name: str = "cache.sqlite3", **options: Any) -> DatabaseStore:
            options.setdefault("expiry_method", "inline")
            store = DatabaseStore(config_for(name), **options)
            store.migrate()
            made.append(store)
            return store

        make.config_for = config_for  # type: ignore[attr-defined]
        try:
            yield make
        finally:
            for store in made:
                store.close()


@pytest.fixture
def make_store(engine: str, tmp_path: Path) -> Iterator[Callable[..., DatabaseStore]]:
    """Build migrated database stores of each engine (inline expiry unless asked otherwise)."""
    with _store_factory(engine, tmp_path) as make:
        yield make


@pytest.fixture
def store(make_store: Callable[..., DatabaseStore]) -> DatabaseStore:
    return make_store()


@pytest.fixture
def make_sqlite_store(tmp_path: Path) -> Iterator[Callable[..., DatabaseStore]]:
    """Stores on SQLite files in ``tmp_path`` only."""
    with _store_factory("sqlite", tmp_path) as make:
        yield make


@pytest.fixture
def sqlite_store(make_sqlite_store: Callable[..., DatabaseStore]) -> DatabaseStore:
    return make_sqlite_store()


@pytest.fixture(params=[*ENGINES, "memory"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """The same contract on the database store (each engine) and the memory store."""
    if request.param == "memory":
        yield MemoryStore()
        return
    if request.param == "postgresql":
        require_postgres()
    with _store_factory(request.param, tmp_path) as make:
        yield make()


@pytest.fixture
def null_store() -> NullStore:
    return NullStore()
