"""Cable's storage seam: every statement on the messages table, named in ``sql/<dialect>/queries.sql``.

PostgreSQL is a second query file and the same class: nothing else in the part writes SQL. A broadcast there is
one statement, ``broadcast`` (a function that takes the ordering lock, inserts and sends ``NOTIFY``; decision
0210), where SQLite inserts with ``insert_message`` in a ``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from ..db import Database, load_queries

#: At most this many messages are read by one poll; a listener that is behind polls again at once.
POLL_LIMIT = 1000


def channel_hash(channel: str) -> int:
    """A signed 64-bit hash of a channel name, stable across processes and Python versions."""
    digest = hashlib.blake2b(channel.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@dataclass(frozen=True)
class Message:
    id: int
    channel: str
    payload: str


@dataclass(frozen=True)
class PollResult:
    messages: list[Message]
    #: The newest id in the table when the poll read it; every subscribed channel has been read up to here
    #: unless ``truncated``.
    last_id: int
    truncated: bool


class CableStorage:
    """The messages table of one database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.queries = load_queries("solidstack.cable", db.dialect, db.paramstyle)
        #: PostgreSQL: lock, insert and NOTIFY in one statement, its own transaction (or the caller's).
        self._broadcast = self.queries.get("broadcast")
        #: The last poll's channels, their hashes as a parameter, and the channels as a set.
        self._hashes: tuple[tuple[str, ...], object, frozenset[str]] | None = None

    @property
    def notifies(self) -> bool:
        """Whether a broadcast wakes listeners itself (``NOTIFY``); else the publisher wakes them after it."""
        return self._broadcast is not None

    def insert(self, channel: str, payload: str, *, now: float | None = None) -> int:
        """Store one message; returns its id (its place in the delivery order)."""
        params = {"channel": channel, "channel_hash": channel_hash(channel), "payload": payload,
                  "created_at": time.time() if now is None else now}
        if self._broadcast is not None:
            return int(self.db.connection().execute(self._broadcast, params).fetchone()[0])
        with self.db.transaction() as conn:
            [new_id] = self.db.insert_many(conn, self.queries["insert_message"], [params])
            return int(new_id)

    def last_id(self) -> int:
        row = self.db.query_one(self.queries["last_id"])
        return int(row["last_id"]) if row else 0

    def poll(self, since: int, channels: list[str], *, limit: int = POLL_LIMIT) -> PollResult:
        """Messages with ``id > since`` on ``channels``, oldest first, and the table's newest id."""
        # The channels' hashes as the statement's parameter, kept while the set of channels stays the same: a
        # listener polls once per broadcast, and rehashing a server's thousand streams each time sits on every
        # message's path.
        key = tuple(channels)
        cached = self._hashes
        if cached is None or cached[0] != key:
            cached = self._hashes = (key, self.db.array(sorted({channel_hash(c) for c in channels})),
                                     frozenset(channels))
        _, hashes, wanted = cached
        rows = self.db.query(self.queries["poll_messages"], {"since": since, "hashes": hashes, "limit": limit})
        newest = scanned = since
        messages = []
        for row in rows:
            if row["kind"] == 0:
                newest = int(row["id"])
                continue
            scanned = max(scanned, int(row["id"]))
            if row["channel"] in wanted:  # a hash collision must not leak another channel's message
                messages.append(Message(int(row["id"]), row["channel"], row["payload"]))
        messages.sort(key=lambda m: m.id)
        truncated = len(rows) - 1 >= limit
        # When the poll stopped at the limit, the channels are read only up to the last row it returned.
        return PollResult(messages, scanned if truncated else max(newest, since), truncated)

    def trim(self, retention: float, batch_size: int, *, now: float | None = None) -> int:
        """Delete up to ``batch_size`` messages older than ``retention`` seconds; returns how many."""
        cutoff = (time.time() if now is None else now) - retention
        params = {"cutoff": cutoff}
        # A read first, outside the write lock: one index probe, so a pass with nothing to delete neither waits
        # for nor holds the lock a broadcast needs (decision 0220).
        if self.db.query_one(self.queries["trimmable"], params) is None:
            return 0
        with self.db.transaction() as conn:
            return conn.execute(self.queries["trim_messages"], {"cutoff": cutoff, "batch_size": batch_size}).rowcount

    # -- queues (the Django Channels layer): each message taken by one receiver ---------------------------------

    def take(self, channel: str, not_before: float) -> Message | None:
        """Remove and return the oldest message on ``channel`` written at or after ``not_before``."""
        with self.db.transaction() as conn:
            params = {"channel": channel, "channel_hash": channel_hash(channel), "not_before": not_before}
            row = conn.execute(self.queries["take_message"], params).fetchone()
        return Message(int(row["id"]), row["channel"], row["payload"]) if row else None

    def count_on(self, channel: str, not_before: float) -> int:
        """How many messages ``channel`` holds written at or after ``not_before``."""
        params = {"channel": channel, "channel_hash": channel_hash(channel), "not_before": not_before}
        row = self.db.query_one(self.queries["count_channel"], params)
        return int(row["count"]) if row else 0

    def delete_prefixed(self, prefix: str, cutoff: float) -> int:
        """Delete the messages of every channel whose name starts with ``prefix`` written before ``cutoff``."""
        high = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        with self.db.transaction() as conn:
            return conn.execute(self.queries["delete_channel_range"],
                                {"low": prefix, "high": high, "cutoff": cutoff}).rowcount

    def count(self) -> int:
        row = self.db.query_one(self.queries["count_messages"])
        return int(row["count"]) if row else 0
