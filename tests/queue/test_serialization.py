"""Job arguments: JSON with typed extensions, never pickle, clear errors at enqueue."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal

import pytest

from solidstack.queue.serialization import SerializationError, dump_arguments, load_arguments


def roundtrip(*args: object, **kwargs: object) -> tuple[tuple[object, ...], dict[str, object]]:
    return load_arguments(dump_arguments(args, kwargs, job="TestJob"))


def test_typed_values_roundtrip() -> None:
    values = [
        datetime(2026, 11, 28, 9, 30, 1, 123456, tzinfo=UTC),
        datetime(2026, 3, 29, 2, 30, tzinfo=timezone(timedelta(hours=2))),
        datetime(2026, 1, 1, 12, 0),
        date(2026, 2, 28),
        time(23, 59, 59, 5),
        timedelta(days=-1, seconds=5, microseconds=7),
        Decimal("12345678901234567890.000000001"),
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
        b"\x00\xffbinary",
        (1, "two", (3.5,)),
        {1, 2, 3},
        frozenset({"a"}),
        {"nested": [{"when": date(2020, 1, 1)}, None, True, 1.5]},
        {"_ss": "looks like a tag"},
    ]
    args, kwargs = roundtrip(*values, keyword=values)
    assert list(args) == values
    assert kwargs == {"keyword": values}
    assert type(args[0]) is datetime and args[0].tzinfo is not None


def test_plain_json_is_stored_as_is() -> None:
    text = dump_arguments(("a@example.com", 1, None), {"flag": True}, job="J")
    assert json.loads(text) == {"args": ["a@example.com", 1, None], "kwargs": {"flag": True}}


class Opaque:
    pass


@pytest.mark.parametrize(
    ("args", "kwargs", "where"),
    [
        ((Opaque(),), {}, "argument 0"),
        (("ok", [1, {"deep": Opaque()}]), {}, "argument 1[1]['deep']"),
        ((), {"user": Opaque()}, "argument 'user'"),
        (({1: "x"},), {}, "dict key 1 is not a string"),
        ((float("nan"),), {}, "not a finite number"),
        ((lambda: 1,), {}, "function"),
    ],
)
def test_unserializable_values_name_job_and_argument(args: tuple, kwargs: dict, where: str) -> None:
    with pytest.raises(SerializationError) as info:
        dump_arguments(args, kwargs, job="SendMagicLinkEmailJob")
    assert str(info.value).startswith("SendMagicLinkEmailJob: ")
    assert where in str(info.value)


def test_unknown_tag_in_stored_data_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown value type"):
        load_arguments('{"args": [{"_ss": "pickle", "v": "gASV"}], "kwargs": {}}')


@pytest.mark.parametrize(("args", "kwargs"), [
    ((), {}),
    ((0, -1, 10**30, True, False, None), {}),
    (("", 'quote " and \\ backslash', "tab\there\nnewline\x00nul", "é ü 日本 \U0001f600", "\u2028"), {}),
    ((1, "a"), {"b": None, "naïve key": "v", 'k"q': False}),
    ((1.5, "mixed"), {"x": 2}),  # a float takes the typed walk; the text is the same
])
def test_the_plain_fast_path_writes_what_the_encoder_writes(args: tuple, kwargs: dict) -> None:
    text = dump_arguments(args, kwargs, job="J")
    assert text == json.dumps({"args": list(args), "kwargs": kwargs}, separators=(",", ":"), ensure_ascii=False)
    assert load_arguments(text) == (args, kwargs)
