"""A Django Channels layer on the cable database: ``CHANNEL_LAYERS = {"default": {"BACKEND":
"solidstack.django.channels.SolidChannelLayer"}}``.

Every process of the app shares the layer through the cable part's database (``config/cable.yml``,
``SOLIDSTACK["CABLE"]`` or the ``cable`` alias of ``DATABASES``):

- a channel is a queue: ``send`` appends a message on ``djch:<name>`` in the cable messages table, ``receive``
  removes the oldest one written within ``expiry`` seconds (``DELETE ... RETURNING``), so each message goes to
  one receiver, in any process; at ``capacity`` (per channel, ``channel_capacity`` globs) ``send`` raises
  ``ChannelFull``;
- a group is a log of joins and leaves on ``djgrp:<name>``; ``group_send`` reads the members whose last join is
  within ``group_expiry`` and sends to each (a full member channel is skipped, as Channels' layers do);
- ``flush`` removes every message and group of the layer; expired rows are removed as the layer goes.

Messages are dicts of typed JSON (str, numbers, lists, dicts, bytes, datetimes, ...: :mod:`solidstack.typed`);
never pickled. ``receive`` polls with a short backoff (1 ms doubling to ``polling_interval``, default 50 ms).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer

from solidstack.cable.storage import CableStorage
from solidstack.typed import TypedValueError, from_json, to_json

CHANNEL_PREFIX = "djch:"
GROUP_PREFIX = "djgrp:"
#: How often a layer removes the rows that expired (seconds).
CLEANUP_EVERY = 10.0


def _storage() -> CableStorage:
    from solidstack.cable.config import database_config
    from solidstack.config import current_app
    from solidstack.db import connect

    entry = database_config(current_app())
    if entry is None:
        raise RuntimeError("SolidChannelLayer needs the cable part on a database (cable.yml adapter solid_cable)")
    return CableStorage(connect(entry))


class SolidChannelLayer(BaseChannelLayer):
    """The channel layer specification (with the ``groups`` and ``flush`` extensions) over the cable database."""

    extensions = ["groups", "flush"]

    def __init__(self, expiry: float = 60, group_expiry: float = 86400, capacity: int = 100,
                 channel_capacity: dict[str, int] | None = None, polling_interval: float = 0.05) -> None:
        super().__init__(expiry=expiry, capacity=capacity, channel_capacity=channel_capacity)
        self.channel_capacity = self.compile_capacities(channel_capacity or {})
        self.group_expiry = group_expiry
        self.polling_interval = polling_interval
        self._cleaned_at = 0.0

    # -- channels -------------------------------------------------------------------------------------------

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        """Append ``message`` to ``channel``; ``ChannelFull`` at its capacity."""
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_channel_name(channel)
        assert "__asgi_channel__" not in message
        try:
            payload = json.dumps(to_json(message, "message", what="a channel layer message"), separators=(",", ":"))
        except TypedValueError as exc:
            raise TypeError(f"channel {channel!r}: {exc}") from None
        await asyncio.to_thread(self._send, channel, payload)

    def _send(self, channel: str, payload: str) -> None:
        storage = _storage()
        now = time.time()
        if storage.count_on(CHANNEL_PREFIX + channel, now - self.expiry) >= self.get_capacity(channel):
            raise ChannelFull(channel)
        storage.insert(CHANNEL_PREFIX + channel, payload, now=now)
        self._cleanup(storage, now)

    async def receive(self, channel: str) -> dict[str, Any]:
        """The oldest message on ``channel`` (sent within ``expiry``), waiting for one; each goes to one receiver."""
        self.require_valid_channel_name(channel)
        delay = 0.001
        while True:
            message = await asyncio.to_thread(self._take, channel)
            if message is not None:
                return message
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.polling_interval)

    def _take(self, channel: str) -> dict[str, Any] | None:
        taken = _storage().take(CHANNEL_PREFIX + channel, time.time() - self.expiry)
        return from_json(json.loads(taken.payload)) if taken is not None else None

    async def new_channel(self, prefix: str = "specific.") -> str:
        """A channel name no other process uses."""
        return f"{prefix}.solid!{secrets.token_urlsafe(12)}"

    # -- groups ---------------------------------------------------------------------------------------------

    async def group_add(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        await asyncio.to_thread(self._group_change, group, channel, "add")

    async def group_discard(self, group: str, channel: str) -> None:
        self.require_valid_channel_name(channel)
        self.require_valid_group_name(group)
        await asyncio.to_thread(self._group_change, group, channel, "discard")

    def _group_change(self, group: str, channel: str, op: str) -> None:
        now = time.time()
        _storage().insert(GROUP_PREFIX + group, json.dumps({"channel": channel, "op": op, "at": now}), now=now)

    def _members(self, group: str) -> list[str]:
        storage = _storage()
        joined: dict[str, float] = {}
        since = 0
        while True:
            polled = storage.poll(since, [GROUP_PREFIX + group])
            for message in polled.messages:
                change = json.loads(message.payload)
                if change["op"] == "add":
                    joined[change["channel"]] = change["at"]
                else:
                    joined.pop(change["channel"], None)
            if not polled.truncated:
                break
            since = polled.last_id
        cutoff = time.time() - self.group_expiry
        return [channel for channel, at in joined.items() if at >= cutoff]

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        """Send ``message`` to every channel of ``group``; a full channel misses it, as in Channels' layers."""
        assert isinstance(message, dict), "Message is not a dict"
        self.require_valid_group_name(group)
        for channel in await asyncio.to_thread(self._members, group):
            try:
                await self.send(channel, message)
            except ChannelFull:
                pass

    # -- flush and upkeep -----------------------------------------------------------------------------------

    async def flush(self) -> None:
        """Remove every message and group of the layer (of every process)."""
        def flush() -> None:
            storage = _storage()
            storage.delete_prefixed(CHANNEL_PREFIX, float("inf"))
            storage.delete_prefixed(GROUP_PREFIX, float("inf"))

        await asyncio.to_thread(flush)

    async def close(self) -> None:
        """Nothing to close: connections belong to solidstack's database layer."""

    def _cleanup(self, storage: CableStorage, now: float) -> None:
        """Now and then, delete the rows that expired (messages after ``expiry``, group changes after
        ``group_expiry``)."""
        if now - self._cleaned_at < CLEANUP_EVERY:
            return
        self._cleaned_at = now
        storage.delete_prefixed(CHANNEL_PREFIX, now - self.expiry)
        storage.delete_prefixed(GROUP_PREFIX, now - self.group_expiry)
