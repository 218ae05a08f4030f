"""Turbo Streams over cable: signed stream names and ``Turbo::StreamsChannel``.

A page renders ``<turbo-cable-stream-source channel="Turbo::StreamsChannel" signed-stream-name="...">``; the
browser subscribes with that signed name, and the server streams from the name only if the signature holds,
so a page can read only the streams the server signed for it. Names are signed as turbo-rails signs them
(``ActiveSupport::MessageVerifier``, SHA256, JSON): ``base64(json(name)) + "--" + hex(hmac)``. The key is
derived from the app's secret as Rails derives it (PBKDF2-HMAC-SHA256, 1000 iterations, 64 bytes, salt
``turbo/signed_stream_verifier_key``), so an app that shares ``SECRET_KEY_BASE`` with a Rails app signs the
same names.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
from typing import Any

from .channel import Channel

log = logging.getLogger("solidstack.cable")

SALT = b"turbo/signed_stream_verifier_key"
SECRET_VARS = ("SOLIDSTACK_SECRET_KEY_BASE", "SECRET_KEY_BASE")

_key: bytes | None = None


def derive_key(secret_key_base: str | bytes) -> bytes:
    """The verifier key for a secret, as Rails' key generator derives ``turbo/signed_stream_verifier_key``."""
    secret = secret_key_base.encode() if isinstance(secret_key_base, str) else secret_key_base
    return hashlib.pbkdf2_hmac("sha256", secret, SALT, 1000, 64)


def set_secret(secret_key_base: str | bytes | None) -> None:
    """Use this secret for signing stream names (``None``: read ``SECRET_KEY_BASE`` again on next use)."""
    global _key
    _key = derive_key(secret_key_base) if secret_key_base is not None else None


def _current_key() -> bytes:
    global _key
    if _key is None:
        for var in SECRET_VARS:
            if os.environ.get(var):
                _key = derive_key(os.environ[var])
                break
        else:
            raise RuntimeError(
                "signed stream names need a secret: set SECRET_KEY_BASE (or SOLIDSTACK_SECRET_KEY_BASE), "
                "or call solidstack.cable.turbo.set_secret(...)"
            )
    return _key


def stream_name_from(*streamables: Any) -> str:
    """The stream name for a record or several parts, as turbo-rails joins them (``"room:1"``)."""
    parts = []
    for item in streamables:
        to_param = getattr(item, "to_stream_param", None)
        parts.append(to_param() if callable(to_param) else str(item))
    return ":".join(parts)


def _digest(key: bytes, data: str) -> str:
    return hmac.new(key, data.encode("ascii"), hashlib.sha256).hexdigest()


def sign_stream_name(*streamables: Any, key: bytes | None = None) -> str:
    """The signed name a page puts in ``<turbo-cable-stream-source signed-stream-name=...>``."""
    name = stream_name_from(*streamables)
    data = base64.b64encode(json.dumps(name).encode("utf-8")).decode("ascii")
    return f"{data}--{_digest(key or _current_key(), data)}"


def verify_stream_name(signed: Any, *, key: bytes | None = None) -> str | None:
    """The stream name inside ``signed``, or ``None`` when it is not a name signed with this key."""
    if not isinstance(signed, str) or "--" not in signed or len(signed) > 16384:
        return None
    data, _, digest = signed.rpartition("--")
    if not data or not hmac.compare_digest(digest.encode("ascii", "replace"),
                                           _digest(key or _current_key(), data).encode("ascii")):
        return None
    try:
        value = json.loads(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    # ActiveSupport 7.1+ may wrap the value with metadata: {"_rails": {"data": ...}}.
    if isinstance(value, dict) and isinstance(value.get("_rails"), dict):
        value = value["_rails"].get("data")
    return value if isinstance(value, str) else None


class StreamsChannel(Channel):
    """``Turbo::StreamsChannel``: streams from the verified name; rejects a name that does not verify."""

    identifier_name = "Turbo::StreamsChannel"

    def subscribed(self) -> None:
        name = verify_stream_name(self.params.get("signed_stream_name"))
        if name is None:
            log.info("cable: Turbo::StreamsChannel rejected a stream name whose signature does not verify")
            self.reject()
            return
        self.stream_from(name)
