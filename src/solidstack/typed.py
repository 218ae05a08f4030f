"""Typed JSON: the values job arguments and cached values may hold, as JSON, and back; never pickle.

Plain JSON values (str, int, float, bool, None, lists, dicts with string keys) are written as they are. Other
supported types are written as ``{"_ss": "<type>", "v": <json>}``; a dict that itself has a ``_ss`` key is
wrapped the same way so it cannot be mistaken for one. Anything else is refused with the path of the value, so
whoever can write the database can only ever hand the app plain data. Used by ``solidstack.queue.serialization``
(job arguments) and ``solidstack.cache.codec`` (cached values).
"""

from __future__ import annotations

import base64
import sys
import uuid
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

TAG = "_ss"
#: What the refusal says may be stored.
SUPPORTED = "JSON values, datetime, date, time, timedelta, Decimal, UUID, bytes, tuple, set"
#: How deeply lists, dicts, tuples and sets may nest. Deeper data is refused at write time: past Python's
#: recursion limit it could be neither written nor read back (a reader would fail with RecursionError), and a
#: value that contains itself would nest forever.
MAX_DEPTH = 100


class TypedValueError(TypeError):
    """A value cannot be written as typed JSON; the message names where it is."""


_ENCODERS: list[tuple[type, str, Callable[[Any], Any] | None]] = [
    # datetime before date: a datetime is a date.
    (datetime, "datetime", datetime.isoformat),
    (date, "date", date.isoformat),
    (time, "time", time.isoformat),
    (timedelta, "timedelta", lambda v: [v.days, v.seconds, v.microseconds]),
    (Decimal, "decimal", str),
    (uuid.UUID, "uuid", str),
    (bytes, "bytes", lambda v: base64.b64encode(v).decode("ascii")),
    (tuple, "tuple", None),  # encoded element by element below
    (set, "set", None),
    (frozenset, "frozenset", None),
]

_DECODERS: dict[str, Callable[[Any], Any]] = {
    "datetime": datetime.fromisoformat,
    "date": date.fromisoformat,
    "time": time.fromisoformat,
    "timedelta": lambda v: timedelta(days=v[0], seconds=v[1], microseconds=v[2]),
    "decimal": Decimal,
    "uuid": uuid.UUID,
    "bytes": lambda v: base64.b64decode(v.encode("ascii")),
}


class _TooDeep(Exception):
    pass


def to_json(value: Any, path: str, *, what: str = "a job argument") -> Any:
    """``value`` as plain JSON data (typed values tagged); :class:`TypedValueError` naming ``path`` otherwise."""
    try:
        return _to_json(value, path, what, 0)
    except _TooDeep:
        raise TypedValueError(
            f"{path}: nested more than {MAX_DEPTH} levels deep (or it contains itself), which cannot be {what}"
        ) from None


def _to_json(value: Any, path: str, what: str, depth: int) -> Any:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int) and type(value) is int:
        if value.bit_length() > 13_000 and _too_long(value):
            raise TypedValueError(f"{path}: an integer of more than {sys.get_int_max_str_digits()} digits cannot "
                                  f"be {what} (Python would not read it back; store it as a string)")
        return value
    if isinstance(value, float) and type(value) is float:
        if value != value or value in (float("inf"), float("-inf")):
            raise TypedValueError(f"{path}: {value!r} is not a finite number")
        return value
    depth += 1
    if isinstance(value, list):
        if depth > MAX_DEPTH:
            raise _TooDeep
        return [_to_json(item, f"{path}[{i}]", what, depth) for i, item in enumerate(value)]
    if isinstance(value, dict):
        if depth > MAX_DEPTH:
            raise _TooDeep
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypedValueError(f"{path}: dict key {key!r} is not a string")
            out[key] = _to_json(item, f"{path}[{key!r}]", what, depth)
        if TAG in out:
            return {TAG: "dict", "v": out}
        return out
    for kind, tag, encode in _ENCODERS:
        if isinstance(value, kind):
            if encode is None:
                if depth > MAX_DEPTH:
                    raise _TooDeep
                try:
                    items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
                except RecursionError:  # repr of a deeply nested tuple in the set
                    raise _TooDeep from None
                return {TAG: tag, "v": [_to_json(item, f"{path}[{i}]", what, depth) for i, item in enumerate(items)]}
            return {TAG: tag, "v": encode(value)}
    raise TypedValueError(
        f"{path}: a {type(value).__module__}.{type(value).__qualname__} cannot be {what} (use {SUPPORTED})")


def _too_long(value: int) -> bool:
    """Whether ``value`` has more digits than Python converts to and from text (``sys.set_int_max_str_digits``)."""
    try:
        int.__repr__(value)
    except ValueError:
        return True
    return False


def from_json(value: Any) -> Any:
    """The values :func:`to_json` wrote; ``ValueError`` for a tag it does not know."""
    if isinstance(value, list):
        return [from_json(item) for item in value]
    if isinstance(value, dict):
        tag = value.get(TAG)
        if tag is None:
            return {key: from_json(item) for key, item in value.items()}
        raw = value.get("v")
        if tag == "dict":
            return {key: from_json(item) for key, item in raw.items()}
        if tag == "tuple":
            return tuple(from_json(item) for item in raw)
        if tag == "set":
            return {from_json(item) for item in raw}
        if tag == "frozenset":
            return frozenset(from_json(item) for item in raw)
        decoder = _DECODERS.get(tag)
        if decoder is None:
            raise ValueError(f"unknown value type {tag!r} in stored data")
        return decoder(raw)
    return value
