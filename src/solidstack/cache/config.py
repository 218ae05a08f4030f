"""``config/cache.yml`` in the format ``solid_cache:install`` writes, and the store it describes.

Per environment (after ``<<: *default`` merges):

- ``store``: ``database`` (default), ``memory`` or ``null`` (or Rails' ``solid_cache_store``, ``memory_store``,
  ``null_store``) — what Rails sets as ``config.cache_store``; ``SOLIDSTACK_CACHE_STORE`` overrides it.
- ``database: NAME`` or ``connects_to: {database: {writing: NAME}}``: the entry of ``database.yml`` (default
  ``cache``; without a ``database.yml``, ``storage/<env>_cache.sqlite3``).
- ``store_options``: ``max_age``, ``max_size``, ``max_entries``, ``namespace`` as Solid Cache reads them, and
  ``expires_in``, ``expiry_batch_size``, ``expiry_method`` (``thread``/``inline``), ``serializer``
  (``safe``/``pickle``), ``secret``, ``compress`` (bool), ``compress_threshold`` (bytes), ``busy_timeout``.
- ``encrypt: true`` with ``encryption_key`` (or ``SOLIDSTACK_CACHE_ENCRYPTION_KEY``); ``size_estimate_samples``.

The pickle serializer's ``secret`` falls back to ``SOLIDSTACK_CACHE_SECRET``, then ``SECRET_KEY_BASE``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..config import App, ConfigError, DatabaseConfig, Section
from ..config.database import connects_to_name
from ..config.loader import boolean, count, env_section, positive_duration, positive_wait, string
from .codec import SERIALIZERS
from .database import DEFAULT_MAX_AGE
from .expiry import METHODS
from .store import Store

STORES = ("database", "memory", "null")
STORE_VAR = "SOLIDSTACK_CACHE_STORE"
SECRET_VARS = ("SOLIDSTACK_CACHE_SECRET", "SECRET_KEY_BASE")
ENCRYPTION_KEY_VAR = "SOLIDSTACK_CACHE_ENCRYPTION_KEY"


@dataclass(frozen=True)
class CacheConfig:
    """Everything ``cache.yml`` says for one environment."""

    store: str = "database"
    database: str = "cache"
    max_age: float | None = DEFAULT_MAX_AGE
    max_size: int | None = None
    max_entries: int | None = None
    namespace: str | None = None
    expires_in: float | None = None
    expiry_batch_size: int = 100
    expiry_method: str = "thread"
    size_estimate_samples: int = 1000
    serializer: str = "safe"
    secret: str | None = field(default=None, repr=False)
    encrypt: bool = False
    encryption_key: str | None = field(default=None, repr=False)
    compress_threshold: int | None = 1024
    busy_timeout: float = 1.0
    file: str = field(default="(defaults)", compare=False)


# Upper bounds (docs/decisions/0010): beyond them a value is a typo, not a cache.
MAX_SIZE = 2**50  # 1 PiB
MAX_ENTRIES = 10**12
MAX_BATCH_SIZE = 100_000
MAX_COMPRESS_THRESHOLD = 2**30  # 1 GiB: above it nothing is ever compressed; write `compress: false`
MAX_SIZE_SAMPLES = 1_000_000

#: Rails' names for the same stores (``config.cache_store = :solid_cache_store``).
STORE_ALIASES = {"solid_cache_store": "database", "memory_store": "memory", "null_store": "null"}


def _choice(options: tuple[str, ...], what: str, aliases: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    def convert(value: Any) -> str:
        name = string(value)
        name = (aliases or {}).get(name, name)
        if name not in options:
            raise ValueError(f"unknown {what} {name!r} (known: {', '.join(options)})")
        return name

    return convert


def _store_options(section: Section, env: str) -> dict[str, Any]:
    raw = section.raw("store_options")
    options = section.child("store_options", raw if raw is not None else {})
    values: dict[str, Any] = {
        "max_age": options.get("max_age", positive_duration, DEFAULT_MAX_AGE),
        "max_size": options.get("max_size", count(MAX_SIZE), None),
        "max_entries": options.get("max_entries", count(MAX_ENTRIES), None),
        "namespace": options.get("namespace", string, None),
        "expires_in": options.get("expires_in", positive_duration, None),
        "expiry_batch_size": options.get("expiry_batch_size", count(MAX_BATCH_SIZE), 100),
        "expiry_method": options.get("expiry_method", _choice(METHODS, "expiry method"), "thread"),
        "serializer": options.get("serializer", _choice(SERIALIZERS, "serializer"), "safe"),
        "secret": options.get("secret", string, None),
        "busy_timeout": options.get("busy_timeout", positive_wait, 1.0),
    }
    compress = options.get("compress", boolean, True)
    threshold = options.get("compress_threshold", count(MAX_COMPRESS_THRESHOLD), 1024)
    values["compress_threshold"] = threshold if compress else None
    options.finish()
    if values["serializer"] == "pickle" and not values["secret"]:
        values["secret"] = next((os.environ[v] for v in SECRET_VARS if os.environ.get(v)), None)
        if not values["secret"]:
            raise options.error("serializer", "the pickle serializer signs every entry and needs a secret: set "
                                "store_options.secret, or SOLIDSTACK_CACHE_SECRET or SECRET_KEY_BASE")
    return values


def parse_cache_config(data: dict[str, Any] | None, *, file: str | Path, env: str) -> CacheConfig:
    """A :class:`CacheConfig` from one environment section of ``cache.yml``."""
    section = Section(data or {}, file=file, env=env)
    if section.has("databases"):
        raise section.error("databases", "sharding a cache over several databases is not supported; name one "
                            "database with database: or connects_to:")
    database = section.get("database", string, None)
    connects = connects_to_name(section.raw("connects_to"), file=Path(file), env=env)
    if database and connects and database != connects:
        raise section.error("connects_to", f"names database {connects!r} but database: says {database!r}")
    encrypt = section.get("encrypt", boolean, False)
    key = section.get("encryption_key", string, None) or os.environ.get(ENCRYPTION_KEY_VAR) or None
    if encrypt and not key:
        raise section.error("encrypt", f"encryption needs a key: set encryption_key, or {ENCRYPTION_KEY_VAR}")
    if encrypt:
        try:
            import cryptography  # noqa: F401
        except ImportError:
            raise section.error("encrypt", "encryption needs the cryptography package: "
                                "pip install 'solidstack[encryption]'") from None
    # `store: null` is YAML's null: it means the null store, not "unset".
    store = "null" if section.has("store") and section.data["store"] is None else "database"
    config = CacheConfig(
        store=section.get("store", _choice(STORES, "cache store", STORE_ALIASES), store),
        database=database or connects or "cache",
        encrypt=encrypt,
        encryption_key=key if encrypt else None,
        size_estimate_samples=section.get("size_estimate_samples", count(MAX_SIZE_SAMPLES), 1000),
        file=str(file),
        **_store_options(section, env),
    )
    section.finish()
    return config


def load_cache_config(app: App, file: str | Path | None = None) -> CacheConfig:
    """``cache.yml`` of ``app`` (or ``file``) for its environment; defaults when the file does not exist."""
    path = Path(file) if file else app.config_file("cache.yml")
    if file and not path.exists():
        raise ConfigError("file not found", file=path)
    data = env_section(path, app.env) if path.exists() else None
    config = parse_cache_config(data, file=path, env=app.env)
    override = os.environ.get(STORE_VAR)
    if override:
        try:
            config = replace(config, store=_choice(STORES, "cache store", STORE_ALIASES)(override))
        except ValueError as exc:
            raise ConfigError(str(exc), key=STORE_VAR) from None
    return config


def database_config(app: App) -> DatabaseConfig | None:
    """The cache's database entry (for ``solidstack db migrate``); ``None`` for the memory and null stores."""
    config = load_cache_config(app)
    if config.store != "database":
        return None
    wanted_by = str(app.config_file("cache.yml")) if config.database != "cache" else None
    return app.database(config.database, wanted_by=wanted_by)


def build_store(config: CacheConfig, app: App | None = None) -> Store:
    """The store ``config`` describes (its database taken from ``app``'s ``database.yml``)."""
    from .database import DatabaseStore
    from .memory import MemoryStore, NullStore

    common: dict[str, Any] = {
        "namespace": config.namespace, "expires_in": config.expires_in, "serializer": config.serializer,
        "secret": config.secret, "encryption_key": config.encryption_key,
        "compress_threshold": config.compress_threshold,
    }
    if config.store == "null":
        return NullStore(**common)
    if config.store == "memory":
        return MemoryStore(max_size=config.max_size or 32 * 1024 * 1024, max_entries=config.max_entries, **common)
    if app is None:
        raise ValueError("a database store needs the app whose database.yml names its database")
    wanted_by = config.file if config.database != "cache" else None
    return DatabaseStore(
        app.database(config.database, wanted_by=wanted_by),
        max_age=config.max_age, max_entries=config.max_entries, max_size=config.max_size,
        expiry_batch_size=config.expiry_batch_size, expiry_method=config.expiry_method,
        size_estimate_samples=config.size_estimate_samples, busy_timeout=config.busy_timeout, **common,
    )
