"""A cache backed by the database: Solid Cache's model in Python, with memory and null stores beside it.

``cache`` is the store of the current app, made from ``config/cache.yml`` on first use (like ``Rails.cache``)::

    from solidstack.cache import cache

    cache.write("test", "value")
    cache.read("test")  # "value"
    cache.fetch("report", build_report, expires_in=300)

Stores can also be built directly: ``DatabaseStore("storage/cache.sqlite3")``, ``MemoryStore()``,
``NullStore()``.
"""

from __future__ import annotations

import threading
from typing import Any, cast

from .. import _on_reset
from ..config import current_app
from .codec import Codec, CorruptEntry
from .config import CacheConfig, build_store, database_config, load_cache_config
from .database import DatabaseStore
from .memory import MemoryStore, NullStore
from .store import CacheStats, Store

_current: Store | None = None
_current_lock = threading.Lock()


def current_store() -> Store:
    """The store of the current app (see :func:`solidstack.configure`), built on first use."""
    global _current
    store = _current
    if store is None:
        with _current_lock:
            if _current is None:
                app = current_app()
                _current = build_store(load_cache_config(app), app)
            store = _current
    return store


@_on_reset
def _reset() -> None:
    global _current
    with _current_lock:
        store, _current = _current, None
    if store is not None:
        store.close()


class _CurrentStore:
    """Stands for :func:`current_store` wherever a store is expected; resolved on every use."""

    def __getattr__(self, name: str) -> Any:
        return getattr(current_store(), name)

    def __getitem__(self, key: Any) -> Any:
        return current_store()[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        current_store()[key] = value

    def __delitem__(self, key: Any) -> None:
        del current_store()[key]

    def __contains__(self, key: Any) -> bool:
        return key in current_store()

    def __repr__(self) -> str:
        return f"<cache of the current app: {current_store()!r}>"


#: The current app's store, configured lazily from ``config/cache.yml``.
cache: Store = cast(Store, _CurrentStore())

__all__ = [
    "CacheConfig",
    "CacheStats",
    "Codec",
    "CorruptEntry",
    "DatabaseStore",
    "MemoryStore",
    "NullStore",
    "Store",
    "build_store",
    "cache",
    "current_store",
    "database_config",
    "load_cache_config",
]
