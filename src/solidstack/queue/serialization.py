"""Job arguments as typed JSON (:mod:`solidstack.typed`); never pickle.

Arguments are stored as ``{"args": [...], "kwargs": {...}}``. Anything that is not typed JSON fails at enqueue
with the job and the path of the value, so whoever can write the database can only ever hand a job plain data.
"""

from __future__ import annotations

import json
from typing import Any

from solidstack.typed import TypedValueError, from_json, to_json


class SerializationError(TypeError):
    """An argument cannot be stored as job data; the message names where it is."""


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
_LITERALS: dict[object, str] = {True: "true", False: "false", None: "null"}


def dump_arguments(args: tuple[Any, ...], kwargs: dict[str, Any], *, job: str) -> str:
    """The JSON text stored for a job's arguments; raises :class:`SerializationError` naming job and argument."""
    # Most jobs take strings and numbers: those are written directly, with no walk and no encoder (a JSON
    # encoder is built for every call: 3 µs of a bulk enqueue's ~10 a job).
    try:
        named = ",".join([_string(name) + ":" + _plain(value) for name, value in kwargs.items()]) if kwargs else ""
        return '{"args":[' + ",".join(map(_plain, args)) + '],"kwargs":{' + named + "}}"
    except (KeyError, ValueError):  # not plain, or an int too long for text: the walk below names it
        pass
    try:
        data = {
            "args": [to_json(value, f"argument {i}") for i, value in enumerate(args)],
            "kwargs": {name: to_json(value, f"argument {name!r}") for name, value in kwargs.items()},
        }
    except TypedValueError as exc:
        raise SerializationError(f"{job}: {exc}") from None
    return _encode(data)


def load_arguments(text: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Positional and keyword arguments from stored JSON text."""
    args, kwargs, _ = load_payload(text)
    return args, kwargs


def load_payload(text: str) -> tuple[tuple[Any, ...], dict[str, Any], float | None]:
    """Arguments and the ``timeout`` set for this enqueue (``Job.set(timeout=...)``; None: the class's)."""
    data = json.loads(text)
    return tuple(from_json(value) for value in data.get("args", [])), {
        name: from_json(value) for name, value in data.get("kwargs", {}).items()
    }, data.get("timeout")
