"""Django's own cache test suite (``BaseCacheTests``, vendored in tests/django/cache from Django 6.1.3) run against
SolidCache, as Django runs it against each of its backends.

Excluded, each for a reason that is a difference of design, not a defect:

- ``test_cull``, ``test_zero_cull``, ``test_cull_delete_when_store_empty``: Django's culling by ``MAX_ENTRIES`` /
  ``CULL_FREQUENCY``. solidstack's store trims as Solid Cache does, oldest first in small batches by
  ``max_entries``/``max_size``/``max_age`` of cache.yml, not by Django's per-cache counts.
- ``test_long_timeout`` and ``test_forever_timeout`` are kept; nothing else is excluded.
"""

from __future__ import annotations

import unittest
from pathlib import Path

import pytest
from cache.tests import BaseCacheTests, caches_setting_for_tests
from django.test import TestCase, override_settings

CULL = "Django's MAX_ENTRIES/CULL_FREQUENCY culling; solidstack trims by cache.yml's limits (module docstring)"


@pytest.fixture(scope="module", autouse=True)
def _test_database(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Django's test database (in memory) for the suite's Poll model; solidstack pointed at a temp folder first,
    since ``migrate`` also migrates solidstack's databases."""
    from django.conf import settings
    from django.db import connection
    from django.test.utils import setup_test_environment, teardown_test_environment

    from solidstack.django.conf import configure_from_settings

    base_dir = settings.BASE_DIR
    settings.BASE_DIR = tmp_path_factory.mktemp("suite-db")
    configure_from_settings()
    setup_test_environment()  # as Django's runner: ALLOWED_HOSTS gets "testserver", among others
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    yield
    connection.creation.destroy_test_db(":memory:", verbosity=0)
    teardown_test_environment()
    settings.BASE_DIR = base_dir


@pytest.fixture(autouse=True)
def _solidstack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's cache database in its own temp folder."""
    from django.conf import settings

    from solidstack.django.conf import configure_from_settings, migrate_parts

    monkeypatch.setattr(settings, "BASE_DIR", tmp_path)
    configure_from_settings()
    migrate_parts()


@override_settings(CACHES=caches_setting_for_tests(BACKEND="solidstack.django.cache.SolidCache"))
class SolidCacheDjangoSuiteTests(BaseCacheTests, TestCase):
    @unittest.skip(CULL)
    def test_cull(self) -> None: ...

    @unittest.skip(CULL)
    def test_zero_cull(self) -> None: ...

    @unittest.skip(CULL)
    def test_cull_delete_when_store_empty(self) -> None: ...
