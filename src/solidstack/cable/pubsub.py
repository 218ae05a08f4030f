"""Pub/sub: ``broadcast(stream, message)`` from any process, ``subscribe(stream, callback)`` in any process.

:class:`SolidCablePubSub` is the Solid Cable model: broadcasts are rows of a messages table; one listener
thread per process polls for the channels this process subscribes to, woken at once by the publisher and at
the latest every ``polling_interval``: on SQLite by a datagram after the commit (:mod:`.wakeup`), on
PostgreSQL by the ``NOTIFY`` the broadcast's transaction sends, heard on the process's one ``LISTEN``
connection (:mod:`solidstack.db.pglisten`; none with ``listen: false``). :class:`MemoryPubSub` delivers within
one process (the ``test`` and ``async`` adapters) and, for ``test``, records what was broadcast.

On SQLite the datagram carries the committed message (id, stream, payload) when it is small enough; the
listener delivers it without reading the table when it is provably the next one: ids are assigned in commit
order, so a message whose id follows the stream's cursor has nothing of that stream before it left to read.
Anything else (an empty datagram, a gap, a queue that may have overflowed, the polling interval) reads the
table, which stays the record (decision 0222).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import sqlite3
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..db import DatabaseError, background_section
from ..db.notify import Wakeups
from ..db.wakeup import QUEUE_CAPACITY
from .storage import CableStorage, PollResult
from .wakeup import WakeupSocket, notify, wakeup_dir

log = logging.getLogger("solidstack.cable")

#: Receives each message of a stream: the decoded JSON value, or the JSON text when subscribed with ``raw``.
Callback = Callable[[Any], None]


#: A wake-up datagram that carries its message: magic, id, stream length, payload length, stream, payload.
_HEADER = struct.Struct("<4sqHI")
_MAGIC = b"sc1m"
#: Messages whose datagram would be larger are announced by an empty datagram (the listener reads the table).
DATAGRAM_LIMIT = 16 * 1024


def announcement(message_id: int, stream: str, payload: str) -> bytes:
    """The wake-up datagram announcing a committed message: the message itself, or ``b""`` when it is too large
    to travel that way."""
    try:
        name, body = stream.encode(), payload.encode()
    except UnicodeEncodeError:  # a lone surrogate: let the table carry it
        return b""
    if len(name) > 0xFFFF or _HEADER.size + len(name) + len(body) > DATAGRAM_LIMIT:
        return b""
    return _HEADER.pack(_MAGIC, message_id, len(name), len(body)) + name + body


def _announced(data: bytes) -> tuple[int, str, str] | None:
    """The message a datagram carries; None for an empty, foreign or cut datagram."""
    if len(data) < _HEADER.size or data[:4] != _MAGIC:
        return None
    _, message_id, name_size, body_size = _HEADER.unpack_from(data)
    if len(data) != _HEADER.size + name_size + body_size:
        return None
    start = _HEADER.size
    try:
        return message_id, data[start:start + name_size].decode(), data[start + name_size:].decode()
    except UnicodeDecodeError:
        return None


def encode(message: Any) -> str:
    """A message as the JSON text that is stored and sent; a value JSON cannot hold is an error here."""
    try:
        return json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"cannot broadcast {message!r}: messages must be JSON values ({exc})") from None


def _not_migrated(label: str) -> DatabaseError:
    return DatabaseError(f"the cable messages table is missing in the {label} (run `solidstack db migrate`)")


class PubSub(Protocol):
    """What every adapter offers."""

    def broadcast(self, stream: str, message: Any) -> None: ...

    def subscribe(self, stream: str, callback: Callback, *, raw: bool = False) -> None: ...

    def unsubscribe(self, stream: str, callback: Callback) -> None: ...

    def close(self) -> None: ...


@dataclass(eq=False)
class _Subscriber:
    callback: Callback
    since: int
    raw: bool


@dataclass(eq=False)
class _Channel:
    #: Every message of this channel up to ``max(cursor, frontier)`` has been handed to its subscribers.
    cursor: int
    subscribers: list[_Subscriber] = field(default_factory=list)


def _deliver(subscriber: _Subscriber, stream: str, payload: str, decoded: Any) -> None:
    try:
        subscriber.callback(payload if subscriber.raw else decoded)
    except Exception:
        log.exception("cable: a subscriber of %r failed on a message", stream)


class SolidCablePubSub:
    """Pub/sub on a database table, shared by every process that uses the same database."""

    def __init__(self, storage: CableStorage, *, polling_interval: float = 0.1, message_retention: float = 86400.0,
                 autotrim: bool = True, trim_batch_size: int = 100,
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.storage = storage
        self.polling_interval = polling_interval
        self.message_retention = message_retention
        self.autotrim = autotrim
        self.trim_batch_size = trim_batch_size
        # SQLite: the publisher wakes this machine's listeners after its commit; a server: its NOTIFY does.
        self._wakeup_dir = None if storage.notifies else wakeup_dir(storage.db.path)  # type: ignore[attr-defined]  # SQLite
        self._lock = threading.Lock()
        self._channels: dict[str, _Channel] = {}
        #: Every channel has been read up to here (a channel's cursor counts from the larger of the two): lets a
        #: datagram's message move every channel on in one step. Raised by whoever delivers (the listener thread,
        #: or the loop in loop mode), lowered by subscribe; always under the lock.
        self._frontier = 0
        self._last_poll = 0.0
        self._listener: threading.Thread | None = None
        self._wakeup: Any = None
        self._poll_failing = False
        self._stopped = threading.Event()
        self._trim_wanted = threading.Event()
        self._trimmer: threading.Thread | None = None
        #: SQLite with ``loop``: every callback runs on that event loop, which waits on the wake-up socket and
        #: delivers the datagrams' messages itself; the listener thread only reads the table (when the loop asks,
        #: and every polling interval) and hands what it read to the loop (decision 0222). None: callbacks run in
        #: the listener thread.
        self.loop = loop if self._wakeup_dir is not None else None
        self._read_wanted = threading.Event()

    # -- publishing ------------------------------------------------------------------------------------------

    def broadcast(self, stream: str, message: Any) -> None:
        """Store ``message`` for ``stream`` and wake the listeners of every process."""
        self.broadcast_raw(stream, encode(message))

    def broadcast_raw(self, stream: str, payload: str) -> None:
        """Like :meth:`broadcast`, for a payload that is already JSON text."""
        try:
            message_id = self.storage.insert(stream, payload)
        except (sqlite3.OperationalError, DatabaseError) as exc:
            if "no such table" in str(exc):
                raise _not_migrated(self.storage.db.label) from exc
            raise
        except Exception as exc:
            # PostgreSQL: the broadcast function of the migration is missing (undefined_function).
            if getattr(exc, "sqlstate", None) == "42883":
                raise _not_migrated(self.storage.db.label) from exc
            raise
        if self._wakeup_dir is not None:
            folder, data = self._wakeup_dir, announcement(message_id, stream, payload)
            db = self.storage.db
            if db.in_transaction():
                # Inside the caller's transaction the row is not committed yet: a listener handed the message now
                # would deliver what a rollback takes back, and skip the next message, which takes its id.
                db.after_commit(lambda: notify(folder, data))
            else:
                notify(folder, data)
        if self.autotrim and random.random() < 2.0 / self.trim_batch_size:
            self._request_trim()

    # -- subscribing -----------------------------------------------------------------------------------------

    def subscribe(self, stream: str, callback: Callback, *, raw: bool = False) -> None:
        """Call ``callback`` for every message broadcast to ``stream`` from now on, in publish order."""
        since = self.storage.last_id()
        with self._lock:
            channel = self._channels.get(stream)
            if channel is None:
                if not self._channels:
                    self._frontier = since
                elif since < self._frontier:
                    # The new channel is read only up to since: the frontier comes down to it, every other
                    # channel keeping (as its own cursor) what the frontier said of it.
                    for other in self._channels.values():
                        other.cursor = max(other.cursor, self._frontier)
                    self._frontier = since
                channel = self._channels[stream] = _Channel(cursor=since)
            channel.subscribers.append(_Subscriber(callback, since, raw))
            self._ensure_listener()

    def unsubscribe(self, stream: str, callback: Callback) -> None:
        """Stop calling ``callback`` for ``stream`` (the first subscription with that callback)."""
        with self._lock:
            channel = self._channels.get(stream)
            if channel is None:
                return
            for subscriber in channel.subscribers:
                if subscriber.callback == callback:
                    channel.subscribers.remove(subscriber)
                    break
            if not channel.subscribers:
                del self._channels[stream]

    @property
    def streams(self) -> list[str]:
        """The streams this process listens to."""
        with self._lock:
            return list(self._channels)

    # -- the listener ----------------------------------------------------------------------------------------

    def _ensure_listener(self) -> None:
        if self._listener is not None or self._stopped.is_set():
            return
        db = self.storage.db
        if self._wakeup_dir is not None:
            try:
                self._wakeup = WakeupSocket(self._wakeup_dir)
            except OSError as exc:
                log.warning("cable: no wake-up socket (%s); polling every %ss", exc, self.polling_interval)
        else:
            # The process's one LISTEN connection to this database (db/pglisten.py), shared with the queue when
            # both use the same entry; None with `listen: false`.
            self._wakeup = Wakeups(db, "cable").listener()
            if self._wakeup is None:
                log.info("cable: listen is off for the %s; polling every %ss", db.label, self.polling_interval)
        if self.loop is not None:
            if self._wakeup is not None:
                self.loop.call_soon_threadsafe(self._watch)
            target = self._read_for_loop
        else:
            target = self._listen
        self._listener = threading.Thread(target=target, name="solidstack-cable-listener", daemon=True)
        self._listener.start()

    def _listen(self) -> None:
        connected = getattr(getattr(self._wakeup, "listener", None), "connected", None)
        if connected is not None:  # LISTEN before the first poll, so nothing after it waits for the next one
            connected.wait(1.0)
        read = True  # whether to read the table next
        while not self._stopped.is_set():
            if not read:
                # The table is read at least every polling interval, whatever the datagrams deliver.
                remaining = self._last_poll + self.polling_interval - time.monotonic()
                read = remaining <= 0 or not self._wait(remaining)
                continue
            try:
                caught_up = self.poll_once()
            except Exception as exc:
                self._poll_failed(exc)
                caught_up = True
            else:
                if self._poll_failing:
                    self._poll_failing = False
                    log.info("cable: polling the %s works again", self.storage.db.label)
            read = not caught_up

    def _poll_failed(self, exc: Exception) -> None:
        # One line per outage (a server down would otherwise log every polling interval).
        if not self._poll_failing:
            self._poll_failing = True
            log.warning("cable: polling the %s failed (%s); retrying every %gs", self.storage.db.label,
                        str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                        self.polling_interval)
        log.debug("cable: poll failed", exc_info=True)
        # A failed poll may have taken its whole pool timeout: do not spin when it was quick.
        time.sleep(min(self.polling_interval, 1.0))
        self._last_poll = time.monotonic()

    def _wait(self, timeout: float) -> bool:
        """Wait for a wake-up; True when the datagrams that came delivered everything (no read needed)."""
        if isinstance(self._wakeup, WakeupSocket):
            datagrams = self._wakeup.receive(timeout, DATAGRAM_LIMIT)
            # As many datagrams as the queue holds: it may have filled and refused some, so read the table.
            if not datagrams or len(datagrams) >= QUEUE_CAPACITY:
                return False
            return self._deliver_announced(datagrams)
        if self._wakeup is not None:
            self._wakeup.wait(timeout)
        else:
            self._stopped.wait(timeout)
        return False

    def _deliver_announced(self, datagrams: list[bytes]) -> bool:
        """Deliver the messages the datagrams carry that are provably next; False when the table must be read
        (an empty datagram, a gap, a message of another channel not accounted for)."""
        deliveries: list[tuple[list[_Subscriber], str, str]] = []
        complete = True
        highest = 0
        with self._lock:
            for data in datagrams:
                message = _announced(data)
                if message is None or self._stopped.is_set():
                    complete = False
                    break
                message_id, stream, payload = message
                highest = max(highest, message_id)
                channel = self._channels.get(stream)
                if channel is not None:
                    cursor = max(channel.cursor, self._frontier)
                    if message_id > cursor + 1:  # something of this channel may lie before it: read the table
                        complete = False
                        break
                    if message_id == cursor + 1:
                        channel.cursor = message_id
                        subscribers = [s for s in channel.subscribers if s.since < message_id]
                        if subscribers:
                            deliveries.append((subscribers, stream, payload))
                # Ids are assigned in commit order: with everything up to id - 1 read, this id was the only one
                # between, and it is accounted for.
                if message_id == self._frontier + 1:
                    self._frontier = message_id
            if self._frontier < highest:  # a channel is behind a message announced: read the table
                complete = False
        # Outside the lock, so that a callback may subscribe or unsubscribe.
        for subscribers, stream, payload in deliveries:
            decoded = json.loads(payload) if any(not s.raw for s in subscribers) else None
            for subscriber in subscribers:
                _deliver(subscriber, stream, payload, decoded)
        return complete

    # -- loop mode: the event loop delivers, the thread reads ---------------------------------------------------

    def _watch(self) -> None:
        """On the loop: wait on the wake-up socket there."""
        if self.loop is not None and self._wakeup is not None and not self._stopped.is_set():
            self.loop.add_reader(self._wakeup.fileno(), self._on_datagrams)

    def _on_datagrams(self) -> None:
        """On the loop: deliver what the datagrams carry, or ask the thread to read the table."""
        if self._wakeup is None:
            return
        datagrams = self._wakeup.receive(0, DATAGRAM_LIMIT)
        if not datagrams or len(datagrams) >= QUEUE_CAPACITY or not self._deliver_announced(datagrams):
            self._read_wanted.set()

    def _read_for_loop(self) -> None:
        """The listener thread in loop mode: reads the table when asked and every polling interval."""
        while not self._stopped.is_set():
            remaining = self._last_poll + self.polling_interval - time.monotonic()
            if remaining > 0 and not self._read_wanted.is_set():
                self._read_wanted.wait(remaining)
                continue
            self._read_wanted.clear()
            try:
                caught_up = self._read_and_hand_over()
            except Exception as exc:
                self._poll_failed(exc)
                continue
            if self._poll_failing:
                self._poll_failing = False
                log.info("cable: polling the %s works again", self.storage.db.label)
            if not caught_up:
                self._read_wanted.set()

    def _read_and_hand_over(self) -> bool:
        read = self._read()
        if read is None:
            return True
        applied = threading.Event()
        truncated: list[bool] = []

        def apply() -> None:
            try:
                truncated.append(self._apply(*read))
            finally:
                applied.set()

        assert self.loop is not None
        try:
            self.loop.call_soon_threadsafe(apply)
        except RuntimeError:  # the loop is closed: the server is gone
            self._stopped.set()
            return True
        # The next read starts from the cursors this one moves.
        while not applied.wait(0.05):
            if self._stopped.is_set() or self.loop.is_closed():
                return True
        return not truncated or not truncated[0]

    # -- reading the table -----------------------------------------------------------------------------------

    def poll_once(self) -> bool:
        """Read and deliver new messages once; False when the read stopped at its limit (poll again)."""
        read = self._read()
        return True if read is None else not self._apply(*read)

    def _read(self) -> tuple[dict[str, _Channel], PollResult] | None:
        """The subscribed channels' new rows (no cursor moves); None when nothing is subscribed."""
        self._last_poll = time.monotonic()
        with self._lock:
            snapshot = dict(self._channels)
            since = min((max(c.cursor, self._frontier) for c in snapshot.values()), default=0)
        if not snapshot:
            return None
        with background_section():
            return snapshot, self.storage.poll(since, list(snapshot))

    def _apply(self, snapshot: dict[str, _Channel], result: PollResult) -> bool:
        """Move the cursors over what a read found and deliver it; True when the read stopped at its limit."""
        deliveries: list[tuple[list[_Subscriber], str, str]] = []
        with self._lock:
            # (A subscribe during the read may have lowered the frontier, first copying it into every cursor.)
            frontier = self._frontier
            for message in result.messages:
                channel = snapshot[message.channel]
                if message.id <= max(channel.cursor, frontier):
                    continue
                channel.cursor = message.id
                subscribers = [s for s in channel.subscribers if s.since < message.id]
                if subscribers:
                    deliveries.append((subscribers, message.channel, message.payload))
            for channel in snapshot.values():
                channel.cursor = max(channel.cursor, frontier, result.last_id)
            # A channel subscribed during the read keeps its own cursor: the frontier is the lowest of all.
            self._frontier = min((max(c.cursor, frontier) for c in self._channels.values()), default=frontier)
        # Outside the lock, so that a callback may subscribe or unsubscribe.
        for subscribers, stream, payload in deliveries:
            decoded = json.loads(payload) if any(not s.raw for s in subscribers) else None
            for subscriber in subscribers:
                _deliver(subscriber, stream, payload, decoded)
        return result.truncated

    # -- trimming --------------------------------------------------------------------------------------------

    def _request_trim(self) -> None:
        self._trim_wanted.set()
        with self._lock:
            if self._trimmer is None and not self._stopped.is_set():
                self._trimmer = threading.Thread(target=self._trim_loop, name="solidstack-cable-trim", daemon=True)
                self._trimmer.start()

    def _trim_loop(self) -> None:
        while not self._stopped.is_set():
            if not self._trim_wanted.wait(1.0):
                continue
            self._trim_wanted.clear()
            try:
                self.trim()
            except Exception:
                log.exception("cable: trimming the %s failed", self.storage.db.label)

    def trim(self) -> int:
        """Delete up to ``trim_batch_size`` messages older than ``message_retention``; returns how many."""
        with background_section():
            return self.storage.trim(self.message_retention, self.trim_batch_size)

    def close(self) -> None:
        """Stop the listener and trimmer threads and remove the wake-up socket."""
        self._stopped.set()
        self._trim_wanted.set()
        self._read_wanted.set()
        wakeup = self._wakeup
        if wakeup is not None and self.loop is None:
            wakeup.wake()
        for thread in (self._listener, self._trimmer):
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=5)
        if wakeup is None:
            return
        self._wakeup = None
        if isinstance(wakeup, WakeupSocket) and self.loop is not None and not self.loop.is_closed():
            try:
                on_loop = asyncio.get_running_loop() is self.loop
            except RuntimeError:
                on_loop = False
            if not on_loop:
                try:  # the socket is closed once the loop no longer waits on it
                    self.loop.call_soon_threadsafe(self._unwatch, wakeup)
                    return
                except RuntimeError:  # closed meanwhile
                    pass
            else:
                self._unwatch(wakeup)
                return
        wakeup.close()

    def _unwatch(self, wakeup: WakeupSocket) -> None:
        assert self.loop is not None
        try:
            self.loop.remove_reader(wakeup.fileno())
        finally:
            wakeup.close()


class MemoryPubSub:
    """Delivery within one process, at once, in the broadcasting thread; ``record`` keeps every broadcast."""

    def __init__(self, *, record: bool = False) -> None:
        self.record = record
        self._lock = threading.Lock()
        self._subscribers: dict[str, list[_Subscriber]] = {}
        self._broadcasts: dict[str, list[Any]] = {}

    def broadcast(self, stream: str, message: Any) -> None:
        self.broadcast_raw(stream, encode(message))

    def broadcast_raw(self, stream: str, payload: str) -> None:
        decoded = json.loads(payload)
        with self._lock:
            if self.record:
                self._broadcasts.setdefault(stream, []).append(decoded)
            subscribers = list(self._subscribers.get(stream, ()))
        for subscriber in subscribers:
            _deliver(subscriber, stream, payload, decoded)

    def subscribe(self, stream: str, callback: Callback, *, raw: bool = False) -> None:
        with self._lock:
            self._subscribers.setdefault(stream, []).append(_Subscriber(callback, 0, raw))

    def unsubscribe(self, stream: str, callback: Callback) -> None:
        with self._lock:
            subscribers = self._subscribers.get(stream, [])
            for subscriber in subscribers:
                if subscriber.callback == callback:
                    subscribers.remove(subscriber)
                    break
            if not subscribers:
                self._subscribers.pop(stream, None)

    @property
    def streams(self) -> list[str]:
        with self._lock:
            return list(self._subscribers)

    def broadcasts(self, stream: str) -> list[Any]:
        """What was broadcast to ``stream`` (decoded), oldest first (``test`` adapter)."""
        with self._lock:
            return list(self._broadcasts.get(stream, ()))

    def clear(self) -> None:
        """Forget the recorded broadcasts."""
        with self._lock:
            self._broadcasts.clear()

    def close(self) -> None:
        with self._lock:
            self._subscribers.clear()
