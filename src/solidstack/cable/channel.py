"""Channels: what a client may subscribe to, and the actions it may perform there.

A subclass overrides ``subscribed`` (call ``stream_from(name)`` to forward a stream's broadcasts, or
``reject()`` to refuse), optionally ``unsubscribed``, and defines actions as public methods: a client's
``perform("speak", {...})`` calls ``speak(data)``. Methods may be plain (run in a worker thread, so they may
use the database) or ``async def`` (run on the server's event loop).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar

from .adapter import broadcast

if TYPE_CHECKING:
    from .connection import Connection

log = logging.getLogger("solidstack.cable")


class RejectedError(Exception):
    """Raised inside ``subscribed`` by :meth:`Channel.reject` callers who want to stop at once (optional)."""


class Channel:
    """Base class of channels. The identifier's ``"channel"`` names the class (``identifier_name``)."""

    #: The ``channel`` value clients send; the class name when not set (``"ChatChannel"``).
    identifier_name: ClassVar[str | None] = None

    def __init__(self, connection: Connection, identifier: str, params: dict[str, Any]) -> None:
        self.connection = connection
        #: The identifier exactly as the client sent it (a JSON string); replies carry it back unchanged.
        self.identifier = identifier
        #: The identifier's fields (``{"channel": "ChatChannel", "room": 1}``).
        self.params = params
        self.rejected = False
        self._streams: list[str] = []

    # -- what subclasses override ----------------------------------------------------------------------------

    def subscribed(self) -> Any:
        """Called when a client subscribes; call :meth:`stream_from` or :meth:`reject` here."""

    def unsubscribed(self) -> Any:
        """Called when the client unsubscribes or disconnects."""

    def receive(self, data: dict[str, Any]) -> Any:
        """Called for a message without an ``action``."""
        log.error("cable: %s has no receive(); dropped %r", self.channel_identifier(), data)

    # -- what subclasses call --------------------------------------------------------------------------------

    def reject(self) -> None:
        """Refuse the subscription: the client gets ``reject_subscription``."""
        self.rejected = True

    def stream_from(self, stream: str, callback: Callable[[Any], Any] | None = None) -> None:
        """Forward every message broadcast to ``stream`` to this subscription's client.

        With ``callback``, call it with each message instead (it may :meth:`transmit`); it runs on the server's
        event loop, so it must be quick (an ``async def`` callback is scheduled as a task).
        """
        if stream in self._streams:
            return
        self._streams.append(stream)
        self.connection._runtime.add_stream(self, stream, callback)

    def stream_for(self, *parts: Any) -> None:
        """Stream from :meth:`broadcasting_for` of ``parts``."""
        self.stream_from(self.broadcasting_for(*parts))

    def stop_stream_from(self, stream: str) -> None:
        if stream in self._streams:
            self._streams.remove(stream)
            self.connection._runtime.remove_stream(self, stream)

    def stop_all_streams(self) -> None:
        for stream in list(self._streams):
            self.stop_stream_from(stream)

    @property
    def streams(self) -> list[str]:
        return list(self._streams)

    def transmit(self, data: Any) -> None:
        """Send ``data`` to this subscription's client only."""
        self.connection._runtime.send({"identifier": self.identifier, "message": data})

    # -- class helpers ---------------------------------------------------------------------------------------

    @classmethod
    def channel_identifier(cls) -> str:
        return cls.identifier_name or cls.__name__

    @classmethod
    def broadcasting_for(cls, *parts: Any) -> str:
        """A stream name for this channel and a model or parts: ``ChatChannel.broadcasting_for(room)``."""
        keys = []
        for part in parts:
            to_param = getattr(part, "to_stream_param", None)
            keys.append(to_param() if callable(to_param) else str(part))
        return ":".join([cls.channel_identifier(), *keys])

    @classmethod
    def broadcast_to(cls, model: Any, message: Any) -> None:
        """Broadcast to the stream :meth:`stream_for` of ``model`` reads."""
        broadcast(cls.broadcasting_for(model), message)

    @classmethod
    def action_names(cls) -> frozenset[str]:
        """Public methods defined below :class:`Channel`: the actions a client may perform."""
        return _action_names(cls)  # type: ignore[arg-type]  # a class is hashable

    def resolve_action(self, data: dict[str, Any]) -> tuple[Callable[..., Any], tuple[Any, ...]] | None:
        """The method a client message calls, with its arguments; ``None`` for an unknown action."""
        action = data.get("action")
        if action is None:
            return self.receive, (data,)
        if not isinstance(action, str) or action not in self.action_names():
            log.error("cable: unable to process %s#%s (no such action)", self.channel_identifier(), action)
            return None
        method = getattr(self, action)
        try:
            takes_data = bool(inspect.signature(method).parameters)
        except (TypeError, ValueError):
            takes_data = True
        return method, ((data,) if takes_data else ())


_BASE_NAMES = frozenset(name for name in dir(Channel) if not name.startswith("_"))


@cache
def _action_names(cls: type[Channel]) -> frozenset[str]:
    names = set()
    for klass in cls.__mro__:
        if klass is Channel or not issubclass(klass, Channel):
            continue
        for name, value in vars(klass).items():
            if name.startswith("_") or name in _BASE_NAMES:
                continue
            if inspect.isfunction(value):
                names.add(name)
    return frozenset(names)
