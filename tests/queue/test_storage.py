"""Every state transition of the queue, on a real SQLite file, with the clock passed in."""

from __future__ import annotations

import uuid

import pytest

from solidstack.queue.storage import NewJob, QueueStorage

NOW = 1_800_000_000.0


@pytest.fixture
def storage(engine_storage: QueueStorage) -> QueueStorage:
    """This module's storage tests run on SQLite and on PostgreSQL."""
    return engine_storage




def new(queue: str = "default", priority: int = 0, at: float | None = None, name: str = "J") -> NewJob:
    return NewJob(queue, name, '{"args":[],"kwargs":{}}', priority, str(uuid.uuid4()), at)


def state(storage: QueueStorage, job_id: int) -> str:
    row = storage.job_state(job_id)
    assert row is not None
    return row["state"]


def test_enqueue_ready_and_scheduled_in_one_transaction(storage: QueueStorage) -> None:
    ids = storage.enqueue([new(), new(at=NOW + 60), new(at=NOW - 1)], NOW)
    assert ids == [1, 2, 3]
    assert [state(storage, i) for i in ids] == ["ready", "scheduled", "ready"]
    assert storage.counts()["ready"] == 2


def test_bulk_enqueue_ids_match_rows(storage: QueueStorage) -> None:
    storage.enqueue([new(name="First")], NOW)
    ids = storage.enqueue([new(name=f"J{i}") for i in range(500)], NOW)
    assert len(ids) == 500
    sql = storage.db.statement("SELECT id, class_name FROM solidstack_jobs WHERE id >= ? ORDER BY id")
    rows = storage.db.query(sql, (ids[0],))
    assert [(r[0], r[1]) for r in rows] == [(i, f"J{n}") for n, i in enumerate(ids)]


def test_bulk_enqueue_of_alike_jobs_keeps_every_column_and_the_order(storage: QueueStorage) -> None:
    """Jobs of one queue, class and priority (on PostgreSQL: enqueue_ready_alike, those three sent once; decision
    0076) and a mixed batch after them (enqueue_ready): every column as it went in, ids in the batch's order, one
    ready row each."""
    alike = [NewJob("mail", "Welcome", f'{{"args":[{i}],"kwargs":{{}}}}', 4, f"key-{i}") for i in range(300)]
    mixed = [*alike[:2], NewJob("mail", "Welcome", '{"args":[],"kwargs":{}}', 5, "other")]
    ids = storage.enqueue(alike, NOW) + storage.enqueue(mixed, NOW)
    assert ids == sorted(ids) and len(set(ids)) == 303
    sql = storage.db.statement("SELECT j.id, j.queue_name, j.class_name, j.arguments, j.priority, j.active_job_id,"
                               " r.queue_name, r.priority FROM solidstack_jobs j"
                               " JOIN solidstack_ready_executions r ON r.job_id = j.id ORDER BY j.id")
    rows = [tuple(row) for row in storage.db.query(sql)]
    assert rows == [(job_id, *job[:5], job.queue_name, job.priority)
                    for job_id, job in zip(ids, alike + mixed, strict=True)]


def test_claim_orders_by_queue_list_then_priority(storage: QueueStorage) -> None:
    a_low = storage.enqueue([new("a", priority=5)], NOW)[0]
    b_high = storage.enqueue([new("b", priority=0)], NOW)[0]
    a_high = storage.enqueue([new("a", priority=1)], NOW)[0]
    claimed = storage.claim(1, ["a", "b"], 10, NOW)
    assert [row.id for row in claimed] == [a_high, a_low, b_high]
    storage.release([r.id for r in claimed], 1, NOW)
    assert [row.id for row in storage.claim(1, ["a", "b"], 2, NOW)] == [a_high, a_low]


def test_claim_all_queues_by_priority_and_prefix_wildcard(storage: QueueStorage) -> None:
    mail = storage.enqueue([new("mailers", priority=3)], NOW)[0]
    mail2 = storage.enqueue([new("mail_bulk", priority=1)], NOW)[0]
    other = storage.enqueue([new("reports", priority=0)], NOW)[0]
    assert [r.id for r in storage.claim(1, ["mail*"], 10, NOW)] == [mail2, mail]
    assert [r.id for r in storage.claim(1, ["*"], 10, NOW)] == [other]


def test_claim_limit_and_no_double_claims(storage: QueueStorage) -> None:
    storage.enqueue([new() for _ in range(5)], NOW)
    first = storage.claim(1, ["*"], 3, NOW)
    second = storage.claim(2, ["*"], 3, NOW)
    assert len(first) == 3 and len(second) == 2
    assert not {r.id for r in first} & {r.id for r in second}
    assert storage.claim(3, ["*"], 3, NOW) == []


def test_paused_queue_is_skipped(storage: QueueStorage) -> None:
    storage.enqueue([new("paused"), new("live")], NOW)
    storage.db.execute("INSERT INTO solidstack_pauses (queue_name, created_at) VALUES ('paused', 0)")
    assert [r.queue_name for r in storage.claim(1, ["*"], 10, NOW)] == ["live"]
    assert storage.claim(1, ["paused"], 10, NOW) == []


def test_finish_preserves_or_deletes(storage: QueueStorage) -> None:
    a, b = storage.enqueue([new(), new()], NOW)
    storage.claim(7, ["*"], 2, NOW)
    assert storage.finish([a], 7, NOW + 1) == [a]
    assert state(storage, a) == "finished"
    assert storage.finish([b], 7, NOW + 1, preserve=False) == [b]
    assert storage.job_state(b) is None


def test_only_the_claiming_process_can_finish(storage: QueueStorage) -> None:
    (a,) = storage.enqueue([new()], NOW)
    storage.claim(7, ["*"], 1, NOW)
    assert storage.finish([a], 8, NOW) == []
    assert not storage.fail(a, 8, {"message": "x"}, NOW)
    assert state(storage, a) == "claimed"


def test_fail_retry_and_discard_failed(storage: QueueStorage) -> None:
    a, b = storage.enqueue([new(), new()], NOW)
    storage.claim(1, ["*"], 2, NOW)
    assert storage.fail(a, 1, {"exception_class": "RuntimeError", "message": "boom"}, NOW)
    assert storage.fail(b, 1, {"exception_class": "RuntimeError", "message": "bang"}, NOW)
    failed = storage.failed_jobs()
    assert [(f.id, f.error["message"]) for f in failed] == [(a, "boom"), (b, "bang")]
    assert storage.retry_failed([a], NOW) == 1
    assert state(storage, a) == "ready"
    assert storage.discard_failed(None) == 1
    assert storage.job_state(b) is None
    assert storage.retry_failed([12345], NOW) == 0


def test_retry_later_schedules_with_executions(storage: QueueStorage) -> None:
    (a,) = storage.enqueue([new()], NOW)
    storage.claim(1, ["*"], 1, NOW)
    assert storage.retry_later(a, 1, executions=1, run_at=NOW + 30, now=NOW)
    assert state(storage, a) == "scheduled"
    assert storage.dispatch_due(NOW + 29, 10) == 0
    assert storage.dispatch_due(NOW + 30, 10) == 1
    (row,) = storage.claim(1, ["*"], 1, NOW + 30)
    assert row.executions == 1


def test_dispatch_in_batches_in_due_order(storage: QueueStorage) -> None:
    ids = storage.enqueue([new(at=NOW + 10 - i) for i in range(5)], NOW)
    assert storage.next_scheduled_at() == NOW + 6
    assert storage.dispatch_due(NOW + 10, 2) == 2
    assert {state(storage, i) for i in ids[-2:]} == {"ready"}
    assert storage.dispatch_due(NOW + 10, 10) == 3
    assert storage.next_scheduled_at() is None


def test_process_death_releases_claims_then_fails_after_the_bound(storage: QueueStorage) -> None:
    (a,) = storage.enqueue([new()], NOW)
    for death in range(1, 4):
        pid = storage.register_process("Worker", f"w{death}", NOW, pid=999_999)
        assert [r.id for r in storage.claim(pid, ["*"], 1, NOW)] == [a]
        again, failed = storage.deregister_process(pid, NOW, died=True, reason="worker died", max_deaths=3)
        if death < 3:
            assert (again, failed) == ([a], [])
            assert state(storage, a) == "ready"
        else:
            assert (again, failed) == ([], [a])
    (job,) = storage.failed_jobs()
    assert job.error["exception_class"] == "ProcessDiedError" and "worker died" in job.error["message"]
    assert storage.retry_failed([a], NOW) == 1
    assert storage.claim(1, ["*"], 1, NOW)[0].process_deaths == 0


def test_graceful_deregister_releases_without_counting(storage: QueueStorage) -> None:
    (a,) = storage.enqueue([new()], NOW)
    pid = storage.register_process("Worker", "w", NOW)
    storage.claim(pid, ["*"], 1, NOW)
    assert storage.deregister_process(pid, NOW) == ([a], [])
    assert storage.claim(1, ["*"], 1, NOW)[0].process_deaths == 0


def test_prune_by_heartbeat_and_by_dead_pid(storage: QueueStorage) -> None:
    stale = storage.register_process("Worker", "stale", NOW - 1000)
    dead_pid = storage.register_process("Worker", "gone", NOW, pid=2**22 + 12345)  # above pid_max: not alive
    alive = storage.register_process("Worker", "alive", NOW)
    storage.enqueue([new(), new()], NOW)
    storage.claim(stale, ["*"], 1, NOW)
    storage.claim(dead_pid, ["*"], 1, NOW)
    pruned = storage.prune_dead_processes(NOW, alive_threshold=300, max_deaths=3)
    assert {p["id"] for p in pruned} == {stale, dead_pid}
    assert [p["id"] for p in storage.processes()] == [alive]
    assert storage.counts()["ready"] == 2


def test_orphaned_claims_are_released(storage: QueueStorage) -> None:
    (a,) = storage.enqueue([new()], NOW)
    storage.claim(424242, ["*"], 1, NOW)  # a process id with no row
    assert storage.release_orphaned_claims(NOW, 3) == ([a], [])
    assert state(storage, a) == "ready"


def test_heartbeat_reports_a_pruned_row(storage: QueueStorage) -> None:
    pid = storage.register_process("Worker", "w", NOW)
    assert storage.heartbeat(pid, NOW + 1)
    storage.deregister_process(pid, NOW)
    assert not storage.heartbeat(pid, NOW + 2)


def test_enqueued_text_comes_back_exactly(storage: QueueStorage) -> None:
    # On PostgreSQL a plain enqueue sends its columns as binary text[] arrays (decision 0057): what an array's
    # text format would have to quote (quotes, backslashes, braces, commas, NULL, spaces, unicode) comes back as
    # it went in.
    awkward = ['{"args":["a\\"b","c\\\\d",{"e":[1,2]}],"kwargs":{"f":"NULL"}}', '{"args":[" , {} "],"kwargs":{}}',
               '{"args":["ünï ☃ \\u0001"],"kwargs":{}}']
    jobs = [NewJob(f"q {i},{{x}}", f'Cls"{i}', text, i, f"id\\{i}") for i, text in enumerate(awkward)]
    ids = storage.enqueue(jobs, NOW)
    rows = {row.id: row for row in storage.claim(7, ["*"], 10, NOW)}
    for job_id, job in zip(ids, jobs, strict=True):
        row = rows[job_id]
        assert (row.queue_name, row.class_name, row.arguments, row.priority, row.active_job_id) == tuple(job[:5])
