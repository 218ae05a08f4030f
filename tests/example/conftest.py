"""Fixtures for the reference app: copies of examples/magic_link in temp folders, its real processes, a browser."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import solidstack
from solidstack.tasks import migrate_all

# The tests import their helpers by name, also under --import-mode=importlib (which leaves sys.path alone).
sys.path.insert(0, str(Path(__file__).parent))
sys.path.append(str(Path(__file__).parents[1]))  # browser_helpers, shared with tests/cable

from magic_link_helpers import Running, close_databases, copy_example, start_dev, use_app

from browser_helpers import headless_chromium


@pytest.fixture(autouse=True)
def _close_databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    yield
    close_databases(tmp_path_factory.getbasetemp())


#: The example runs on both engines: SQLite (its own config/database.yml) and PostgreSQL (its
#: config/database.postgresql.yml copied over it, as its README tells a user to do; nothing else changes).
ENGINES = ["sqlite", "postgresql"]


@contextlib.contextmanager
def on_engine(root: Path, engine: str, env: str) -> Iterator[dict[str, str]]:
    """Point the copy at ``root`` to ``engine``; yields the variables its processes need (``DB_NAME``: fresh
    databases of their own on the test server), and drops those databases afterwards."""
    if engine == "sqlite":
        yield {}
        return
    from engines import drop_database, random_database_name, require_postgres

    require_postgres()
    prefix = random_database_name("sslink")
    shutil.copy(root / "config" / "database.postgresql.yml", root / "config" / "database.yml")
    previous = os.environ.get("DB_NAME")
    os.environ["DB_NAME"] = prefix
    try:
        yield {"DB_NAME": prefix}
    finally:
        from solidstack.db import close_all

        close_all()
        solidstack._reset_parts()
        if previous is None:
            os.environ.pop("DB_NAME", None)
        else:
            os.environ["DB_NAME"] = previous
        for suffix in ("", "_queue", "_cache", "_cable"):
            drop_database(f"{prefix}_{env}{suffix}")


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: str) -> Iterator[Path]:
    """A copy of the app in the test environment on ``engine``, migrated, imported in this process."""
    root = copy_example(tmp_path / "magic_link")
    with on_engine(root, engine, "test"):
        migrate_all(solidstack.configure(root, "test"))
        use_app(root, "test", monkeypatch)
        yield root


@pytest.fixture(scope="module", params=ENGINES)
def live_app(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Running]:
    """The app under bin/dev in the development environment on each engine, shared by the tests of a module."""
    root = copy_example(tmp_path_factory.mktemp("live") / "magic_link")
    with on_engine(root, str(request.param), "development") as env:
        running = start_dev(root, RATE_LIMIT_PER_IP="40/600", **env)
        yield running
        running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless chromium for one module (see ``headless_chromium``)."""
    with headless_chromium() as browser:
        yield browser

