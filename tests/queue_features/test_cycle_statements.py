"""The worker cycle with the features folded in (decisions 0061, 0064), for every kind of queue entry a worker can
list (all, one queue, a prefix), on both engines: PostgreSQL splices the batch count and the rate admission into
each `finish_and_claim_*` statement (the rate admission into `claim_now_*` too, the claim with nothing to finish:
decision 0075), SQLite runs them in the claim's transaction."""

from __future__ import annotations

import time

import pytest

from solidstack.queue import Batch, Job, limits_rate
from solidstack.queue.features.batches import FinishCounter
from solidstack.queue.features.ratelimit import ClaimLimiter
from solidstack.queue.storage import QueueStorage


@limits_rate(to=1000, per=60.0)
class Q3CycleRated(Job):
    queue_as = "qa"

    def perform(self, n: int) -> None:
        pass


@pytest.mark.parametrize("queues", [["*"], ["qa"], ["q*"]], ids=["all", "one queue", "prefix"])
def test_batched_and_rated_jobs_through_the_cycle_of_each_queue_entry(storage: QueueStorage,
                                                                        queues: list[str]) -> None:
    counter = storage.on_finish = FinishCounter(storage)
    storage.on_claim = ClaimLimiter(storage)
    with Batch() as batch:
        for n in range(4):
            Q3CycleRated.perform_later(n)
    pid = storage.register_process("Worker", "cycle", time.time())
    rows = storage.claim(pid, queues, 10, time.time())
    assert len(rows) == 4
    for row in rows:
        counter.expect(row.id)
    assert storage.claim(pid, queues, 10, time.time(), finished=[row.id for row in rows]) == []
    status = batch.status()
    assert (status.pending, status.succeeded, status.finished) == (0, 4, True)
    assert storage.db.query_one("SELECT count(*) FROM solidstack_rate_limit_starts")[0] == 4
    assert storage.counts()["finished"] == 4
