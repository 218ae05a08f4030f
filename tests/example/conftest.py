"""Fixtures for the reference app: copies of examples/magic_link in temp folders, its real processes, a browser."""

from __future__ import annotations

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

from magic_link_helpers import ENGINES, Running, close_databases, copy_example, on_engine, start_dev, use_app

from browser_helpers import headless_chromium


@pytest.fixture(autouse=True)
def _close_databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    yield
    close_databases(tmp_path_factory.getbasetemp())


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

