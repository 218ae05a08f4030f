"""A busy worker's cycle, finish what ran and claim the next batch, on both engines; on PostgreSQL it is one
statement in autocommit (``finish_and_claim_*``, decision 0045)."""

from __future__ import annotations

import uuid

import pytest

from solidstack.queue.storage import NewJob, QueueStorage

NOW = 1_800_000_000.0


@pytest.fixture
def storage(engine_storage: QueueStorage) -> QueueStorage:
    return engine_storage


def new(queue: str = "default", key: str | None = None) -> NewJob:
    limit = 1 if key else None
    return NewJob(queue, "J", '{"args":[],"kwargs":{}}', 0, str(uuid.uuid4()), None, key, limit,
                  60.0 if key else None, "block" if key else None)


def state(storage: QueueStorage, job_id: int) -> str | None:
    row = storage.job_state(job_id)
    return row["state"] if row else None


@pytest.mark.parametrize("preserve", [True, False])
def test_claim_finishes_only_the_claims_this_process_holds(storage: QueueStorage, preserve: bool) -> None:
    a, b, c, d, e = storage.enqueue([new() for _ in range(5)], NOW)
    assert [row.id for row in storage.claim(7, ["*"], 2, NOW)] == [a, b]
    assert [row.id for row in storage.claim(8, ["*"], 1, NOW)] == [c]
    rows = storage.claim(7, ["*"], 1, NOW + 1, finished=[a, b, c], preserve=preserve)
    assert [row.id for row in rows] == [d]
    assert rows[0].queue_name == "default" and rows[0].class_name == "J" and rows[0].executions == 0
    gone = "finished" if preserve else None
    assert [state(storage, i) for i in (a, b, c, d, e)] == [gone, gone, "claimed", "claimed", "ready"]
    assert storage.claimed_by(8) == [c]
    assert storage.claimed_by(7) == [d]


def test_claim_with_nothing_left_to_claim_still_finishes(storage: QueueStorage) -> None:
    (a,) = storage.enqueue([new()], NOW)
    storage.claim(7, ["*"], 1, NOW)
    assert storage.claim(7, ["*"], 3, NOW + 1, finished=[a]) == []
    assert state(storage, a) == "finished"
    assert storage.claim(7, ["*"], 0, NOW + 1, finished=[a]) == []  # again: nothing held, nothing done


def test_claim_over_several_queue_entries_finishes_once(storage: QueueStorage) -> None:
    a, b, c = storage.enqueue([new("x"), new("y"), new("z")], NOW)
    assert [row.id for row in storage.claim(7, ["x"], 1, NOW)] == [a]
    rows = storage.claim(7, ["x", "y", "z*"], 3, NOW + 1, finished=[a])
    assert [row.id for row in rows] == [b, c]
    assert state(storage, a) == "finished"


def test_finishing_a_limited_job_with_the_claim_frees_its_slot(storage: QueueStorage) -> None:
    first, second = storage.enqueue([new(key="k"), new(key="k")], NOW)
    assert state(storage, second) == "blocked"
    assert [row.id for row in storage.claim(7, ["*"], 1, NOW)] == [first]
    storage.claim(7, ["*"], 1, NOW + 1, finished=[first])
    assert state(storage, first) == "finished"
    assert state(storage, second) in ("ready", "claimed")
    storage.claim(7, ["*"], 1, NOW + 2)
    assert storage.claimed_by(7) == [second]


def test_postgresql_cycle_commits_durably(engine: str, storage: QueueStorage) -> None:
    """The cycle's commit waits for the WAL flush like any other (decision 0066: a crash must not undo a claim
    whose job is running); tests/queue/test_claims_durable.py crashes a server to show it."""
    if engine != "postgresql":
        pytest.skip("PostgreSQL only")
    db = storage.db
    sql = storage.sql["finish_and_claim_all"]
    params = {"ids": [], "process_id": 7, "now": NOW, "limit": 3, "preserve": True}
    with db.transaction() as conn:  # a transaction of our own, to look inside it
        assert conn.execute(sql, params).fetchall() == []
        assert conn.execute("SHOW synchronous_commit").fetchone()[0] == "on"
    storage.enqueue([new()], NOW)
    assert len(storage.claim(7, ["*"], 3, NOW)) == 1
    assert db.query_one("SHOW synchronous_commit")[0] == "on"


def test_return_values_are_kept_with_the_cycle(storage: QueueStorage) -> None:
    """Jobs that returned a value keep it; one that returned None costs nothing and has none."""
    a, b, c = storage.enqueue([new(), new(), new()], NOW)
    storage.claim(7, ["*"], 2, NOW)
    assert [row.id for row in storage.claim(7, ["*"], 1, NOW + 1, finished=[a, b], results={a: '"A"'})] == [c]
    first, second = storage.job_result(a), storage.job_result(b)
    assert first is not None and first.value == "A" and first.status == "finished"
    assert second is not None and second.value is None and second.status == "finished"
