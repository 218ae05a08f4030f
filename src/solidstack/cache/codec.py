"""How a cached value becomes bytes and back: safe by default, compressed, optionally signed and encrypted.

An encoded entry is one type byte followed by the payload. The low four bits of the type byte say what the
payload is; ``0x10`` says it is zlib-compressed. The safe serializer knows strings, bytes, numbers, ``None``,
booleans, JSON-shaped lists and dicts, and the typed values of :mod:`solidstack.typed` (datetime, date, time,
timedelta, Decimal, UUID, tuple, set, also nested), and nothing else. Arbitrary objects are pickled only when
the store was built with ``serializer="pickle"``, and then each pickled entry carries an HMAC over the key and the
payload: an entry whose HMAC does not verify is a miss and is never unpickled, so whoever can write the cache
file cannot make the app run code (diskcache's CVE-2025-69872 is exactly that bug). With encryption on, the
whole encoded entry is sealed with AES-GCM under the key of the entry as associated data, behind the marker
byte ``0x80``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import pickle
import zlib
from typing import Any

from ..typed import TypedValueError, from_json, to_json

# Type bytes (low four bits).
BYTES, STR, INT, FLOAT, NONE, TRUE, FALSE, JSON, PICKLE, TYPED = range(10)
COMPRESSED = 0x10
ENCRYPTED = 0x80
MAC_SIZE = 32
NONCE_SIZE = 12
#: Compress only when it saves at least this share of the payload (as ActiveSupport does, roughly).
MIN_SAVING = 1 / 8
#: A decompressed payload larger than this is corrupt (Solid Cache's largest value is 512 MiB).
MAX_VALUE_SIZE = 512 * 1024 * 1024
SERIALIZERS = ("safe", "pickle")


class CorruptEntry(Exception):
    """A stored entry cannot be decoded (damaged, tampered, or written with another key or secret)."""


def derive_key(secret: str | bytes, purpose: bytes) -> bytes:
    """A 32-byte key for ``purpose`` from a high-entropy secret (like Rails' ``secret_key_base``)."""
    raw = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(raw, b"solidstack.cache." + purpose, hashlib.sha256).digest()


def _json_shaped(value: Any) -> bool:
    """True when ``json.loads(json.dumps(value)) == value`` holds exactly (no tuples, sets or int keys)."""
    kind = type(value)
    if kind in (str, int, float, bool) or value is None:
        return True
    if kind is list:
        return all(_json_shaped(item) for item in value)
    if kind is dict:
        return all(type(k) is str and _json_shaped(v) for k, v in value.items())
    return False


class Codec:
    """Encodes values for one store. ``secret`` is required by the pickle serializer (it signs entries)."""

    def __init__(self, *, serializer: str = "safe", secret: str | bytes | None = None,
                 encryption_key: str | bytes | None = None, compress_threshold: int | None = 1024) -> None:
        if serializer not in SERIALIZERS:
            raise ValueError(f"unknown serializer {serializer!r} (known: {', '.join(SERIALIZERS)})")
        if serializer == "pickle" and not secret:
            raise ValueError("the pickle serializer needs a secret to sign entries with")
        self.serializer = serializer
        self._signing_key = derive_key(secret, b"signing") if serializer == "pickle" and secret else None
        self._aead = None
        if encryption_key:
            try:
                from cryptography.hazmat.primitives.ciphers.aead import AESGCM
            except ImportError:  # pragma: no cover - depends on the installed extras
                raise ValueError(
                    "encryption needs the cryptography package: pip install 'solidstack[encryption]'"
                ) from None
            self._aead = AESGCM(derive_key(encryption_key, b"encryption"))
        self.compress_threshold = compress_threshold

    @property
    def encrypted(self) -> bool:
        return self._aead is not None

    # -- encoding --------------------------------------------------------------------------------------------

    def dump(self, value: Any, key: bytes) -> bytes:
        """The stored form of ``value`` under ``key``; ``TypeError`` for a value the serializer refuses."""
        kind = type(value)
        if kind is str:
            tag, payload = STR, value.encode()
        elif kind is bytes:
            tag, payload = BYTES, value
        elif kind is int:
            tag, payload = INT, str(value).encode()
        elif value is None:
            tag, payload = NONE, b""
        elif kind is bool:
            tag, payload = (TRUE if value else FALSE), b""
        elif kind is float:
            tag, payload = FLOAT, repr(value).encode()
        elif kind in (list, dict) and _json_shaped(value):
            tag, payload = JSON, json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
        elif self.serializer == "pickle":
            tag, payload = PICKLE, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        elif isinstance(value, str):  # str subclasses (StrEnum) come back as plain str
            tag, payload = STR, str.__str__(value).encode()
        elif isinstance(value, int):  # IntEnum, IntFlag: plain int
            tag, payload = INT, int.__repr__(value).encode()
        elif isinstance(value, bytes | bytearray | memoryview):
            tag, payload = BYTES, bytes(value)
        else:
            try:
                typed = to_json(value, "the value", what="cached")
            except TypedValueError as exc:
                raise TypeError(f"cannot cache it with the safe serializer: {exc}; convert it, or choose "
                                "serializer: pickle") from None
            tag, payload = TYPED, json.dumps(typed, ensure_ascii=False, separators=(",", ":")).encode()
        threshold = self.compress_threshold
        if threshold is not None and len(payload) >= threshold:
            packed = zlib.compress(payload, 6)
            if len(packed) <= len(payload) * (1 - MIN_SAVING):
                tag |= COMPRESSED
                payload = packed
        if tag & 0x0F == PICKLE:
            payload = self._mac(key, tag, payload) + payload
        entry: bytes = bytes((tag,)) + payload
        if self._aead is not None:
            nonce = os.urandom(NONCE_SIZE)
            entry = bytes((ENCRYPTED,)) + nonce + self._aead.encrypt(nonce, entry, key)
        return entry

    def _mac(self, key: bytes, tag: int, payload: bytes) -> bytes:
        assert self._signing_key is not None
        return hmac.new(self._signing_key, key + b"\0" + bytes((tag,)) + payload, hashlib.sha256).digest()

    # -- decoding --------------------------------------------------------------------------------------------

    def load(self, entry: bytes, key: bytes) -> Any:
        """The value stored as ``entry`` under ``key``; raises :class:`CorruptEntry` when it cannot be trusted."""
        if not entry:
            raise CorruptEntry("empty entry")
        tag = entry[0]
        if tag == STR:  # the common cases first
            try:
                return entry[1:].decode()
            except UnicodeDecodeError as exc:
                raise CorruptEntry(f"invalid text: {exc}") from None
        if tag == BYTES:
            return entry[1:]
        if tag == ENCRYPTED:
            entry = self._decrypt(entry, key)
            tag = entry[0]
        kind = tag & 0x0F
        payload = entry[1:]
        if tag & ~(0x0F | COMPRESSED):
            raise CorruptEntry(f"unknown type byte {tag:#x}")
        if kind == PICKLE:
            if self._signing_key is None:
                raise CorruptEntry("a pickled entry, but this store's serializer is safe: not unpickled")
            mac, payload = payload[:MAC_SIZE], payload[MAC_SIZE:]
            if not hmac.compare_digest(mac, self._mac(key, tag, payload)):
                raise CorruptEntry("the signature of a pickled entry does not verify: not unpickled")
        if tag & COMPRESSED:
            payload = _inflate(payload)
        try:
            if kind == STR:
                return payload.decode()
            if kind == BYTES:
                return bytes(payload)
            if kind == INT:
                return int(payload)
            if kind == NONE:
                return None
            if kind == TRUE:
                return True
            if kind == FALSE:
                return False
            if kind == FLOAT:
                return float(payload)
            if kind == JSON:
                return json.loads(payload)
            if kind == TYPED:
                return from_json(json.loads(payload))
            if kind == PICKLE:
                return pickle.loads(payload)
        except CorruptEntry:
            raise
        except Exception as exc:
            raise CorruptEntry(f"cannot decode a type {kind} entry: {exc}") from None
        raise CorruptEntry(f"unknown type byte {tag:#x}")

    def _decrypt(self, entry: bytes, key: bytes) -> bytes:
        if self._aead is None:
            raise CorruptEntry("an encrypted entry, but this store has no encryption key")
        from cryptography.exceptions import InvalidTag

        nonce, sealed = entry[1:1 + NONCE_SIZE], entry[1 + NONCE_SIZE:]
        try:
            inner = self._aead.decrypt(nonce, sealed, key)
        except (InvalidTag, ValueError):
            raise CorruptEntry("an encrypted entry does not decrypt with this key") from None
        if not inner or inner[0] == ENCRYPTED:
            raise CorruptEntry("an encrypted entry holds no valid entry")
        return inner


def _inflate(payload: bytes) -> bytes:
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(payload, MAX_VALUE_SIZE)
    except zlib.error as exc:
        raise CorruptEntry(f"cannot decompress: {exc}") from None
    if inflater.unconsumed_tail or not inflater.eof:
        raise CorruptEntry("a compressed entry is truncated or larger than the largest value")
    return data
