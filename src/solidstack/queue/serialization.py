"""Job arguments as JSON with typed extensions; never pickle.

Plain JSON values (str, int, float, bool, None, lists, dicts with string keys) are stored as they are. Other
supported types are stored as ``{"_ss": "<type>", "v": <json>}``; a dict that itself has a ``_ss`` key is wrapped
the same way so it cannot be mistaken for one. Anything else fails at enqueue with the path of the value, so
whoever can write the database can only ever hand a job plain data.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

TAG = "_ss"


class SerializationError(TypeError):
    """An argument cannot be stored as job data; the message names where it is."""


def _encode_datetime(value: datetime) -> str:
    return value.isoformat()


_ENCODERS: list[tuple[type, str, Callable[[Any], Any]]] = [
    # datetime before date: a datetime is a date.
    (datetime, "datetime", _encode_datetime),
    (date, "date", lambda v: v.isoformat()),
    (time, "time", lambda v: v.isoformat()),
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


def _to_json(value: Any, path: str) -> Any:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int) and type(value) is int:
        return value
    if isinstance(value, float) and type(value) is float:
        if value != value or value in (float("inf"), float("-inf")):
            raise SerializationError(f"{path}: {value!r} is not a finite number")
        return value
    if isinstance(value, list):
        return [_to_json(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise SerializationError(f"{path}: dict key {key!r} is not a string")
            out[key] = _to_json(item, f"{path}[{key!r}]")
        if TAG in out:
            return {TAG: "dict", "v": out}
        return out
    for kind, tag, encode in _ENCODERS:
        if isinstance(value, kind):
            if encode is None:
                items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
                return {TAG: tag, "v": [_to_json(item, f"{path}[{i}]") for i, item in enumerate(items)]}
            return {TAG: tag, "v": encode(value)}
    raise SerializationError(
        f"{path}: a {type(value).__module__}.{type(value).__qualname__} cannot be a job argument "
        "(use JSON values, datetime, date, time, timedelta, Decimal, UUID, bytes, tuple, set)"
    )


def _from_json(value: Any) -> Any:
    if isinstance(value, list):
        return [_from_json(item) for item in value]
    if isinstance(value, dict):
        tag = value.get(TAG)
        if tag is None:
            return {key: _from_json(item) for key, item in value.items()}
        raw = value.get("v")
        if tag == "dict":
            return {key: _from_json(item) for key, item in raw.items()}
        if tag == "tuple":
            return tuple(_from_json(item) for item in raw)
        if tag == "set":
            return {_from_json(item) for item in raw}
        if tag == "frozenset":
            return frozenset(_from_json(item) for item in raw)
        decoder = _DECODERS.get(tag)
        if decoder is None:
            raise ValueError(f"unknown argument type {tag!r} in job data")
        return decoder(raw)
    return value


_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
_string = json.encoder.encode_basestring  # what _encode writes for a str (ensure_ascii=False)


def _plain(value: Any) -> str:
    """The JSON of a str, int, bool or None, as ``_encode`` writes it; KeyError for anything else."""
    kind = type(value)
    if kind is str:
        return _string(value)
    if kind is int:
        return int.__repr__(value)
    return _LITERALS[value if kind is bool or value is None else _NOT_PLAIN]


_NOT_PLAIN = object()
_LITERALS = {True: "true", False: "false", None: "null"}


def dump_arguments(args: tuple[Any, ...], kwargs: dict[str, Any], *, job: str) -> str:
    """The JSON text stored for a job's arguments; raises :class:`SerializationError` naming job and argument."""
    # Most jobs take strings and numbers: those are written directly, with no walk and no encoder (a JSON
    # encoder is built for every call: 3 µs of a bulk enqueue's ~10 a job).
    try:
        named = ",".join([_string(name) + ":" + _plain(value) for name, value in kwargs.items()]) if kwargs else ""
        return '{"args":[' + ",".join(map(_plain, args)) + '],"kwargs":{' + named + "}}"
    except KeyError:
        pass
    try:
        data = {
            "args": [_to_json(value, f"argument {i}") for i, value in enumerate(args)],
            "kwargs": {name: _to_json(value, f"argument {name!r}") for name, value in kwargs.items()},
        }
    except SerializationError as exc:
        raise SerializationError(f"{job}: {exc}") from None
    return _encode(data)


def load_arguments(text: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Positional and keyword arguments from stored JSON text."""
    data = json.loads(text)
    return tuple(_from_json(value) for value in data.get("args", [])), {
        name: _from_json(value) for name, value in data.get("kwargs", {}).items()
    }
