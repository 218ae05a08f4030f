"""Fixtures for the queue's speed mechanisms: a migrated queue database on a real SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest

from solidstack.db import SQLiteDatabase, migrate, package_migrations
from solidstack.queue.storage import QueueStorage


@pytest.fixture
def storage(tmp_path: Path) -> QueueStorage:
    db = SQLiteDatabase(tmp_path / "queue.sqlite3")
    migrate(db, package_migrations("solidstack.queue", "sqlite"))
    return QueueStorage(db)
