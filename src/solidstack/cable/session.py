"""One open socket of the Action Cable endpoint: its outbox, its subscriptions, the commands it sends.

:class:`~solidstack.cable.asgi.CableApp` makes one per socket. Commands are handled one at a time, in order;
each spends the socket's command budget first (:mod:`.limits`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocket, WebSocketDisconnect

from .channel import Channel, RejectedError
from .connection import Connection
from .limits import TOO_MANY_COMMANDS, CommandBudget

if TYPE_CHECKING:
    from .asgi import CableApp

log = logging.getLogger("solidstack.cable")

PROTOCOL = "actioncable-v1-json"
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


def overrides(bound: Any, base: Any) -> bool:
    return getattr(bound, "__func__", None) is not base


class Session:
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
        self.limits = app.limits
        self.budget = CommandBudget(self.limits.commands_per_second, self.limits.burst, time.monotonic())

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

    @property
    def who(self) -> str:
        """The connection's identifier for log lines (``anonymous`` when it has none)."""
        return (self.app_connection.connection_identifier if self.app_connection else "") or "anonymous"

    def over_budget(self) -> bool:
        """Spend one frame of the command budget; past it, tell the client why and close the socket."""
        if self.budget.spend(time.monotonic()):
            return False
        log.warning("cable: closing the socket of %s: more than %d commands at once or %g per second "
                    "(%d subscriptions held)", self.who, self.limits.burst, self.limits.commands_per_second,
                    len(self.subscriptions))
        self.close(TOO_MANY_COMMANDS, False)
        return True

    async def handle(self, text: str) -> None:
        if self.over_budget():
            return
        if len(text) > self.app.max_message_size:
            log.warning("cable: dropped a %d-character frame (limit %d)", len(text), self.app.max_message_size)
            return
        data, problem = _loads(text)
        if problem:
            log.warning("cable: dropped a frame that %s: %.200r", problem, text)
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
        if len(self.subscriptions) >= self.limits.max_subscriptions:
            log.warning("cable: rejected a subscription of %s: it holds %d, the most a connection may "
                        "(max_subscriptions_per_connection): %.200r", self.who, len(self.subscriptions), identifier)
            self.send({"identifier": identifier, "type": "reject_subscription"})
            return
        params, _ = _loads(identifier)
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
        if overrides(channel.unsubscribed, Channel.unsubscribed):
            try:
                await call(channel.unsubscribed)
            except Exception:
                log.exception("cable: %s#unsubscribed failed", channel.channel_identifier())

    async def perform(self, identifier: str, raw: Any) -> None:
        channel = self.subscriptions.get(identifier)
        if channel is None:
            log.warning("cable: unable to find subscription with identifier %.200r", identifier)
            return
        data, _ = _loads(raw) if isinstance(raw, str) else (None, None)
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
                    if not self.over_budget():
                        log.warning("cable: dropped a binary frame (%s uses text frames)", PROTOCOL)
                    continue
                try:
                    await self.handle(text)
                except Exception:  # a bug or a hook's surprise must not close the socket silently
                    log.exception("cable: dropped a frame that could not be handled: %.200r", text)
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


def _loads(text: str) -> tuple[Any, str | None]:
    """``json.loads`` and ``None``, or ``None`` and what is wrong: not JSON, or nested too deeply to parse.

    Python's parser raises ``RecursionError`` past about 1,000 levels ("[[[[..." of 200,000 levels, 400 KB, is
    under the frame size limit); it is a :class:`RuntimeError`, which the read loop took for a closed socket.
    """
    try:
        return json.loads(text), None
    except ValueError:
        return None, "is not JSON"
    except RecursionError:
        return None, f"is nested too deeply to parse ({len(text)} characters)"
