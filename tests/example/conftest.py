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

from magic_link_helpers import Running, close_databases, copy_example, start_dev, use_app

from browser_helpers import headless_chromium


@pytest.fixture(autouse=True)
def _close_databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    yield
    close_databases(tmp_path_factory.getbasetemp())


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the app in the test environment, migrated, imported in this process."""
    root = copy_example(tmp_path / "magic_link")
    migrate_all(solidstack.configure(root, "test"))
    use_app(root, "test", monkeypatch)
    return root


@pytest.fixture(scope="module")
def live_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """The app under bin/dev in the development environment, shared by the tests of a module."""
    root = copy_example(tmp_path_factory.mktemp("live") / "magic_link")
    running = start_dev(root, RATE_LIMIT_PER_IP="40/600")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless chromium for one module (see ``headless_chromium``)."""
    with headless_chromium() as browser:
        yield browser

