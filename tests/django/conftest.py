"""Fixtures for solidstack.django: Django set up once per process with tests/django/djproject's settings; each
test gets its own app folder (tmp dir) and queue database, SQLite or PostgreSQL (the ``engine`` fixture)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djproject.settings")

import django  # noqa: E402

django.setup()

from engines import postgres_database  # noqa: E402


@pytest.fixture
def project(engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The project pointed at ``tmp_path`` (settings.BASE_DIR) on ``engine``, migrated; yields the folder."""
    from django.conf import settings

    from solidstack.django.conf import configure_from_settings, migrate_parts

    monkeypatch.setenv("SOLIDSTACK_TEST_ROOT", str(tmp_path))
    monkeypatch.setattr(settings, "BASE_DIR", tmp_path)
    databases = dict(settings.DATABASES)
    for part in ("queue", "cache", "cable"):
        databases.pop(part, None)
    if engine == "postgresql":
        manager = postgres_database()
        url = manager.__enter__()
        monkeypatch.setenv("SOLIDSTACK_TEST_QUEUE_URL", url)
        from psycopg.conninfo import conninfo_to_dict

        parts = conninfo_to_dict(url)
        for part in ("queue", "cache", "cable"):  # every part on the one fresh PostgreSQL database
            databases[part] = {"ENGINE": "django.db.backends.postgresql", "NAME": parts["dbname"],
                               "HOST": parts.get("host", "127.0.0.1"), "PORT": str(parts.get("port", 5432)),
                               "USER": parts.get("user", "postgres")}
    monkeypatch.setattr(settings, "DATABASES", databases)
    configure_from_settings()
    migrate_parts()
    try:
        yield tmp_path
    finally:
        if engine == "postgresql":
            import solidstack

            solidstack._reset_parts()
            manager.__exit__(None, None, None)
