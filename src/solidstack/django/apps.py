"""The Django app: points solidstack at the project's settings and migrates its tables with ``migrate``."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class SolidstackConfig(AppConfig):
    name = "solidstack.django"
    label = "solidstack"
    verbose_name = "solidstack"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
        from .conf import configure_from_settings

        configure_from_settings()
        post_migrate.connect(_migrate_parts, sender=self)


def _migrate_parts(sender: AppConfig, using: str = "default", verbosity: int = 1, **kwargs: Any) -> None:
    """Apply solidstack's migrations to each part's database, once per ``migrate`` run (idempotent).

    The parts' databases are whatever :mod:`.conf` maps (Django aliases, database.yml or the default SQLite
    files), not necessarily ``using``: solidstack's tables are not Django models, so no router is needed.
    """
    from .conf import migrate_parts

    for line in migrate_parts():
        if verbosity >= 1:
            print(f"  solidstack: {line}")
