"""The WebSocket endpoint: Action Cable's protocol (``actioncable-v1-json``) over ASGI, with Starlette.

Serve it in any Starlette/FastAPI app (``WebSocketRoute("/cable", CableApp(...))``) or run it alone
(``solidstack cable serve``). Frames, as the ``@rails/actioncable`` client expects them:

- server → client: ``{"type": "welcome"}``, ``{"type": "ping", "message": <unix time>}`` every 3 s,
  ``{"identifier": id, "type": "confirm_subscription" | "reject_subscription"}``,
  ``{"identifier": id, "message": data}``, ``{"type": "disconnect", "reason": r, "reconnect": bool}``;
- client → server: ``{"command": "subscribe" | "unsubscribe", "identifier": id}`` and
  ``{"command": "message", "identifier": id, "data": "<json>"}``, where ``id`` is a JSON string.

Bad input (malformed JSON, an identifier that is not JSON, unknown commands, oversized frames, unknown
channels) is logged and answered where the protocol has an answer; the connection stays open.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from collections.abc import Iterable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from .adapter import pubsub as process_pubsub
from .channel import Channel, RejectedError
from .connection import Connection, UnauthorizedError
from .pubsub import PubSub
from .remote import RemoteConnections
from .router import StreamRouter

log = logging.getLogger("solidstack.cable")

PROTOCOL = "actioncable-v1-json"
PING_INTERVAL = 3.0
#: A client frame above this size (in characters) is dropped and logged.
MAX_MESSAGE_SIZE = 1024 * 1024
#: Frames waiting for a slow client; past this the client is disconnected rather than let memory grow.
MAX_PENDING_FRAMES = 10_000


async def call(fn: Any, *args: Any) -> Any:
    """Call a channel or connection hook: ``async def`` on the loop, a plain function in a worker thread."""
    if asyncio.iscoroutinefunction(fn):
        return await fn(*args)
    result = await run_in_threadpool(fn, *args)
    if asyncio.iscoroutine(result):
        return await result
    return result


def _overrides(bound: Any, base: Any) -> bool:
    return getattr(bound, "__func__", None) is not base


def origin_allowed(origin: str | None, host: str | None, scheme: str, allowed: Iterable[str] | None) -> bool:
    """Action Cable's origin check: the page's own host, or an origin in ``allowed`` (``"/regex/"`` or exact).

    A handshake without an ``Origin`` header is not from a browser (browsers always send one), so cross-site
    WebSocket hijacking, which the check prevents, does not apply to it: it is allowed.
    """
    if origin is None:
        return True
    http_scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
    if host and origin.lower() == f"{http_scheme}://{host}".lower():
        return True
    for item in allowed or ():
        if item == "*" or item == origin:
            return True
        if len(item) > 1 and item.startswith("/") and item.endswith("/") and re.search(item[1:-1], origin):
            return True
    return False


class _Session:
    """One open socket: its outbox, its subscriptions, and the :class:`Runtime` a connection talks to."""

    def __init__(self, app: CableApp, websocket: WebSocket, loop: asyncio.AbstractEventLoop) -> None:
        self.app = app
        self.websocket = websocket
        self.loop = loop
        self.loop_thread = threading.get_ident()
        self.outbox: asyncio.Queue[str | None] = asyncio.Queue()
        self.subscriptions: dict[str, Channel] = {}
        #: Broadcasts that arrive while a subscription awaits its confirmation are held, then sent after it.
        self.pending: dict[str, list[str]] = {}
        #: Stream subscriptions started on the event loop (``async def subscribed``), running in worker threads
        #: because subscribing reads the database; a subscription is confirmed once they are done.
        self.adding: list[asyncio.Future[Any]] = []
        self.closing = False
        self.app_connection: Connection | None = None

    # -- Runtime ---------------------------------------------------------------------------------------------

    def send(self, frame: dict[str, Any]) -> None:
        self.send_text(json.dumps(frame, separators=(",", ":"), ensure_ascii=False))

    def send_text(self, text: str) -> None:
        if threading.get_ident() == self.loop_thread:
            self._put(text)
        else:
            self.loop.call_soon_threadsafe(self._put, text)

    def _put(self, text: str | None) -> None:
        if self.closing and text is not None:
            return
        if self.outbox.qsize() >= MAX_PENDING_FRAMES and text is not None:
            log.warning("cable: client too slow (%d frames waiting); disconnecting it", self.outbox.qsize())
            self.close("slow_client", True)
            return
        self.outbox.put_nowait(text)

    def add_stream(self, channel: Channel, stream: str, callback: Any) -> None:
        handler = self._stream_handler(channel, callback)
        if threading.get_ident() == self.loop_thread:  # never the database on the event loop
            self.adding.append(self.loop.run_in_executor(None, self.app.router.add, stream, (self, channel), handler))
        else:
            self.app.router.add(stream, (self, channel), handler)

    def remove_stream(self, channel: Channel, stream: str) -> None:
        if self.adding and threading.get_ident() == self.loop_thread:
            # After the adds still running in threads, or a late add would bring the route back.
            pending = list(self.adding)

            async def remove_later() -> None:
                await asyncio.gather(*pending, return_exceptions=True)
                self.app.router.remove(stream, (self, channel))

            self.adding.append(self.loop.create_task(remove_later()))
            return
        self.app.router.remove(stream, (self, channel))

    async def streams_added(self) -> None:
        """Wait for the stream subscriptions started on the loop; raises the first that failed."""
        while self.adding:
            adding, self.adding = self.adding, []
            for result in await asyncio.gather(*adding, return_exceptions=True):
                if isinstance(result, BaseException):
                    raise result

    def close(self, reason: str, reconnect: bool) -> None:
        if threading.get_ident() != self.loop_thread:
            self.loop.call_soon_threadsafe(self.close, reason, reconnect)
            return
        if self.closing:
            return
        self.closing = True  # first: nothing queued after this, not even by a full outbox calling back here
        self.outbox.put_nowait(json.dumps({"type": "disconnect", "reason": reason, "reconnect": reconnect}))
        self.outbox.put_nowait(None)

    def internal_message(self, payload: str) -> None:
        """A command on the connection's internal stream (:mod:`.remote`); on the event loop."""
        try:
            message = json.loads(payload)
        except ValueError:
            message = None
        if isinstance(message, dict) and message.get("type") == "disconnect":
            log.info("cable: removing connection %s (remote disconnect)",
                     self.app_connection.connection_identifier if self.app_connection else "?")
            self.close("remote", message.get("reconnect", True) is not False)
        else:
            log.warning("cable: ignored an internal message it does not know: %.200s", payload)

    # -- streams ---------------------------------------------------------------------------------------------

    def _stream_handler(self, channel: Channel, callback: Any) -> Any:
        identifier = channel.identifier
        prefix = '{"identifier":' + json.dumps(identifier, ensure_ascii=False) + ',"message":'

        def forward(payload: str) -> None:
            held = self.pending.get(identifier)
            if held is not None:
                held.append(payload)
            else:
                self._put(prefix + payload + "}")

        def with_callback(payload: str) -> None:
            try:
                result = callback(json.loads(payload))
                if asyncio.iscoroutine(result):
                    self.loop.create_task(result)
            except Exception:
                log.exception("cable: stream callback of %s failed", channel.channel_identifier())

        return forward if callback is None else with_callback

    # -- commands --------------------------------------------------------------------------------------------

    async def handle(self, text: str) -> None:
        if len(text) > self.app.max_message_size:
            log.warning("cable: dropped a %d-character frame (limit %d)", len(text), self.app.max_message_size)
            return
        try:
            data = json.loads(text)
        except ValueError:
            log.warning("cable: dropped a frame that is not JSON: %.200r", text)
            return
        if not isinstance(data, dict):
            log.warning("cable: dropped a frame that is not a JSON object: %.200r", text)
            return
        command, identifier = data.get("command"), data.get("identifier")
        if not isinstance(identifier, str):
            log.warning("cable: dropped a %r command without a string identifier", command)
            return
        if command == "subscribe":
            await self.subscribe(identifier)
        elif command == "unsubscribe":
            await self.unsubscribe(identifier)
        elif command == "message":
            await self.perform(identifier, data.get("data"))
        else:
            log.warning("cable: received unrecognized command %.100r", command)

    async def subscribe(self, identifier: str) -> None:
        if identifier in self.subscriptions:
            log.info("cable: already subscribed to %s", identifier)
            return
        try:
            params = json.loads(identifier)
        except ValueError:
            params = None
        if not isinstance(params, dict):
            log.warning("cable: rejected a subscription whose identifier is not a JSON object: %.200r", identifier)
            self.send({"identifier": identifier, "type": "reject_subscription"})
            return
        channel_class = self.app.channels.get(params.get("channel"))  # type: ignore[arg-type]
        if channel_class is None:
            log.warning("cable: rejected a subscription to unknown channel %.100r", params.get("channel"))
            self.send({"identifier": identifier, "type": "reject_subscription"})
            return
        channel = channel_class(self.app_connection, identifier, params)  # type: ignore[arg-type]
        self.subscriptions[identifier] = channel
        self.pending[identifier] = []
        try:
            await call(channel.subscribed)
            await self.streams_added()
        except RejectedError:
            channel.reject()
        except Exception:
            log.exception("cable: %s#subscribed failed; rejecting", channel.channel_identifier())
            channel.reject()
        held = self.pending.pop(identifier, [])
        if channel.rejected:
            channel.stop_all_streams()
            self.subscriptions.pop(identifier, None)
            log.info("cable: %s rejected a subscription", channel.channel_identifier())
            self.send({"identifier": identifier, "type": "reject_subscription"})
            return
        self.send({"identifier": identifier, "type": "confirm_subscription"})
        prefix = '{"identifier":' + json.dumps(identifier, ensure_ascii=False) + ',"message":'
        for payload in held:
            self._put(prefix + payload + "}")

    async def unsubscribe(self, identifier: str) -> None:
        channel = self.subscriptions.pop(identifier, None)
        if channel is None:
            log.warning("cable: unable to find subscription with identifier %.200r", identifier)
            return
        await self._remove(channel)

    async def _remove(self, channel: Channel) -> None:
        channel.stop_all_streams()
        if _overrides(channel.unsubscribed, Channel.unsubscribed):
            try:
                await call(channel.unsubscribed)
            except Exception:
                log.exception("cable: %s#unsubscribed failed", channel.channel_identifier())

    async def perform(self, identifier: str, raw: Any) -> None:
        channel = self.subscriptions.get(identifier)
        if channel is None:
            log.warning("cable: unable to find subscription with identifier %.200r", identifier)
            return
        try:
            data = json.loads(raw) if isinstance(raw, str) else None
        except ValueError:
            data = None
        if not isinstance(data, dict):
            log.warning("cable: dropped a message whose data is not a JSON object: %.200r", raw)
            return
        resolved = channel.resolve_action(data)
        if resolved is None:
            return
        method, args = resolved
        try:
            await call(method, *args)
        except Exception:
            log.exception("cable: %s#%s failed", channel.channel_identifier(), data.get("action", "receive"))

    # -- life ------------------------------------------------------------------------------------------------

    async def run(self) -> None:
        writer = asyncio.create_task(self._write())
        try:
            while not self.closing:
                message = await self.websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                text = message.get("text")
                if text is None:
                    log.warning("cable: dropped a binary frame (%s uses text frames)", PROTOCOL)
                    continue
                await self.handle(text)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            self.closing = True
            self.outbox.put_nowait(None)
            for channel in list(self.subscriptions.values()):
                await self._remove(channel)
            self.subscriptions.clear()
            await writer

    async def _write(self) -> None:
        try:
            while True:
                text = await self.outbox.get()
                if text is None:
                    break
                await self.websocket.send_text(text)
            await self.websocket.close()
        except Exception:  # the client went away; the reader notices and cleans up
            pass


class CableApp:
    """An ASGI app speaking Action Cable's protocol.

    ``channels``: the channel classes clients may subscribe to (by ``identifier_name`` or class name).
    ``connection_class``: identifies the user of each socket (:class:`Connection`). ``pubsub``: where
    broadcasts come from (default: this process's, from ``config/cable.yml``). ``allowed_request_origins``:
    origins besides the page's own host (default: ``cable.yml``'s).
    """

    def __init__(self, channels: Iterable[type[Channel]] = (), *, connection_class: type[Connection] = Connection,
                 pubsub: PubSub | None = None, allowed_request_origins: Iterable[str] | None = None,
                 max_message_size: int = MAX_MESSAGE_SIZE, ping_interval: float = PING_INTERVAL) -> None:
        self.channels: dict[str, type[Channel]] = {cls.channel_identifier(): cls for cls in channels}
        self.connection_class = connection_class
        self._pubsub = pubsub
        self._origins = tuple(allowed_request_origins) if allowed_request_origins is not None else None
        self.max_message_size = max_message_size
        self.ping_interval = ping_interval
        self.sessions: set[_Session] = set()
        self._router: StreamRouter | None = None
        self._pinger: asyncio.Task[None] | None = None

    @property
    def pubsub(self) -> PubSub:
        if self._pubsub is None:
            self._pubsub = process_pubsub()
        return self._pubsub

    @property
    def router(self) -> StreamRouter:
        """Created on the server's event loop when the first socket opens."""
        if self._router is None:
            raise RuntimeError("the cable app has not served a socket yet")
        return self._router

    @property
    def allowed_request_origins(self) -> tuple[str, ...] | None:
        if self._origins is None:
            from ..config import current_app
            from .config import load_cable_config

            self._origins = load_cable_config(current_app()).allowed_request_origins or ()
        return self._origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "websocket":
            await PlainTextResponse("This endpoint speaks WebSocket (Action Cable).", 426)(scope, receive, send)
            return
        websocket = WebSocket(scope, receive, send)
        origin, host = websocket.headers.get("origin"), websocket.headers.get("host")
        if not origin_allowed(origin, host, scope.get("scheme", "ws"), self.allowed_request_origins):
            log.warning("cable: request origin not allowed: %s", origin)
            await websocket.close(code=1008)
            return
        subprotocol = PROTOCOL if PROTOCOL in scope.get("subprotocols", ()) else None
        await websocket.accept(subprotocol=subprotocol)
        await self._serve(websocket)

    async def _serve(self, websocket: WebSocket) -> None:
        loop = asyncio.get_running_loop()
        if self._router is None:
            self._router = StreamRouter(self.pubsub, loop)
        session = _Session(self, websocket, loop)
        connection = self.connection_class(websocket, session)
        session.app_connection = connection
        try:
            if _overrides(connection.connect, Connection.connect):
                await call(connection.connect)
        except UnauthorizedError:
            log.info("cable: an unauthorized connection attempt was rejected")
            await self._refuse(websocket, "unauthorized", False)
            return
        except Exception:
            log.exception("cable: %s.connect failed", type(connection).__name__)
            await self._refuse(websocket, "invalid_request", True)
            return
        self.sessions.add(session)
        self._ensure_pinger()
        internal = connection.internal_channel
        if internal is not None:  # remote commands for this identity (see remote.py); off the loop: a database read
            await loop.run_in_executor(None, self.router.add, internal, (session, internal), session.internal_message)
        session.send({"type": "welcome"})
        try:
            await session.run()
        finally:
            if internal is not None:
                self.router.remove(internal, (session, internal))
            self.sessions.discard(session)
            if _overrides(connection.disconnect, Connection.disconnect):
                try:
                    await call(connection.disconnect)
                except Exception:
                    log.exception("cable: %s.disconnect failed", type(connection).__name__)

    @staticmethod
    async def _refuse(websocket: WebSocket, reason: str, reconnect: bool) -> None:
        try:
            await websocket.send_text(json.dumps({"type": "disconnect", "reason": reason, "reconnect": reconnect}))
            await websocket.close()
        except Exception:
            pass

    def _ensure_pinger(self) -> None:
        if self._pinger is None or self._pinger.done():
            self._pinger = asyncio.get_running_loop().create_task(self._ping())

    async def _ping(self) -> None:
        while self.sessions:
            frame = json.dumps({"type": "ping", "message": int(time.time())})
            for session in list(self.sessions):
                session.send_text(frame)
            await asyncio.sleep(self.ping_interval)

    @property
    def remote_connections(self) -> RemoteConnections:
        """This app's connections on every server: ``cable.remote_connections.where(current_user=u).disconnect()``."""
        return RemoteConnections(self.connection_class, self._pubsub)

    async def disconnect_all(self, reason: str = "server_restart", reconnect: bool = True) -> None:
        """Tell every client to go (``server_restart``: come back soon) and close their sockets."""
        for session in list(self.sessions):
            session.close(reason, reconnect)
        await asyncio.sleep(0)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._router is not None:
                    self._router.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
