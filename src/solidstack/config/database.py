"""``config/database.yml`` in the Rails format, and which database each part uses.

A multi-database section names entries (``primary``, ``queue``, ``cache``, ``cable``); a single-database section
(``adapter:``/``database:`` at its top) is the ``primary`` entry alone. A part uses the entry its
``connects_to: {database: {writing: NAME}}`` names, else the entry named like the part, else its own SQLite file
``storage/<env>_<part>.sqlite3``: the embedded default needs no ``database.yml`` at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .loader import MAX_WAIT, Section, env_section, positive_duration, positive_int, string

_ENTRY_KEYS = {
    "adapter", "database", "timeout", "pool", "max_connections", "migrations_paths", "host", "port",
    "username", "password", "url", "encoding", "schema_search_path", "sslmode", "schema_dump",
    "database_tasks", "replica", "min_messages", "variables", "prepared_statements", "idle_timeout",
    "checkout_timeout", "reaping_frequency", "retries", "default_transaction_mode", "pragmas",
    # PostgreSQL: listen: false turns LISTEN/NOTIFY wake-ups off (poolers in transaction mode drop LISTEN).
    "listen", "connect_timeout",
}
_POSTGRESQL = ("postgresql", "postgres")
_SQLITE = ("sqlite3", "sqlite")
_DEFAULT_MIGRATIONS = {"primary": "db/migrate", "queue": "db/queue_migrate", "cache": "db/cache_migrate",
                       "cable": "db/cable_migrate"}


@dataclass(frozen=True)
class DatabaseConfig:
    """One database entry."""

    name: str
    adapter: str
    database: str
    source: str
    timeout: float = 5.0
    migrations_paths: tuple[Path, ...] = ()
    options: dict[str, Any] = field(default_factory=dict, compare=False)


def default_entry(root: Path, env: str, name: str) -> DatabaseConfig:
    """The embedded default: a SQLite file of its own under ``storage/``."""
    filename = f"{env}.sqlite3" if name == "primary" else f"{env}_{name}.sqlite3"
    return DatabaseConfig(
        name=name,
        adapter="sqlite3",
        database=str(root / "storage" / filename),
        source=f"default for {name!r} (no entry in config/database.yml)",
        migrations_paths=(root / _DEFAULT_MIGRATIONS.get(name, f"db/{name}_migrate"),),
    )


def _timeout_ms(value: Any) -> float:
    milliseconds = positive_duration(value)
    if milliseconds > MAX_WAIT * 1000:
        raise ValueError(f"expected at most {int(MAX_WAIT * 1000)} (milliseconds: one day), got {value!r}")
    return milliseconds


def _entry(root: Path, file: Path, env: str, name: str, data: Any) -> DatabaseConfig:
    section = Section(data, file=file, env=env, prefix=name)
    for key in section.data:
        if key not in _ENTRY_KEYS:
            raise section.error(key, f"unknown key (known keys: {', '.join(sorted(_ENTRY_KEYS))})")
    url = section.get("url", string, "")
    default_adapter = "postgresql" if url.startswith(("postgresql:", "postgres:")) else "sqlite3"
    adapter = section.get("adapter", string, default_adapter)
    database = section.get("database", string, "")
    if adapter not in _POSTGRESQL and adapter not in _SQLITE:
        raise section.error("adapter", f"unsupported adapter {adapter!r} (solidstack supports sqlite3 and postgresql)")
    if adapter in _POSTGRESQL:
        if not database and not url:
            raise section.error("database", "a postgresql entry needs `database:` (or `url:`)")
        listen = section.raw("listen", True)
        if not isinstance(listen, bool):
            raise section.error("listen", f"expected true or false, got {listen!r}")
        if section.raw("pool") is not None:
            section.get("pool", positive_int, 5)
    if adapter in _SQLITE:
        if not database:
            if url.startswith("sqlite3:") or url.startswith("sqlite:"):
                database = url.split(":", 1)[1].removeprefix("//")
            else:
                raise section.error("database", "a sqlite3 entry needs a database file path")
        if database != ":memory:":
            database = str((root / database).resolve())
    # Rails writes the busy timeout in milliseconds; it bounds every wait for a lock (at most a day: MAX_WAIT).
    timeout_ms = section.get("timeout", _timeout_ms, 5000.0)
    paths = section.raw("migrations_paths")
    if paths is None:
        migrations = (root / _DEFAULT_MIGRATIONS.get(name, f"db/{name}_migrate"),)
    elif isinstance(paths, str):
        migrations = (root / paths,)
    elif isinstance(paths, list) and all(isinstance(p, str) for p in paths):
        migrations = tuple(root / p for p in paths)
    else:
        raise section.error("migrations_paths", f"expected a folder or a list of folders, got {paths!r}")
    options = {k: v for k, v in section.data.items() if k not in ("adapter", "database", "timeout",
                                                                    "migrations_paths")}
    return DatabaseConfig(
        name=name,
        adapter=adapter,
        database=database,
        source=f"{file} [{env}] {name}",
        timeout=timeout_ms / 1000.0,
        migrations_paths=migrations,
        options=options,
    )


def load_databases(root: Path, env: str) -> dict[str, DatabaseConfig]:
    """The entries of ``config/database.yml`` for ``env`` (empty when the file does not exist)."""
    file = root / "config" / "database.yml"
    if not file.exists():
        return {}
    section = env_section(file, env)
    if section is None:
        raise ConfigError(f"no section for the {env!r} environment", file=file, env=env)
    if not section:
        return {}
    if "adapter" in section or "database" in section or "url" in section:
        return {"primary": _entry(root, file, env, "primary", section)}
    entries = {}
    for name, data in section.items():
        if not isinstance(data, dict):
            raise ConfigError(f"expected a database entry (a mapping), got {data!r}", file=file, env=env,
                              key=str(name))
        entries[str(name)] = _entry(root, file, env, str(name), data)
    return entries


def connects_to_name(value: Any, *, file: Path, env: str, key: str = "connects_to") -> str | None:
    """The entry named by ``connects_to: {database: {writing: NAME}}`` (``None`` when not given)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(f"expected {{database: {{writing: NAME}}}}, got {value!r}", file=file, env=env,
                          key=key)
    database = value.get("database")
    if database is None:
        return None
    if isinstance(database, str):
        return database
    if not isinstance(database, dict) or not isinstance(database.get("writing"), str):
        raise ConfigError(f"expected {{writing: NAME}}, got {database!r}", file=file, env=env,
                          key=f"{key}.database")
    writing: str = database["writing"]
    return writing
