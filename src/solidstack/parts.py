"""The parts that keep tables in a database, and how each finds its database for an app.

``solidstack db migrate`` walks this list. Each part module names a function ``database_config(app)`` that
returns the part's database entry for the app's environment, or ``None`` when the part uses no database there
(an in-memory cache store, cable's ``test`` adapter).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import App, DatabaseConfig


@dataclass(frozen=True)
class Part:
    name: str
    package: str
    config_module: str

    def database_config(self, app: App) -> DatabaseConfig | None:
        module = import_module(self.config_module)
        return module.database_config(app)


PARTS: tuple[Part, ...] = (
    Part("queue", "solidstack.queue", "solidstack.queue.config"),
    Part("cache", "solidstack.cache", "solidstack.cache.config"),
    Part("cable", "solidstack.cable", "solidstack.cable.config"),
)
