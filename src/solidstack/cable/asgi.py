"""The WebSocket endpoint: Action Cable's protocol (``actioncable-v1-json``) over ASGI, with Starlette.

Serve it in any Starlette/FastAPI app (``WebSocketRoute("/cable", CableApp(...))``) or run it alone
(``solidstack cable serve``). Frames, as the ``@rails/actioncable`` client expects them:

- server → client: ``{"type": "welcome"}``, ``{"type": "ping", "message": <unix time>}`` every 3 s,
  ``{"identifier": id, "type": "confirm_subscription" | "reject_subscription"}``,
  ``{"identifier": id, "message": data}``, ``{"type": "disconnect", "reason": r, "reconnect": bool}``;
- client → server: ``{"command": "subscribe" | "unsubscribe", "identifier": id}`` and
  ``{"command": "message", "identifier": id, "data": "<json>"}``, where ``id`` is a JSON string.

Bad input (malformed JSON, JSON nested too deeply to parse, an identifier that is not JSON, unknown commands,
oversized frames, unknown channels) is logged and answered where the protocol has an answer; the connection
stays open. Abuse is bounded per socket (:mod:`.limits`): a subscription beyond
``max_subscriptions_per_connection`` gets ``reject_subscription``; a socket sending frames faster than its
command budget gets ``disconnect`` (``too_many_commands``, no reconnect) and is closed. Both are logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Iterable

from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from .adapter import pubsub as process_pubsub
from .channel import Channel
from .connection import Connection, UnauthorizedError
from .limits import ConnectionLimits
from .pubsub import PubSub, SolidCablePubSub
from .remote import RemoteConnections
from .router import StreamRouter
from .session import PROTOCOL, Session, call, overrides

log = logging.getLogger("solidstack.cable")

PING_INTERVAL = 3.0
#: A client frame above this size (in characters) is dropped and logged.
MAX_MESSAGE_SIZE = 1024 * 1024


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


class CableApp:
    """An ASGI app speaking Action Cable's protocol.

    ``channels``: the channel classes clients may subscribe to (by ``identifier_name`` or class name).
    ``connection_class``: identifies the user of each socket (:class:`Connection`). ``pubsub``: where
    broadcasts come from (default: this process's, from ``config/cable.yml``). ``allowed_request_origins``:
    origins besides the page's own host (default: ``cable.yml``'s). ``limits``: per-socket bounds on
    subscriptions and command rate (default: ``cable.yml``'s, see :mod:`.limits`).
    """

    def __init__(self, channels: Iterable[type[Channel]] = (), *, connection_class: type[Connection] = Connection,
                 pubsub: PubSub | None = None, allowed_request_origins: Iterable[str] | None = None,
                 max_message_size: int = MAX_MESSAGE_SIZE, ping_interval: float = PING_INTERVAL,
                 limits: ConnectionLimits | None = None) -> None:
        self.channels: dict[str, type[Channel]] = {cls.channel_identifier(): cls for cls in channels}
        self.connection_class = connection_class
        self._pubsub = pubsub
        self._origins = tuple(allowed_request_origins) if allowed_request_origins is not None else None
        self._limits = limits
        self.max_message_size = max_message_size
        self.ping_interval = ping_interval
        self.sessions: set[Session] = set()
        self._router: StreamRouter | None = None
        #: SQLite: the pub/sub the router subscribes with, delivering on the server's loop (decision 0222).
        self._loop_pubsub: SolidCablePubSub | None = None
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

    @property
    def limits(self) -> ConnectionLimits:
        if self._limits is None:
            from ..config import current_app
            from .config import load_cable_config

            self._limits = load_cable_config(current_app()).limits
        return self._limits

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
            self._router = StreamRouter(self._subscriptions(loop), loop)
        session = Session(self, websocket, loop)
        connection = self.connection_class(websocket, session)
        session.app_connection = connection
        try:
            if overrides(connection.connect, Connection.connect):
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
        if internal is not None:  # remote commands for this identity (see remote.py)
            # Off the loop: subscribing a new stream reads the database.
            await loop.run_in_executor(None, self.router.add, internal, (session, internal), session.internal_message)
        session.send({"type": "welcome"})
        try:
            await session.run()
        finally:
            if internal is not None:
                self.router.remove(internal, (session, internal))
            self.sessions.discard(session)
            if overrides(connection.disconnect, Connection.disconnect):
                try:
                    await call(connection.disconnect)
                except Exception:
                    log.exception("cable: %s.disconnect failed", type(connection).__name__)

    def _subscriptions(self, loop: asyncio.AbstractEventLoop) -> PubSub:
        """What the router subscribes with: on SQLite a pub/sub of the same table whose callbacks run on
        ``loop``, which waits on the wake-up socket itself (one thread hop fewer per message); else
        :attr:`pubsub`."""
        shared = self.pubsub
        if isinstance(shared, SolidCablePubSub) and shared.loop is None and not shared.storage.notifies:
            self._loop_pubsub = SolidCablePubSub(shared.storage, polling_interval=shared.polling_interval,
                                                 message_retention=shared.message_retention, autotrim=False,
                                                 loop=loop)
            return self._loop_pubsub
        return shared

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
                if self._loop_pubsub is not None:
                    self._loop_pubsub.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
