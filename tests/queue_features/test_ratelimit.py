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


def test_one_claim_of_many_rows_of_a_key_admits_exactly_the_free_slots(storage: QueueStorage) -> None:
    """Decision 0062: a claim's rows of one key take their starts in one statement (PostgreSQL: after the
    one-statement cycle, in a transaction of their own). With 3 slots left of 5, a claim of 7 rows of the key and 2
    of another admits 3 + 2; the 4 others go back to scheduled for when the first start leaves the window, their
    run count unchanged; a second claim admits nothing of the full key."""
    from solidstack.queue.features.ratelimit import ClaimLimiter

    @limits_rate(to=5, per=60.0, key=lambda job: job.args[0])
    class Q3RatedMany(Job):
        def perform(self, token: str) -> None:
            pass

    now = time.time()
    assert acquire(storage, "Q3RatedMany/a", 5, 60.0, now - 10) is None
    assert acquire(storage, "Q3RatedMany/a", 5, 60.0, now - 5) is None
    ids = [Q3RatedMany.perform_later("a").provider_job_id for _ in range(7)]
    others = [Q3RatedMany.perform_later("b").provider_job_id for _ in range(2)]
    storage.on_claim = ClaimLimiter(storage)
    claimed = storage.claim(None, ["*"], 20, time.time())
    assert sorted(row.id for row in claimed) == sorted(ids[:3] + others)
    counts = storage.counts()
    assert (counts["claimed"], counts["scheduled"], counts["ready"]) == (5, 4, 0)
    waiting = storage.db.query("SELECT scheduled_at FROM solidstack_scheduled_executions")
    assert all(abs(row[0] - (now - 10 + 60.0)) < 1.0 for row in waiting)  # when the oldest start leaves
    assert all(storage.job_state(job_id)["executions"] == 0 for job_id in ids[3:])
    starts = storage.db.query("SELECT key, count(*) FROM solidstack_rate_limit_starts GROUP BY key ORDER BY key")
    assert [tuple(row) for row in starts] == [("Q3RatedMany/a", 5), ("Q3RatedMany/b", 2)]


def test_claims_racing_on_one_key_admit_exactly_its_limit(storage: QueueStorage) -> None:
    """Decision 0064: four claimers (four process ids, four connections) claim rows of one key at the same
    instant, again and again; on PostgreSQL each claim statement takes its starts without the key's lock (start
    numbers taken ON CONFLICT DO NOTHING). Exactly the limit starts in the window, whatever the interleaving; the
    others wait in scheduled, none lost."""
    import threading

    from solidstack.queue.features.ratelimit import ClaimLimiter

    @limits_rate(to=5, per=300.0)
    class Q3RatedRace(Job):
        def perform(self) -> None:
            pass

    for _ in range(40):
        Q3RatedRace.perform_later()
    storage.on_claim = ClaimLimiter(storage)
    pids = [storage.register_process("Worker", f"w{n}", time.time()) for n in range(4)]
    barrier = threading.Barrier(4)
    got: list[int] = []
    errors: list[BaseException] = []

    def claim(pid: int) -> None:
        try:
            for _ in range(4):
                barrier.wait(10)
                rows = storage.claim(pid, ["*"], 3, time.time())
                got.extend(row.id for row in rows)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=claim, args=(pid,)) for pid in pids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert len(got) == len(set(got)) == 5
    counts = storage.counts()
    assert (counts["claimed"], counts["scheduled"] + counts["ready"]) == (5, 35)
    assert storage.db.query_one("SELECT count(*) FROM solidstack_rate_limit_starts")[0] == 5
