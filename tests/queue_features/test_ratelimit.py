"""Rate limits on both engines: the sliding window, rescheduling (not failing) over the limit, bad input."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import pytest

from solidstack.queue import Job, RateLimitKeyError, limits_rate
from solidstack.queue.features.ratelimit import acquire
from solidstack.queue.storage import QueueStorage

NOW = 1_800_000_000.0
STARTS: list[float] = []


@limits_rate(to=2, per=timedelta(seconds=0.5), key=lambda job: job.args[0])
class Q3Rated(Job):
    def perform(self, token: str) -> None:
        STARTS.append(time.time())


def test_the_window_slides(storage: QueueStorage) -> None:
    assert acquire(storage, "k", 2, 10.0, NOW) is None
    assert acquire(storage, "k", 2, 10.0, NOW + 1) is None
    assert acquire(storage, "k", 2, 10.0, NOW + 2) == NOW + 10  # when the first start leaves the window
    assert acquire(storage, "other", 2, 10.0, NOW + 2) is None  # keys are separate
    assert acquire(storage, "k", 2, 10.0, NOW + 10.5) is None
    assert acquire(storage, "k", 2, 10.0, NOW + 10.6) == NOW + 11


def test_jobs_over_the_limit_wait_their_turn(storage: QueueStorage, work: Callable[..., None]) -> None:
    STARTS.clear()
    jobs = Job.perform_all_later([Q3Rated("t") for _ in range(5)])
    work(horizon=2.0)
    assert len(STARTS) == 5
    STARTS.sort()
    # Two per half second: the fifth run starts a whole second after the first.
    assert STARTS[4] - STARTS[0] >= 0.95
    for job in jobs:
        state = storage.job_state(job.provider_job_id)
        assert state["state"] == "finished" and state["executions"] == 0  # waiting was not a run, nor a failure
    assert storage.counts()["failed"] == 0


@pytest.mark.parametrize(("to", "per", "message"), [
    (0, 1.0, "limits_rate to= must be a whole number of at least 1, got 0"),
    (-1, 1.0, "to= must be a whole number"),
    (2.5, 1.0, "to= must be a whole number"),
    (1, 0, "limits_rate per= must be a positive number of seconds, got 0"),
    (1, timedelta(seconds=-1), "per= must be a positive"),
])
def test_a_bad_limit_fails_at_definition_naming_the_job(to: object, per: object, message: str) -> None:
    with pytest.raises(ValueError, match=rf"Q3BadRate: .*{message}"):
        @limits_rate(to=to, per=per)  # type: ignore[arg-type]
        class Q3BadRate(Job):
            pass


def test_a_key_function_that_fails_enqueues_nothing(storage: QueueStorage) -> None:
    with pytest.raises(RateLimitKeyError, match="Q3Rated: its rate limit key raised IndexError"):
        Job.perform_all_later([Q3Rated("fine"), Q3Rated()])
    assert storage.counts()["ready"] == 0
