"""The connection class: who is at the other end of a socket, decided once when it opens."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from .channel import Channel

log = logging.getLogger("solidstack.cable")


class UnauthorizedError(Exception):
    """Raised by :meth:`Connection.reject_unauthorized_connection`: the socket is refused."""


class Runtime(Protocol):
    """What the server gives a connection: sending frames and routing streams (thread-safe)."""

    def send(self, frame: dict[str, Any]) -> None: ...

    def add_stream(self, channel: Channel, stream: str, callback: Any) -> None: ...

    def remove_stream(self, channel: Channel, stream: str) -> None: ...

    def close(self, reason: str, reconnect: bool) -> None: ...


def identifier_of(values: Iterable[Any]) -> str:
    """A connection's identifier from its ``identified_by`` values in order: ``str()`` of each that is set,
    joined by ``:`` (as Action Cable, which leaves out the nil ones). So an identified value's ``str()`` must
    be the same in every process: an id, an email, not an object's default repr."""
    return ":".join(str(value) for value in values if value is not None)


def internal_channel_of(identifier: str) -> str:
    """The stream a connection of that identifier listens on for remote commands (:mod:`.remote`)."""
    return f"action_cable/{identifier}"


class Connection:
    """Base class of connections. Override :meth:`connect` to identify the user, or refuse the socket.

    ``request`` is the handshake (a Starlette ``WebSocket``: ``headers``, ``cookies``, ``query_params``,
    ``session`` when a session middleware runs, ``scope``). Set the attributes named in ``identified_by``
    in :meth:`connect`; channels read them as ``self.connection.current_user``.
    """

    identified_by: ClassVar[tuple[str, ...]] = ()

    def __init__(self, request: Any, runtime: Runtime) -> None:
        self.request = request
        self._runtime = runtime
        for name in self.identified_by:
            if not hasattr(self, name):
                setattr(self, name, None)

    def connect(self) -> Any:
        """Called once when the socket opens; may be ``async def``. Refuse with
        :meth:`reject_unauthorized_connection`."""

    def disconnect(self) -> Any:
        """Called once when the socket closes."""

    def reject_unauthorized_connection(self) -> None:
        """Refuse this socket: the client gets ``disconnect`` (``unauthorized``, no reconnect)."""
        raise UnauthorizedError()

    @property
    def connection_identifier(self) -> str:
        """The identified values joined, as Action Cable names a connection (empty when anonymous)."""
        return identifier_of(getattr(self, name, None) for name in self.identified_by)

    @property
    def internal_channel(self) -> str | None:
        """The stream this connection listens on for remote commands (``None`` when anonymous)."""
        identifier = self.connection_identifier
        return internal_channel_of(identifier) if identifier else None

    def transmit(self, data: dict[str, Any]) -> None:
        """Send a raw frame to the client."""
        self._runtime.send(data)

    def close(self, *, reason: str = "remote", reconnect: bool = True) -> None:
        """Send ``disconnect`` and close the socket."""
        self._runtime.close(reason, reconnect)
