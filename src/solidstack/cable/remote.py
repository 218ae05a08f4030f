"""Disconnecting sockets from anywhere: ``remote_connections(AppConnection).where(current_user=u).disconnect()``.

As Action Cable's ``ActionCable.server.remote_connections``: every identified connection listens on its own
internal stream, ``action_cable/<identifier>`` (see :attr:`Connection.internal_channel`); a command broadcast
there from any process (a web request signing the user out, a job) reaches the sockets of that identity on
every server that uses the same cable database.
"""

from __future__ import annotations

from typing import Any

from . import adapter
from .connection import Connection, identifier_of, internal_channel_of
from .pubsub import PubSub


class RemoteConnection:
    """The sockets of one identity, wherever they are open."""

    def __init__(self, connection_class: type[Connection], identifiers: dict[str, Any],
                 pubsub: PubSub | None = None) -> None:
        self.pubsub = pubsub
        unknown = sorted(set(identifiers) - set(connection_class.identified_by))
        if unknown:
            raise ValueError(f"{connection_class.__name__} is identified by {list(connection_class.identified_by)}; "
                             f"unknown identifier(s): {unknown}")
        if all(value is None for value in identifiers.values()):
            raise ValueError("remote_connections().where() needs at least one identifier that is set")
        self.identifier = identifier_of(identifiers.get(name) for name in connection_class.identified_by)

    @property
    def internal_channel(self) -> str:
        return internal_channel_of(self.identifier)

    def disconnect(self, *, reconnect: bool = True) -> None:
        """Close those sockets; each client is told ``disconnect`` with reason ``remote`` (and whether to come
        back: a client that reconnects is identified afresh, e.g. as signed out)."""
        (self.pubsub or adapter.pubsub()).broadcast(self.internal_channel,
                                                    {"type": "disconnect", "reconnect": reconnect})


class RemoteConnections:
    def __init__(self, connection_class: type[Connection] = Connection, pubsub: PubSub | None = None) -> None:
        self.connection_class = connection_class
        self.pubsub = pubsub

    def where(self, **identifiers: Any) -> RemoteConnection:
        """The connections identified by these values (names from the class's ``identified_by``)."""
        return RemoteConnection(self.connection_class, identifiers, self.pubsub)


def remote_connections(connection_class: type[Connection] = Connection) -> RemoteConnections:
    """The open connections of ``connection_class``, on every server (through this process's pub/sub, from
    ``config/cable.yml``): ``.where(...).disconnect()``."""
    return RemoteConnections(connection_class)
