"""One pub/sub subscription per stream per server, fanned out to the sockets on the event loop.

The pub/sub calls back in its listener thread; one ``call_soon_threadsafe`` per message hands it to the loop,
which forwards it to every local subscription of the stream. A thousand sockets on one stream cost one
wake-up of the loop per message, not a thousand. A pub/sub that calls back on this very loop (SQLite's, built
with ``loop=``: decision 0222) is dispatched from directly.

Subscribing a new stream reads the database (the table's newest id), so :meth:`StreamRouter.add` must not run
on the event loop (the ASGI session calls it from a worker thread), and no lock the loop takes (to dispatch, to
unsubscribe) is held across it: with the database slow or down, only the subscribing threads wait.
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
        #: Guards the dictionaries only, briefly: never held across a database call (the loop takes it for
        #: each message and for each unsubscribe).
        self._lock = threading.Lock()
        self._routes: dict[str, dict[Hashable, Handler]] = {}
        self._callbacks: dict[str, Callable[[str], None]] = {}
        #: Streams being subscribed with the pub/sub right now, set when that is done.
        self._subscribing: dict[str, threading.Event] = {}
        #: The pub/sub calls back on ``loop`` itself: no hand-over.
        self._on_loop = getattr(pubsub, "loop", None) is loop

    def add(self, stream: str, key: Hashable, handler: Handler) -> None:
        """Route ``stream`` to ``handler``; returns once the stream is subscribed with the pub/sub.

        Subscribing a stream new here reads the database: call this from a worker thread, never the loop. A
        second caller for the same stream waits for the first (and takes over if the first failed).
        """
        while True:
            with self._lock:
                self._routes.setdefault(stream, {})[key] = handler
                pending = self._subscribing.get(stream)
                if pending is None:
                    if stream in self._callbacks:
                        return
                    callback = self._callbacks[stream] = self._callback(stream)
                    pending = self._subscribing[stream] = threading.Event()
                    break
            pending.wait()
        try:
            self.pubsub.subscribe(stream, callback, raw=True)
        except BaseException:
            with self._lock:
                if self._callbacks.get(stream) is callback:
                    del self._callbacks[stream]
                routes = self._routes.get(stream)
                if routes is not None:
                    routes.pop(key, None)
                    if not routes:
                        del self._routes[stream]
            raise
        finally:
            with self._lock:
                del self._subscribing[stream]
            pending.set()
        with self._lock:
            kept = self._callbacks.get(stream) is callback
        if not kept:  # every route of the stream went away while it was being subscribed
            self.pubsub.unsubscribe(stream, callback)

    def remove(self, stream: str, key: Hashable) -> None:
        """Stop routing ``stream`` to ``key``'s handler; unsubscribes the stream when it was the last one (no
        database work: safe on the loop)."""
        with self._lock:
            routes = self._routes.get(stream)
            if routes is None:
                return
            routes.pop(key, None)
            if routes:
                return
            del self._routes[stream]
            callback = self._callbacks.pop(stream, None)
            if stream in self._subscribing:
                callback = None  # its subscriber sees the callback gone and unsubscribes it when done
        if callback is not None:
            self.pubsub.unsubscribe(stream, callback)

    def _callback(self, stream: str) -> Callable[[str], None]:
        if self._on_loop:
            def dispatch(payload: str) -> None:
                self._dispatch(stream, payload)

            return dispatch

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
        with self._lock:
            callbacks = [(s, c) for s, c in self._callbacks.items() if s not in self._subscribing]
            self._routes.clear()
            self._callbacks.clear()
        for stream, callback in callbacks:
            self.pubsub.unsubscribe(stream, callback)
