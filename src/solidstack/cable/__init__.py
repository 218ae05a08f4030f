"""WebSocket pub/sub on the database: Solid Cable's model, and an ASGI server for the Action Cable protocol.

``broadcast(stream, message)`` from any process reaches the subscribers of ``stream`` in every process that
uses the same database. :class:`CableApp` (in :mod:`solidstack.cable.asgi`, needs the ``web`` extra) serves
browsers with the ``@rails/actioncable`` client and Turbo Streams.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .adapter import broadcast, broadcasts, build_pubsub, pubsub, reset, subscribe, unsubscribe
from .channel import Channel, RejectedError
from .config import CableConfig, database_config, load_cable_config
from .connection import Connection, UnauthorizedError
from .limits import ConnectionLimits
from .pubsub import MemoryPubSub, PubSub, SolidCablePubSub
from .remote import RemoteConnection, RemoteConnections, remote_connections
from .turbo import StreamsChannel, sign_stream_name, verify_stream_name

if TYPE_CHECKING:
    from .asgi import CableApp


def __getattr__(name: str) -> Any:
    # The ASGI app needs Starlette (the `web` extra); import it only when asked for.
    if name == "CableApp":
        from .asgi import CableApp

        return CableApp
    raise AttributeError(name)


__all__ = [
    "CableApp",
    "CableConfig",
    "Channel",
    "Connection",
    "ConnectionLimits",
    "MemoryPubSub",
    "PubSub",
    "RejectedError",
    "RemoteConnection",
    "RemoteConnections",
    "SolidCablePubSub",
    "StreamsChannel",
    "UnauthorizedError",
    "broadcast",
    "broadcasts",
    "build_pubsub",
    "database_config",
    "load_cable_config",
    "pubsub",
    "remote_connections",
    "reset",
    "sign_stream_name",
    "subscribe",
    "unsubscribe",
    "verify_stream_name",
]
