"""Arguments too big or too deep to store: a SerializationError naming the job and argument, nothing enqueued.

Issue 11 item 12: ``perform_later(10**5000)`` raised ValueError (Python's int-to-str limit) and a 100,000-deep
nested list raised RecursionError, both from deep in the encoder, without the job or argument named.
"""

from __future__ import annotations

import pytest

from solidstack.config import App
from solidstack.queue import Job, SerializationError, queue_storage
from solidstack.queue.serialization import dump_arguments, load_arguments
from solidstack.typed import MAX_DEPTH


class SlBigJob(Job):
    def perform(self, *args: object, **kwargs: object) -> None:
        pass


def nested(depth: int, make=list):  # type: ignore[no-untyped-def]
    value: object = 1
    for _ in range(depth):
        value = make([value]) if make is not dict else {"k": value}
    return value


@pytest.mark.parametrize(
    ("args", "kwargs", "where"),
    [
        ((10**5000,), {}, "argument 0"),
        ((1, [2, -(10**5000)]), {}, "argument 1[1]"),
        ((), {"amount": 10**5000}, "argument 'amount'"),
        ((nested(100_000),), {}, "argument 0"),
        ((), {"tree": nested(100_000, dict)}, "argument 'tree'"),
        ((nested(100_000, tuple),), {}, "argument 0"),
        ((1, {nested(100_000, tuple)}), {}, "argument 1"),
        ((nested(MAX_DEPTH + 1),), {}, "argument 0"),
    ],
)
def test_huge_and_deep_arguments_name_job_and_argument(args: tuple, kwargs: dict, where: str) -> None:
    with pytest.raises(SerializationError) as info:
        dump_arguments(args, kwargs, job="SlBigJob")
    message = str(info.value)
    assert message.startswith("SlBigJob: ") and where in message
    assert len(message) < 500  # the path of a deep value is not spelled out level by level


def test_a_cycle_is_refused_too() -> None:
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(SerializationError, match="SlBigJob: argument 0"):
        dump_arguments((loop,), {}, job="SlBigJob")


def test_the_deepest_and_largest_accepted_values_roundtrip() -> None:
    deep = nested(MAX_DEPTH)
    big = 10**4000
    args, _ = load_arguments(dump_arguments((deep, big), {}, job="SlBigJob"))
    assert args == (deep, big)


def test_perform_later_refuses_and_enqueues_nothing(app: App) -> None:
    with pytest.raises(SerializationError, match="SlBigJob: argument 0"):
        SlBigJob.perform_later(10**5000)
    with pytest.raises(SerializationError, match="SlBigJob: argument 0"):
        SlBigJob.perform_later(nested(100_000))
    assert queue_storage().counts()["ready"] == 0
