"""solidstack's configuration from Django's settings.

``SOLIDSTACK`` (all optional)::

    SOLIDSTACK = {
        "ROOT": BASE_DIR,            # where config/*.yml and storage/ are (default: settings.BASE_DIR, else cwd)
        "ENV": "production",         # the config files' environment section (default: SOLIDSTACK_ENV or development)
        "DATABASES": {"queue": "queue", "cache": "cache", "cable": "cable"},   # part -> DATABASES alias
        "QUEUE": {...},              # a queue.yml environment section, instead of config/queue.yml
        "RECURRING": {...},          # a recurring.yml environment section, instead of config/recurring.yml
        "CACHE": {...},              # a cache.yml environment section
        "CABLE": {...},              # a cable.yml environment section
    }

Databases: a part uses the Django alias ``SOLIDSTACK["DATABASES"]`` names for it, else a ``DATABASES`` alias
named like the part (``queue``, ``cache``, ``cable``), else ``config/database.yml`` when the project has one,
else its own SQLite file ``storage/<env>_<part>.sqlite3`` under ``ROOT``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

import solidstack
from solidstack.config import App, DatabaseConfig
from solidstack.config.database import load_databases

PARTS = ("queue", "cache", "cable")
_KEYS = {"ROOT", "ENV", "DATABASES", "QUEUE", "RECURRING", "CACHE", "CABLE"}
_SECTIONS = {"QUEUE": "queue.yml", "RECURRING": "recurring.yml", "CACHE": "cache.yml", "CABLE": "cable.yml"}
_SQLITE = "django.db.backends.sqlite3"
_POSTGRESQL = ("django.db.backends.postgresql",)


def solidstack_settings() -> dict[str, Any]:
    raw = getattr(settings, "SOLIDSTACK", None) or {}
    if not isinstance(raw, dict):
        raise ImproperlyConfigured(f"settings.SOLIDSTACK must be a dict, got {type(raw).__name__}")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ImproperlyConfigured(f"settings.SOLIDSTACK: unknown key(s) {', '.join(unknown)} "
                                   f"(known: {', '.join(sorted(_KEYS))})")
    return raw


def database_from_alias(part: str, alias: str) -> DatabaseConfig:
    """The solidstack entry for Django's ``DATABASES[alias]`` (SQLite or PostgreSQL)."""
    databases = settings.DATABASES
    if alias not in databases:
        raise ImproperlyConfigured(f"settings.SOLIDSTACK['DATABASES'][{part!r}] names {alias!r}, which "
                                   f"settings.DATABASES does not define (defined: {', '.join(sorted(databases))})")
    entry = databases[alias]
    engine = entry.get("ENGINE", "")
    source = f"settings.DATABASES[{alias!r}]"
    if engine == _SQLITE:
        name = str(entry.get("NAME") or "")
        if not name or name == ":memory:" or name.startswith("file:"):
            raise ImproperlyConfigured(f"{source}: solidstack's {part} needs a SQLite file, got NAME={name!r}")
        return DatabaseConfig(name=part, adapter="sqlite3", database=name, source=source,
                              timeout=float(entry.get("OPTIONS", {}).get("timeout", 5.0)))
    if engine in _POSTGRESQL:
        options: dict[str, Any] = {key: entry[django] for django, key in
                                   (("HOST", "host"), ("PORT", "port"), ("USER", "username"),
                                    ("PASSWORD", "password")) if entry.get(django)}
        return DatabaseConfig(name=part, adapter="postgresql", database=str(entry.get("NAME") or ""),
                              source=source, options=options)
    raise ImproperlyConfigured(f"{source}: solidstack's {part} runs on SQLite or PostgreSQL, not {engine!r}")


def _databases(config: dict[str, Any], root: Path, env: str) -> dict[str, DatabaseConfig] | None:
    mapping = dict(config.get("DATABASES") or {})
    unknown = sorted(set(mapping) - set(PARTS))
    if unknown:
        raise ImproperlyConfigured(f"settings.SOLIDSTACK['DATABASES']: unknown part(s) {', '.join(unknown)} "
                                   f"(parts: {', '.join(PARTS)})")
    for part in PARTS:
        if part not in mapping and part in settings.DATABASES:
            mapping[part] = part
    if not mapping:
        return None  # config/database.yml, or the default SQLite files
    entries = dict(load_databases(root, env))  # parts not mapped keep database.yml's entries
    entries.update({part: database_from_alias(part, alias) for part, alias in mapping.items()})
    return entries


def configure_from_settings() -> App:
    """Point solidstack at the project (called by the app's ``ready()``)."""
    config = solidstack_settings()
    root = Path(config.get("ROOT") or getattr(settings, "BASE_DIR", None) or os.getcwd())
    env = str(config.get("ENV") or os.environ.get("SOLIDSTACK_ENV") or "development")
    sections = {filename: (f"settings.SOLIDSTACK[{key!r}]", config[key])
                for key, filename in _SECTIONS.items() if key in config}
    return solidstack.configure(root, env, databases=_databases(config, root, env), sections=sections)


def migrate_parts() -> list[str]:
    """Apply solidstack's migrations to every part's database; one line per database."""
    from solidstack.config import current_app
    from solidstack.tasks import migrate_all

    return [f"{result.entry} ({result.location}): "
            f"{', '.join(result.applied) if result.applied else 'up to date'}"
            for result in migrate_all(current_app())]
