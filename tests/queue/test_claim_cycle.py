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


CLAIM_STATEMENTS = [f"{name}_{kind}" for name in ("claim_now", "finish_and_claim")
                    for kind in ("all", "in_queue", "in_prefix")]


def _cycle_params(name: str) -> dict[str, object]:
    params: dict[str, object] = {"process_id": 7, "now": NOW}
    if name.startswith("finish_and_claim"):
        params.update(ids=[], preserve=True)
    if name.endswith("in_queue"):
        params["queue"] = "default"
    if name.endswith("in_prefix"):
        params.update(prefix="def", prefix_end="deg")
    return params


@pytest.mark.parametrize("name", CLAIM_STATEMENTS)
def test_postgresql_claim_statements_commit_durably(engine: str, storage: QueueStorage, name: str) -> None:
    """The idle claim (claim_now_*, decision 0075) keeps the cycle's commit, durable (decision 0066): nothing in
    the statement turns synchronous_commit off."""
    if engine != "postgresql":
        pytest.skip("PostgreSQL only")
    sql = storage._cycle_statement(name, False, False, 3)
    with storage.db.transaction() as conn:
        assert conn.execute("SHOW synchronous_commit").fetchone()[0] == "on"
        assert conn.execute(sql, _cycle_params(name)).fetchall() == []
        assert conn.execute("SHOW synchronous_commit").fetchone()[0] == "on"


@pytest.mark.parametrize("name", CLAIM_STATEMENTS)
def test_postgresql_claim_statements_keep_their_generic_plan(engine: str, storage: QueueStorage, name: str) -> None:
    """The claim's LIMIT is written into the statement (decision 0075): with it bound as a parameter, once the
    jobs table holds rows (finished jobs are kept) the server plans the statement afresh at every call instead of
    reusing its prepared plan (0.2-0.5 ms a claim)."""
    if engine != "postgresql":
        pytest.skip("PostgreSQL only")
    import psycopg

    db = storage.db
    db.execute("INSERT INTO solidstack_jobs (queue_name, class_name, arguments, priority, active_job_id, created_at,"
               " updated_at, finished_at) SELECT 'default', 'J', '[]', 0, 'x', 0, 0, 0"
               " FROM generate_series(1, 3000)")
    (job,) = storage.enqueue([new()], NOW)
    sql = storage._cycle_statement(name, False, False, 3)
    with psycopg.connect(db.conninfo, autocommit=True, prepare_threshold=0) as conn:  # type: ignore[attr-defined]
        for _ in range(10):
            assert [row[1] for row in conn.execute(sql, _cycle_params(name)) if row[0] is False] == [job]
            # Back to ready by hand (a rollback would make psycopg drop its prepared statements).
            conn.execute("DELETE FROM solidstack_claimed_executions", prepare=False)
            conn.execute("INSERT INTO solidstack_ready_executions (job_id, queue_name, priority, created_at) "
                         "VALUES (%s, 'default', 0, 0)", (job,), prepare=False)
        plans = conn.execute("SELECT generic_plans, custom_plans FROM pg_prepared_statements "
                             "WHERE statement LIKE 'WITH%'", prepare=False).fetchall()
    assert len(plans) == 1 and plans[0][0] >= 5, plans
