"""The cache API, written once: keys, values, expiry, versions, the failsafe, the mapping face and async twins.

A backend (the database, memory, nothing) implements a handful of small methods on encoded rows; everything
a caller sees is here. A row is ``(key, value, expires_at, version)``: the normalized key as bytes, the encoded
value (see ``codec.py``), the Unix time it expires (or ``None``) and its version (or ``None``).

Failure is a miss: when the backend raises (busy, locked, lost, unreadable), a read returns a miss and a write
is dropped; the reason is logged once, at WARNING, until the store works again. Bad input from the caller (a
value the serializer refuses, a key of an unsupported type) is still an exception: it is a bug to fix, not an
outage to ride out.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..db import DatabaseError
from .aio import AsyncMethods
from .codec import BYTES, STR, Codec, CorruptEntry

log = logging.getLogger("solidstack.cache")

Row = tuple[bytes, bytes, float | None, str | None]

#: What the failsafe turns into a miss. ``sqlite3.Error`` covers busy, locked, corrupt and closed databases; a
#: server engine's errors join through :func:`add_failures` when a store first uses one (``psycopg.Error`` for
#: PostgreSQL: a server down, a dropped connection, a pool with nothing to give), so that importing the cache
#: never imports a driver that SQLite users do not need. Read at each ``except``, never copied.
FAILURES: tuple[type[BaseException], ...] = (sqlite3.Error, DatabaseError, OSError)
#: Solid Cache's (and memcached's) largest key; longer keys are cut and end with a digest of the whole key.
MAX_KEY_BYTES = 1024
_MISS = object()


def add_failures(*types: type[BaseException]) -> None:
    """Count ``types`` among the failures that are a miss (a database driver's base error class)."""
    global FAILURES
    FAILURES = FAILURES + tuple(t for t in types if t not in FAILURES)


@dataclass(frozen=True)
class CacheStats:
    """What :meth:`Store.stats` reports. ``entries`` and ``size`` are estimates on a large database store
    (sampled, like Solid Cache's); ``hits`` and ``misses`` count this process's reads since the store was made.
    """

    entries: int
    size: int
    oldest_age: float | None
    hits: int
    misses: int
    estimated: bool = False


def _expand_key(key: Any) -> str | bytes:
    if isinstance(key, str | bytes):
        return key
    if isinstance(key, int) and not isinstance(key, bool):
        return str(key)
    if isinstance(key, list | tuple):
        # As ActiveSupport expands ["users", 1, "profile"]: "users/1/profile".
        return "/".join(k.decode() if isinstance(k, bytes) else str(_expand_key(k)) for k in key)
    cache_key = getattr(key, "cache_key", None)
    if cache_key is not None:
        return _expand_key(cache_key() if callable(cache_key) else cache_key)
    raise TypeError(f"a cache key must be a str, bytes, int, or a list or tuple of them; got {type(key).__name__}")


class Store(AsyncMethods):
    """A cache store. Subclasses provide the rows; this class provides the API.

    ``namespace`` prefixes every key (``"namespace:key"``); ``expires_in`` is the default lifetime of an entry in
    seconds (``None``: until evicted). ``serializer``, ``secret``, ``encryption_key`` and ``compress_threshold``
    configure the :class:`~solidstack.cache.codec.Codec`.
    """

    def __init__(self, *, namespace: str | None = None, expires_in: float | None = None,
                 serializer: str = "safe", secret: str | bytes | None = None,
                 encryption_key: str | bytes | None = None, compress_threshold: int | None = 1024) -> None:
        self.namespace = namespace or None
        self._prefix = f"{namespace}:" if namespace else ""
        self.expires_in = expires_in
        self.codec = Codec(serializer=serializer, secret=secret, encryption_key=encryption_key,
                           compress_threshold=compress_threshold)
        self.hits = 0
        self.misses = 0
        self._failing: set[str] = set()
        self._fail_lock = threading.Lock()

    # -- the backend: subclasses override these ------------------------------------------------------------

    def _get(self, key: bytes, version: str | None = None) -> Row | None:
        """The row of ``key``, or ``None``. With ``version`` ``None`` no check reads the row's version, and a
        backend may leave it out (``None`` in the row) to read less."""
        raise NotImplementedError

    def _get_many(self, keys: list[bytes]) -> list[Row]:
        return [row for row in map(self._get, keys) if row is not None]

    def _put(self, row: Row) -> None:
        raise NotImplementedError

    def _put_many(self, rows: list[Row]) -> None:
        for row in rows:
            self._put(row)

    def _remove_many(self, keys: list[bytes]) -> int:
        raise NotImplementedError

    def _update(self, key: bytes, change: Callable[[Row | None], Row | None]) -> None:
        """Replace the row of ``key`` by ``change(row)`` atomically (across processes for a shared store)."""
        raise NotImplementedError

    def _increment_in_place(self, key: bytes, amount: int, expires_in: float | None) -> int | None:
        """A backend's one-step increment of a plain integer entry, or ``None`` to take the general path."""
        return None

    def _clear(self) -> None:
        raise NotImplementedError

    def _usage(self) -> tuple[int, int, float | None, bool]:
        """``(entries, size, oldest_age, estimated)``."""
        raise NotImplementedError

    # -- keys, values, rows -----------------------------------------------------------------------------------

    def normalize_key(self, key: Any) -> bytes:
        """The stored form of ``key``: namespaced, UTF-8, and at most 1,024 bytes (longer keys are cut and end
        with ``:hash:`` and the SHA-256 of the whole key, as Solid Cache does)."""
        if type(key) is str:
            raw = (self._prefix + key).encode() if self._prefix else key.encode()
        else:
            expanded = _expand_key(key)
            raw = self._prefix.encode() + (expanded if isinstance(expanded, bytes) else expanded.encode())
        if len(raw) > MAX_KEY_BYTES:
            suffix = b":hash:" + hashlib.sha256(raw).hexdigest().encode()
            raw = raw[: MAX_KEY_BYTES - len(suffix)] + suffix
        return raw

    def _expiry(self, expires_in: float | None, expires_at: float | None) -> float | None:
        if expires_at is not None:
            return float(expires_at)
        seconds = self.expires_in if expires_in is None else expires_in
        if seconds is None:
            return None
        given: Any = seconds  # a number of seconds or a timedelta
        seconds = float(getattr(given, "total_seconds", lambda: given)())
        return time.time() + seconds

    @staticmethod
    def _live(key: bytes, row: Row | None, version: str | None, now: float) -> bool:
        """Whether ``row`` holds a live entry of ``key``: not another key's, not expired, not another version."""
        if row is None or row[0] != key:
            return False
        expires_at = row[2]
        if expires_at is not None and expires_at <= now:
            return False
        return Store._same_version(row, version)

    @staticmethod
    def _same_version(row: Row, version: str | None) -> bool:
        return version is None or row[3] is None or row[3] == version

    def _value(self, key: bytes, row: Row | None, version: str | None) -> Any:
        """The value of a fetched row, or ``_MISS`` (absent, another key's, expired, other version, corrupt)."""
        if not self._live(key, row, version, time.time()):
            return _MISS
        assert row is not None
        try:
            return self.codec.load(row[1], key)
        except CorruptEntry as exc:
            self._fail("read", exc, key)
            return _MISS

    # -- the failsafe ---------------------------------------------------------------------------------------

    def _fail(self, operation: str, exc: BaseException, key: bytes | None = None) -> None:
        """Log a failure once per reason until the store recovers; the caller turns it into a miss."""
        if isinstance(exc, CorruptEntry):  # one bad row, not an outage: logged each time, with its key
            log.warning("cache %s: entry %r is a miss: %s", operation, key, exc)
            return
        reason = f"{type(exc).__name__}: {exc}"
        with self._fail_lock:
            first = reason not in self._failing
            self._failing.add(reason)
        if first:
            log.warning("cache %s failed, treated as a miss (logged once until the cache recovers): %s",
                        operation, reason)
        else:
            log.debug("cache %s failed: %s", operation, reason)

    def _recovered(self) -> None:
        if self._failing:
            with self._fail_lock:
                self._failing.clear()
            log.info("cache works again")

    # -- reading --------------------------------------------------------------------------------------------

    def read(self, key: Any, *, version: str | None = None) -> Any:
        """The value stored under ``key``, or ``None`` on a miss."""
        # The hottest call of the cache, calling the backend's _get itself (decision 0121): the body of _read
        # below, returning None on a miss instead of _MISS (a call from here to _read cost ~1,300 instructions,
        # 4% of a hit). Change both together; test_read_exist_and_fetch_agree_on_every_kind_of_row holds them
        # to the same answers.
        if type(key) is str:
            k = (self._prefix + key).encode()
            if len(k) > MAX_KEY_BYTES:
                k = self.normalize_key(key)
        else:
            k = self.normalize_key(key)
        try:
            row = self._get(k, version)
        except FAILURES as exc:
            self._fail("read", exc)
            self.misses += 1
            return None
        if self._failing:
            self._recovered()
        if row is None or row[0] != k:
            self.misses += 1
            return None
        expires_at = row[2]
        if (expires_at is not None and expires_at <= time.time()) or not (
                version is None or row[3] is None or row[3] == version):
            self.misses += 1
            return None
        entry = row[1]
        tag = entry[0] if entry else -1
        value: Any
        if tag == BYTES:
            value = entry[1:]
        else:
            try:
                value = entry[1:].decode() if tag == STR else self.codec.load(entry, k)
            except (CorruptEntry, UnicodeDecodeError) as exc:
                self._fail("read", exc if isinstance(exc, CorruptEntry) else CorruptEntry(f"invalid text: {exc}"), k)
                self.misses += 1
                return None
        self.hits += 1
        return value

    def _read(self, key: Any, version: str | None, _time: Callable[[], float] = time.time) -> Any:
        # The hottest call of the cache. A str key's normalisation, the checks of _live and the decoding of text
        # and bytes are inlined: each Python call saved is ~60 ns of a ~5 µs hit (decision 0120). The checks are
        # the same: the stored key must equal the key (a key_hash collision is a miss), then expiry, version.
        if type(key) is str:
            k = (self._prefix + key).encode()
            if len(k) > MAX_KEY_BYTES:
                k = self.normalize_key(key)
        else:
            k = self.normalize_key(key)
        try:
            row = self._get(k, version)
        except FAILURES as exc:
            self._fail("read", exc)
            self.misses += 1
            return _MISS
        if self._failing:
            self._recovered()
        if row is None or row[0] != k:
            self.misses += 1
            return _MISS
        expires_at = row[2]
        if (expires_at is not None and expires_at <= _time()) or not (
                version is None or row[3] is None or row[3] == version):
            self.misses += 1
            return _MISS
        entry = row[1]
        tag = entry[0] if entry else -1
        value: Any
        if tag == BYTES:
            value = entry[1:]
        else:
            try:
                value = entry[1:].decode() if tag == STR else self.codec.load(entry, k)
            except (CorruptEntry, UnicodeDecodeError) as exc:
                self._fail("read", exc if isinstance(exc, CorruptEntry) else CorruptEntry(f"invalid text: {exc}"), k)
                self.misses += 1
                return _MISS
        self.hits += 1
        return value

    def exist(self, key: Any, *, version: str | None = None) -> bool:
        """Whether ``key`` holds a live entry (``exist?`` in Rails)."""
        return self._read(key, version) is not _MISS

    def read_multi(self, keys: Iterable[Any], *, version: str | None = None) -> dict[Any, Any]:
        """``{key: value}`` for the keys that hit, in one round trip."""
        wanted = {self.normalize_key(key): key for key in keys}
        if not wanted:
            return {}
        try:
            rows = self._get_many(list(wanted))
        except FAILURES as exc:
            self._fail("read_multi", exc)
            self.misses += len(wanted)
            return {}
        by_key = {row[0]: row for row in rows}
        found: dict[Any, Any] = {}
        for k, original in wanted.items():
            value = self._value(k, by_key.get(k), version)
            if value is not _MISS:
                found[original] = value
        self.hits += len(found)
        self.misses += len(wanted) - len(found)
        return found

    def fetch(self, key: Any, factory: Callable[[], Any] | None = None, *, expires_in: float | None = None,
              version: str | None = None, force: bool = False, skip_nil: bool = False,
              race_condition_ttl: float | None = None) -> Any:
        """The cached value; on a miss, ``factory()`` is computed, stored and returned.

        ``force`` recomputes even on a hit; ``skip_nil`` does not store a ``None`` result.
        ``race_condition_ttl`` (seconds), as in Rails: when the entry expired less than that long ago, the first
        caller to see it gives the stale value that much more life and recomputes; callers meanwhile get the
        stale value instead of all recomputing at once (a cache stampede).
        """
        if not force:
            value = self._read(key, version)
            if value is not _MISS:
                return value
        if factory is None:
            return None
        if race_condition_ttl and not force:
            stale = self._extend_stale(key, version, float(race_condition_ttl))
            if stale is not _MISS:
                return stale
        value = factory()
        if not (skip_nil and value is None):
            self.write(key, value, expires_in=expires_in, version=version)
        return value

    def _extend_stale(self, key: Any, version: str | None, ttl: float) -> Any:
        """For ``race_condition_ttl``: ``_MISS`` when this caller should recompute (after giving an entry that
        expired less than ``ttl`` ago ``ttl`` more seconds), or the live value another caller left meanwhile."""
        k = self.normalize_key(key)
        found: list[Row] = []

        def change(row: Row | None) -> Row | None:
            now = time.time()
            if self._live(k, row, version, now):
                found.append(row)  # type: ignore[arg-type]  # live: another caller extended or rewrote it
                return None
            # Not live: extend it only if it is this key's and version's, and expired less than ttl ago.
            if row is None or row[0] != k or row[2] is None or now - row[2] > ttl:
                return None
            return (row[0], row[1], now + ttl, row[3]) if self._same_version(row, version) else None

        try:
            self._update(k, change)
        except FAILURES as exc:
            self._fail("fetch", exc)
            return _MISS
        return self._value(k, found[0], version) if found else _MISS

    def fetch_multi(self, keys: Iterable[Any], factory: Callable[[Any], Any], *, expires_in: float | None = None,
                    version: str | None = None) -> dict[Any, Any]:
        """Values for all ``keys``; misses are computed with ``factory(key)`` and written in one batch."""
        keys = list(keys)
        found = self.read_multi(keys, version=version)
        missing = {key: factory(key) for key in keys if key not in found}
        if missing:
            self.write_multi(missing, expires_in=expires_in, version=version)
        return {key: found[key] if key in found else missing[key] for key in keys}

    # -- writing --------------------------------------------------------------------------------------------

    def write(self, key: Any, value: Any, *, expires_in: float | None = None, expires_at: float | None = None,
              version: str | None = None, unless_exist: bool = False) -> bool:
        """Store ``value``; ``False`` when the write was dropped (the failsafe logged why).

        ``unless_exist``: only when ``key`` holds no live entry (checked and written in one transaction);
        ``False`` when there was one.
        """
        k = self.normalize_key(key)
        row = (k, self.codec.dump(value, k), self._expiry(expires_in, expires_at), version)
        written = True
        try:
            if unless_exist:
                def change(old: Row | None) -> Row | None:
                    nonlocal written
                    written = not self._live(k, old, version, time.time())
                    return row if written else None

                self._update(k, change)
            else:
                self._put(row)
        except FAILURES as exc:
            self._fail("write", exc)
            return False
        return written

    def write_multi(self, items: Mapping[Any, Any], *, expires_in: float | None = None,
                    version: str | None = None) -> bool:
        """Store every pair of ``items`` in one transaction."""
        expires_at = self._expiry(expires_in, None)
        rows = []
        for key, value in items.items():
            k = self.normalize_key(key)
            rows.append((k, self.codec.dump(value, k), expires_at, version))
        if not rows:
            return True
        try:
            self._put_many(rows)
        except FAILURES as exc:
            self._fail("write_multi", exc)
            return False
        return True

    def delete(self, key: Any) -> bool:
        """Remove ``key``; whether an entry was there."""
        return self.delete_multi((key,)) > 0

    def delete_multi(self, keys: Iterable[Any]) -> int:
        """Remove ``keys``; how many entries were there."""
        normalized = [self.normalize_key(key) for key in keys]
        if not normalized:
            return 0
        try:
            return self._remove_many(normalized)
        except FAILURES as exc:
            self._fail("delete", exc)
            return 0

    def increment(self, key: Any, amount: int = 1, *, expires_in: float | None = None) -> int | None:
        """Add ``amount`` atomically, also across processes; a missing or expired entry counts from 0.

        ``expires_in`` applies when the entry is created. Returns the new value, or ``None`` when the store
        failed or the entry holds something other than an integer.
        """
        k = self.normalize_key(key)
        try:
            fast = self._increment_in_place(k, amount, expires_in)
        except FAILURES as exc:
            self._fail("increment", exc)
            return None
        if fast is not None:
            return fast
        result: list[int] = []

        def change(row: Row | None) -> Row | None:
            current = self._value(k, row, None)
            if current is _MISS:
                current, expires_at = 0, self._expiry(expires_in, None)
            else:
                assert row is not None
                expires_at = row[2]
            if type(current) is not int:
                log.warning("cache increment: %r holds a %s, not an integer; left as it is",
                            k, type(current).__name__)
                return None
            result.append(current + amount)
            return (k, self.codec.dump(current + amount, k), expires_at, None)

        try:
            self._update(k, change)
        except FAILURES as exc:
            self._fail("increment", exc)
            return None
        return result[0] if result else None

    def decrement(self, key: Any, amount: int = 1, *, expires_in: float | None = None) -> int | None:
        """Subtract ``amount`` atomically; see :meth:`increment`."""
        return self.increment(key, -amount, expires_in=expires_in)

    def clear(self) -> None:
        """Remove every entry of the store (all namespaces, as Solid Cache's ``clear``)."""
        try:
            self._clear()
        except FAILURES as exc:
            self._fail("clear", exc)

    def stats(self) -> CacheStats:
        """Entries, size, age of the oldest entry, and this process's hits and misses."""
        try:
            entries, size, oldest, estimated = self._usage()
        except FAILURES as exc:
            self._fail("stats", exc)
            entries, size, oldest, estimated = 0, 0, None, True
        return CacheStats(entries, size, oldest, self.hits, self.misses, estimated)

    def close(self) -> None:
        """Release what the store holds (background threads); it can still be used afterwards."""

    # -- the mapping face -----------------------------------------------------------------------------------

    def __getitem__(self, key: Any) -> Any:
        value = self._read(key, None)
        if value is _MISS:
            raise KeyError(key)
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        self.write(key, value)

    def __delitem__(self, key: Any) -> None:
        if not self.delete(key):
            raise KeyError(key)

    def __contains__(self, key: Any) -> bool:
        return self.exist(key)

    def get(self, key: Any, default: Any = None) -> Any:
        """The value of ``key``, or ``default`` on a miss (a stored ``None`` is returned as ``None``)."""
        value = self._read(key, None)
        return default if value is _MISS else value
