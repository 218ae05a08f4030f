"""Async twins of the cache API for ASGI apps: the same methods, run off the event loop when they may block.

No logic lives here: each twin calls its sync method, in a worker thread for a store whose backend may wait
on a lock or on I/O (the database store), directly for the in-process stores (a thread hop costs more than
their work). ``afetch`` and ``afetch_multi`` also await a factory that is a coroutine function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .store import CacheStats


def _awaitable(value: Any) -> bool:
    return hasattr(value, "__await__")


class AsyncMethods:
    """The ``a``-prefixed twins of :class:`~solidstack.cache.Store`'s methods."""

    #: Whether the backend may block (on a lock or I/O): the async twins then run it in a worker thread.
    blocking = False

    if TYPE_CHECKING:
        def read(self, key: Any, *, version: str | None = None) -> Any: ...
        def _read(self, key: Any, version: str | None) -> Any: ...
        def _extend_stale(self, key: Any, version: str | None, ttl: float) -> Any: ...
        def exist(self, key: Any, *, version: str | None = None) -> bool: ...
        # The options differ per method and store: declared as callables, which the store's methods satisfy.
        write: Callable[..., bool]
        def delete(self, key: Any) -> bool: ...
        increment: Callable[..., int | None]
        decrement: Callable[..., int | None]
        read_multi: Callable[..., dict[Any, Any]]
        write_multi: Callable[..., bool]
        def delete_multi(self, keys: Iterable[Any]) -> int: ...
        def clear(self) -> None: ...
        def stats(self) -> CacheStats: ...

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self.blocking:
            import asyncio  # here, not at the top: a sync app should not pay asyncio's import in memory

            return await asyncio.to_thread(fn, *args, **kwargs)
        return fn(*args, **kwargs)

    async def aread(self, key: Any, *, version: str | None = None) -> Any:
        return await self._call(self.read, key, version=version)

    async def aexist(self, key: Any, *, version: str | None = None) -> bool:
        return await self._call(self.exist, key, version=version)

    async def awrite(self, key: Any, value: Any, **options: Any) -> bool:
        return await self._call(self.write, key, value, **options)

    async def adelete(self, key: Any) -> bool:
        return await self._call(self.delete, key)

    async def aincrement(self, key: Any, amount: int = 1, **options: Any) -> int | None:
        return await self._call(self.increment, key, amount, **options)

    async def adecrement(self, key: Any, amount: int = 1, **options: Any) -> int | None:
        return await self._call(self.decrement, key, amount, **options)

    async def aread_multi(self, keys: Iterable[Any], **options: Any) -> dict[Any, Any]:
        return await self._call(self.read_multi, list(keys), **options)

    async def awrite_multi(self, items: Mapping[Any, Any], **options: Any) -> bool:
        return await self._call(self.write_multi, dict(items), **options)

    async def adelete_multi(self, keys: Iterable[Any]) -> int:
        return await self._call(self.delete_multi, list(keys))

    async def aclear(self) -> None:
        await self._call(self.clear)

    async def astats(self) -> CacheStats:
        return await self._call(self.stats)

    async def afetch(self, key: Any, factory: Callable[[], Any] | None = None, *, expires_in: float | None = None,
                     version: str | None = None, force: bool = False, skip_nil: bool = False,
                     race_condition_ttl: float | None = None) -> Any:
        """:meth:`fetch` for async code; ``factory`` may be a coroutine function."""
        from .store import _MISS as miss

        if not force:
            value = await self._call(self._read, key, version)
            if value is not miss:
                return value
        if factory is None:
            return None
        if race_condition_ttl and not force:
            stale = await self._call(self._extend_stale, key, version, float(race_condition_ttl))
            if stale is not miss:
                return stale
        value = factory()
        if _awaitable(value):
            value = await value
        if not (skip_nil and value is None):
            await self.awrite(key, value, expires_in=expires_in, version=version)
        return value

    async def afetch_multi(self, keys: Iterable[Any], factory: Callable[[Any], Any], **options: Any) -> dict[Any, Any]:
        """:meth:`fetch_multi` for async code; ``factory`` may be a coroutine function."""
        keys = list(keys)
        version = options.get("version")
        found = await self.aread_multi(keys, version=version)
        missing = {}
        for key in keys:
            if key not in found:
                value = factory(key)
                missing[key] = await value if _awaitable(value) else value
        if missing:
            await self.awrite_multi(missing, **options)
        return {key: found[key] if key in found else missing[key] for key in keys}
