"""``config/cable.yml``: which pub/sub adapter, which database, how often to poll, how long to keep messages.

The seed's file nests ``polling_interval`` and ``message_retention`` inside ``connects_to:`` beside
``database:``; Solid Cable reads them at the section's top level. Both places are accepted (top level wins).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import App, DatabaseConfig, Section
from ..config.database import connects_to_name
from ..config.loader import boolean, count, duration, env_override, part_section, positive_wait, string
from .limits import ConnectionLimits, rate

#: ``solid_cable`` is the database adapter; ``test`` and ``async`` deliver in memory within one process
#: (``test`` also records every broadcast for assertions).
ADAPTERS = ("solid_cable", "test", "async")
ADAPTER_VAR = "SOLIDSTACK_CABLE_ADAPTER"
#: Rows deleted per trim pass at most (docs/decisions/0010).
MAX_TRIM_BATCH_SIZE = 100_000
#: The per-socket limits (subscriptions, command burst) of ``limits.py``: an absurd value is a typo.
MAX_LIMIT = 1_000_000


@dataclass(frozen=True)
class CableConfig:
    """Everything ``cable.yml`` says for one environment."""

    adapter: str = "solid_cable"
    database: str = "cable"
    polling_interval: float = 0.1
    message_retention: float = 86400.0
    autotrim: bool = True
    trim_batch_size: int = 100
    silence_polling: bool = True
    #: Origins a browser may open the socket from; ``None`` means same origin as the Host header only.
    allowed_request_origins: tuple[str, ...] | None = None
    #: Per-socket bounds: subscriptions held, and the command rate (``max_subscriptions_per_connection``,
    #: ``max_commands_per_second``, ``max_commands_burst``).
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    file: str = field(default="(defaults)", compare=False)

    @property
    def uses_database(self) -> bool:
        return self.adapter == "solid_cable"


def _adapter(value: Any) -> str:
    name = string(value)
    if name not in ADAPTERS:
        raise ValueError(f"unknown cable adapter {name!r} (known: {', '.join(ADAPTERS)})")
    return name


def _origins(value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise ValueError(f"expected an origin or a list of origins, got {value!r}")
    for item in items:
        if len(item) > 1 and item.startswith("/") and item.endswith("/"):
            try:
                re.compile(item[1:-1])
            except re.error as exc:
                raise ValueError(f"invalid origin pattern {item!r}: {exc}") from None
    return tuple(items)


def parse_cable_config(data: dict[str, Any] | None, *, file: str | Path, env: str) -> CableConfig:
    """A :class:`CableConfig` from one environment section of ``cable.yml``."""
    section = Section(data or {}, file=file, env=env)
    adapter = section.get("adapter", _adapter, "solid_cable")
    connects_to = section.raw("connects_to")
    nested: dict[str, Any] = {}
    if isinstance(connects_to, dict):
        # The seed's quirk: settings beside `database:` inside `connects_to:`.
        inner = section.child("connects_to", connects_to)
        inner.raw("database")
        nested["polling_interval"] = inner.get("polling_interval", positive_wait, None)
        nested["message_retention"] = inner.get("message_retention", duration, None)
        inner.finish()
    database = connects_to_name(connects_to, file=Path(file), env=env) or "cable"

    def pick(key: str, convert: Any, default: Any) -> Any:
        value = section.get(key, convert, None)
        if value is None:
            value = nested.get(key)
        return default if value is None else value

    config = CableConfig(
        adapter=adapter,
        database=database,
        polling_interval=pick("polling_interval", positive_wait, 0.1),
        message_retention=pick("message_retention", duration, 86400.0),
        autotrim=section.get("autotrim", boolean, True),
        trim_batch_size=section.get("trim_batch_size", count(MAX_TRIM_BATCH_SIZE), 100),
        silence_polling=section.get("silence_polling", boolean, True),
        allowed_request_origins=section.get("allowed_request_origins", _origins, None),
        limits=ConnectionLimits(
            max_subscriptions=section.get("max_subscriptions_per_connection", count(MAX_LIMIT), 100),
            commands_per_second=section.get("max_commands_per_second", rate, 50.0),
            burst=section.get("max_commands_burst", count(MAX_LIMIT), 200),
        ),
        file=str(file),
    )
    section.finish()
    return config


def load_cable_config(app: App, file: str | Path | None = None) -> CableConfig:
    """``cable.yml`` of ``app`` (or ``file``) for its environment; defaults when the file does not exist.

    ``SOLIDSTACK_CABLE_ADAPTER`` overrides the adapter, for scripts and test runs.
    """
    path, data = part_section(app, "cable.yml", file)
    return env_override(parse_cable_config(data, file=path, env=app.env), ADAPTER_VAR, "adapter", _adapter)


def database_config(app: App) -> DatabaseConfig | None:
    """Cable's database entry (for ``solidstack db migrate``); ``None`` for the in-memory adapters."""
    config = load_cable_config(app)
    if not config.uses_database:
        return None
    wanted_by = str(app.config_file("cable.yml")) if config.database != "cable" else None
    return app.database(config.database, wanted_by=wanted_by)
