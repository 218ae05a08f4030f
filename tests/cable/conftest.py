"""Fixtures of the cable tests: an app folder with a migrated cable database, and a real uvicorn server."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import solidstack
from solidstack.cable import reset

# The tests import their helpers by name, also under --import-mode=importlib (which leaves sys.path alone).
sys.path.insert(0, str(Path(__file__).parent))

from cable_helpers import Server, free_port, make_app


@pytest.fixture
def cable_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[solidstack.App]:
    """An app in ``development`` with cable on SQLite, migrated; the process's pub/sub is closed after."""
    # configure() exports these for child processes; monkeypatch puts the old values back afterwards.
    monkeypatch.setenv("SOLIDSTACK_ROOT", str(tmp_path / "app"))
    monkeypatch.setenv("SOLIDSTACK_ENV", "development")
    app = make_app(tmp_path / "app")
    yield app
    reset()  # stops the listener thread and removes its wake-up socket


@pytest.fixture
def server(cable_app: solidstack.App, tmp_path: Path) -> Iterator[Server]:
    srv = Server(cable_app.root, free_port(), tmp_path / "server.log")
    srv.start()
    yield srv
    srv.stop()
