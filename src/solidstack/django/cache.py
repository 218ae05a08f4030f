"""Django's cache API on solidstack's cache store: ``CACHES = {"default": {"BACKEND":
"solidstack.django.cache.SolidCache"}}``.

The entries live in the cache part's database (``config/cache.yml``, ``SOLIDSTACK["CACHE"]`` or the ``cache``
alias of ``DATABASES``), shared by every process. Keys are Django's (``KEY_PREFIX``, ``VERSION``,
``KEY_FUNCTION``); timeouts are Django's (``None`` never expires, 0 or less is gone at once).

Values: Django's cache contract is "anything picklable", and its own backends all pickle. solidstack's store
never unpickles what it did not sign: a value is pickled and signed with an HMAC keyed by ``SECRET_KEY``, and an
entry whose signature does not match is a miss (so whoever can write the cache database, without the secret,
cannot make the app unpickle their bytes). Whole numbers are stored as plain integers, so ``incr``/``decr`` are
one atomic step across processes. See decision 0702.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import pickle
import time
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache
from django.core.exceptions import ImproperlyConfigured

log = logging.getLogger("solidstack.cache")

_MAGIC = b"ssdj1"
_MAC = 32
_MISS = object()
#: OPTIONS this backend reads beyond Django's own (MAX_ENTRIES and CULL_FREQUENCY are accepted and unused: the
#: store trims by cache.yml's max_age, max_entries and max_size).
_KNOWN_OPTIONS = {"MAX_ENTRIES", "CULL_FREQUENCY"}


class SolidCache(BaseCache):
    """A Django cache backend over solidstack's database cache store."""

    def __init__(self, location: str, params: dict[str, Any]) -> None:
        super().__init__(params)
        unknown = sorted(set(params.get("OPTIONS") or {}) - _KNOWN_OPTIONS)
        if unknown:
            raise ImproperlyConfigured(f"CACHES: unknown OPTIONS {', '.join(unknown)} for SolidCache (its store is "
                                       "set in cache.yml or settings.SOLIDSTACK['CACHE'])")
        self._key = hashlib.sha256(b"solidstack.django.cache:" + settings.SECRET_KEY.encode()).digest()

    @property
    def _store(self) -> Any:
        from solidstack.cache import current_store

        return current_store()

    # -- values ---------------------------------------------------------------------------------------------

    def _dump(self, value: Any) -> Any:
        if type(value) is int:
            return value
        pickled = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
        return _MAGIC + hmac.digest(self._key, pickled, "sha256") + pickled

    def _load(self, stored: Any, key: str) -> Any:
        if type(stored) is int:
            return stored
        if not isinstance(stored, bytes) or not stored.startswith(_MAGIC):
            log.warning("cache entry %r was not written by SolidCache; a miss", key)
            return _MISS
        mac, pickled = stored[len(_MAGIC):len(_MAGIC) + _MAC], stored[len(_MAGIC) + _MAC:]
        if not hmac.compare_digest(mac, hmac.digest(self._key, pickled, "sha256")):
            log.warning("cache entry %r has a bad signature (another SECRET_KEY, or not ours); a miss", key)
            return _MISS
        return pickle.loads(pickled)

    def _expires_at(self, timeout: Any) -> float | None:
        return self.get_backend_timeout(timeout)

    # -- the API --------------------------------------------------------------------------------------------

    def add(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        return bool(self._store.write(key, self._dump(value), expires_at=self._expires_at(timeout),
                                      unless_exist=True))

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        key = self.make_and_validate_key(key, version=version)
        stored = self._store.read(key)
        if stored is None:
            return default
        value = self._load(stored, key)
        return default if value is _MISS else value

    def set(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> None:
        key = self.make_and_validate_key(key, version=version)
        expires_at = self._expires_at(timeout)
        if expires_at is not None and expires_at <= time.time():
            self._store.delete(key)  # a timeout of 0 or less: not kept, and an older value is gone too
            return
        self._store.write(key, self._dump(value), expires_at=expires_at)

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        stored = self._store.read(key)
        if stored is None:
            return False
        expires_at = self._expires_at(timeout)
        if expires_at is not None and expires_at <= time.time():
            return self._store.delete(key)
        return bool(self._store.write(key, stored, expires_at=expires_at))

    def delete(self, key: Any, version: int | None = None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        return bool(self._store.delete(key))

    def get_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        made = {self.make_and_validate_key(key, version=version): key for key in keys}
        found = self._store.read_multi(list(made))
        result = {}
        for made_key, stored in found.items():
            if stored is None:
                continue
            value = self._load(stored, made_key)
            if value is not _MISS:
                result[made[made_key]] = value
        return result

    def has_key(self, key: Any, version: int | None = None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        return bool(self._store.exist(key))

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        made = self.make_and_validate_key(key, version=version)
        stored = self._store.read(made)
        if stored is None:
            raise ValueError(f"Key '{made}' not found")
        if type(stored) is int:
            value = self._store.increment(made, delta)
            if value is not None:
                return value
        # Not a plain integer (or the entry changed meanwhile): Django's own read-add-write.
        value = self.get(key, _MISS, version=version)
        if value is _MISS:
            raise ValueError(f"Key '{made}' not found")
        new_value = value + delta
        # (The entry's expiry is not kept here: the store has no public read of it. Integers, the usual case,
        # keep theirs.)
        self._store.write(made, self._dump(new_value), expires_at=None)
        return new_value

    def set_many(self, data: dict[Any, Any], timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> list[Any]:
        expires_at = self._expires_at(timeout)
        if expires_at is not None and expires_at <= time.time():
            self.delete_many(data, version=version)
            return []
        rows = {self.make_and_validate_key(key, version=version): self._dump(value) for key, value in data.items()}
        expires_in = None if expires_at is None else expires_at - time.time()
        if not self._store.write_multi(rows, expires_in=expires_in):
            return list(data)
        return []

    def delete_many(self, keys: Iterable[Any], version: int | None = None) -> None:
        self._store.delete_multi([self.make_and_validate_key(key, version=version) for key in keys])

    def clear(self) -> None:
        self._store.clear()
