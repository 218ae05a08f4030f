"""What a feature's job skips when nothing is left to do for it (decisions 0070 and 0072), on both engines: a rate
limited job whose claim took its start runs as a plain job does (no Run around its perform), one claimed before
the limiter was installed still takes its start at run time; the claim parses a meta text once, never a meta that
was not the job's own."""

from __future__ import annotations

import time

from solidstack.queue import Batch, Job, limits_rate
from solidstack.queue.features import hooks
from solidstack.queue.features.ratelimit import ClaimLimiter
from solidstack.queue.job import restore
from solidstack.queue.storage import JobRow, QueueStorage


@limits_rate(to=5, per=60)
class CostRated(Job):
    def perform(self, n: int) -> None:
        pass


def _job(row: JobRow) -> Job:
    return restore(row.class_name, [0], {}, job_id=row.active_job_id, queue_name=row.queue_name,
                   priority=row.priority, executions=row.executions + 1, provider_job_id=row.id, timeout=None)


def _starts(storage: QueueStorage) -> int:
    return int(storage.db.query_one("SELECT count(*) FROM solidstack_rate_limit_starts")[0])


def test_a_job_admitted_by_its_claim_runs_without_a_run(storage: QueueStorage) -> None:
    CostRated.perform_later(1)
    CostRated.perform_later(2)
    with Batch():
        CostRated.perform_later(3)  # a batch and a rate: the run must count it, so it keeps its Run
    storage.on_claim = None
    hooks._claim_limiter(storage)
    claimed = storage.claim(None, ["*"], 10, time.time())
    assert len(claimed) == 3 and _starts(storage) == 3  # the claim took every start
    runs = {row.id: hooks.run_for(row, _job(row), storage) for row in claimed}
    plain = [job_id for job_id, run in runs.items() if run is None]
    assert len(plain) == 2  # the two with a rate alone: nothing to do around their perform
    (batched,) = [run for run in runs.values() if run is not None]
    assert batched.batch_id is not None
    assert batched.admit(storage, None, time.time())  # admitted by the claim: no second start
    assert _starts(storage) == 3
    batched.done(storage, "finished", time.time())


def test_a_job_claimed_before_the_limiter_takes_its_start_when_it_runs(storage: QueueStorage) -> None:
    CostRated.perform_later(1)
    storage.on_claim = None  # claimed before this process's limiter was installed: no start taken
    (row,) = storage.claim(None, ["*"], 10, time.time())
    assert _starts(storage) == 0
    hooks._claim_limiter(storage)
    run = hooks.run_for(row, _job(row), storage)
    assert run is not None  # its start is still to take
    assert run.admit(storage, None, time.time())
    assert _starts(storage) == 1


def _row(job_id: int, arguments: str) -> JobRow:
    return JobRow(job_id, "default", "CostRated", arguments, 0, f"a{job_id}", None, None, 0, 0, 0.0)


def test_the_claim_parses_each_meta_text_once(storage: QueueStorage) -> None:
    hooks.parsed_meta.clear()  # left by other tests' claims (ids of their own databases)
    limiter = ClaimLimiter(storage)
    same = ',"meta":{"rate":["CostRated",5,60.0]}}'
    rows = [_row(1, '{"args":[1],"kwargs":{}' + same), _row(2, '{"args":[2],"kwargs":{}' + same),
            _row(3, '{"args":[3],"kwargs":{},"meta":{"rate":["other",2,1.0]}}'),
            # A "meta" of the arguments' own, nested: not the job's meta, never taken for one.
            _row(4, '{"args":[],"kwargs":{"o":{"x":1,"meta":{"rate":["fake",1,1.0]}}}}'),
            # A trace context differs job by job: used, not kept.
            _row(5, '{"args":[],"kwargs":{},"meta":{"rate":["CostRated",5,60.0],"trace":{"traceparent":"00-a"}}}'),
            _row(6, '{"args":[6],"kwargs":{}' + same)]
    rated = limiter._rated(rows)
    assert [(key, to, per, row.id) for key, to, per, row in rated] == [
        ("CostRated", 5, 60.0, 1), ("CostRated", 5, 60.0, 2), ("other", 2, 1.0, 3), ("CostRated", 5, 60.0, 5),
        ("CostRated", 5, 60.0, 6)]
    assert sorted(limiter._known) == ['{"rate":["CostRated",5,60.0]}', '{"rate":["other",2,1.0]}']
    assert hooks.parsed_meta[6][1] is hooks.parsed_meta[1][1]  # one parse for the three rows of one text
    assert 4 not in hooks.parsed_meta
    hooks.parsed_meta.clear()
