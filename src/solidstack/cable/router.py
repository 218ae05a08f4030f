"""One pub/sub subscription per stream per server, fanned out to the sockets on the event loop.

The pub/sub calls back in its listener thread; one ``call_soon_threadsafe`` per message hands it to the loop,
which forwards it to every local subscription of the stream. A thousand sockets on one stream cost one
wake-up of the loop per message, not a thousand.

Subscribing a new stream reads the database (the table's newest id), so :meth:`StreamRouter.add` must not run
on the event loop (the ASGI session calls it from a worker thread), and the lock the loop takes to dispatch is
never held across it: a second lock orders subscribes and unsubscribes.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Hashable

from .pubsub import PubSub

log = logging.getLogger("solidstack.cable")

Handler = Callable[[str], None]


class StreamRouter:
    """Routes each stream's messages (JSON text) to the handlers registered for it on ``loop``."""

    def __init__(self, pubsub: PubSub, loop: asyncio.AbstractEventLoop) -> None:
        self.pubsub = pubsub
        self.loop = loop
        #: Guards the dictionaries only, briefly (the loop takes it for each message).
        self._lock = threading.Lock()
        #: Orders subscribes and unsubscribes with the pub/sub (held across a subscribe's database read).
        self._changing = threading.Lock()
        self._routes: dict[str, dict[Hashable, Handler]] = {}
        self._callbacks: dict[str, Callable[[str], None]] = {}

    def add(self, stream: str, key: Hashable, handler: Handler) -> None:
        """Route ``stream`` to ``handler``; subscribes the stream (a database read) when it is new here."""
        with self._changing:
            with self._lock:
                callback = None if stream in self._callbacks else self._callback(stream)
            if callback is not None:
                self.pubsub.subscribe(stream, callback, raw=True)
            with self._lock:
                if callback is not None:
                    self._callbacks[stream] = callback
                self._routes.setdefault(stream, {})[key] = handler

    def remove(self, stream: str, key: Hashable) -> None:
        with self._changing:
            with self._lock:
                routes = self._routes.get(stream)
                if routes is None:
                    return
                routes.pop(key, None)
                if routes:
                    return
                del self._routes[stream]
                callback = self._callbacks.pop(stream)
            self.pubsub.unsubscribe(stream, callback)

    def _callback(self, stream: str) -> Callable[[str], None]:
        def on_message(payload: str) -> None:
            try:
                self.loop.call_soon_threadsafe(self._dispatch, stream, payload)
            except RuntimeError:  # the loop is closed: the server is gone
                pass

        return on_message

    def _dispatch(self, stream: str, payload: str) -> None:
        with self._lock:
            handlers = list(self._routes.get(stream, {}).values())
        for handler in handlers:
            try:
                handler(payload)
            except Exception:
                log.exception("cable: delivering a message of %r failed", stream)

    @property
    def streams(self) -> list[str]:
        with self._lock:
            return list(self._routes)

    def close(self) -> None:
        """Drop every subscription this router holds with the pub/sub."""
        with self._changing:
            with self._lock:
                callbacks = list(self._callbacks.items())
                self._routes.clear()
                self._callbacks.clear()
            for stream, callback in callbacks:
                self.pubsub.unsubscribe(stream, callback)
