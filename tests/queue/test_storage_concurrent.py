"""Claims, dispatch and recurring runs from several threads at once, each on its own connection, on both engines;
and the PostgreSQL wake-ups: NOTIFY at commit only, once per transaction, the listener's reconnection."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from solidstack.queue.storage import NewJob, QueueStorage

NOW = 1_800_000_000.0


@pytest.fixture
def storage(engine_storage: QueueStorage) -> QueueStorage:
    return engine_storage


def new(queue: str = "default", at: float | None = None) -> NewJob:
    return NewJob(queue, "J", '{"args":[],"kwargs":{}}', 0, str(uuid.uuid4()), at)


def in_threads(count: int, target: Callable[[int], Any]) -> list[Any]:
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            results[index] = target(index)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    return results


def test_concurrent_claimers_never_claim_a_job_twice(storage: QueueStorage) -> None:
    ids = storage.enqueue([new(f"q{i % 3}") for i in range(600)], NOW)

    def claimer(process_id: int) -> list[int]:
        mine: list[int] = []
        while True:
            rows = storage.claim(process_id, ["*"], 7, NOW)
            if not rows:
                return mine
            mine += [row.id for row in rows]
            storage.finish([row.id for row in rows], process_id, NOW)

    claimed = in_threads(4, claimer)
    counts = Counter(job_id for batch in claimed for job_id in batch)
    assert sorted(counts) == ids
    assert max(counts.values()) == 1
    assert storage.counts()["finished"] == 600 and storage.counts()["claimed"] == 0


def test_concurrent_dispatchers_move_each_scheduled_job_once(storage: QueueStorage) -> None:
    storage.enqueue([new(at=NOW + 1) for _ in range(300)], NOW)
    moved = in_threads(3, lambda _: sum(iter(lambda: storage.dispatch_due(NOW + 2, 10), 0)))
    assert sum(moved) == 300
    assert storage.counts()["ready"] == 300 and storage.counts()["scheduled"] == 0


def test_concurrent_enqueuers_get_distinct_ids_and_ready_rows(storage: QueueStorage) -> None:
    batches = in_threads(4, lambda _: [job_id for _ in range(20) for job_id in storage.enqueue(
        [new(), new(at=NOW + 60), new()], NOW)])
    all_ids = [job_id for batch in batches for job_id in batch]
    assert len(set(all_ids)) == 240
    assert storage.counts()["ready"] == 160 and storage.counts()["scheduled"] == 80


# -- PostgreSQL wake-ups ---------------------------------------------------------------------------------------


def pg_only(storage: QueueStorage) -> None:
    if storage.db.dialect != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")


def test_notify_fires_at_commit_once_per_transaction_and_never_on_rollback(storage: QueueStorage) -> None:
    pg_only(storage)
    import psycopg

    listener = psycopg.connect(storage.db.conninfo, autocommit=True)
    try:
        listener.execute("LISTEN solidstack_queue")

        def received(wait: float = 0.5) -> int:
            return sum(1 for _ in listener.notifies(timeout=wait))

        with storage.db.transaction():
            storage.enqueue([new()], NOW)
            storage.enqueue([new(), new()], NOW)
            storage.release([], None, NOW)
            assert received(0.3) == 0, "delivered before the commit"
        assert received() == 1, "one notification for the whole transaction"
        with pytest.raises(RuntimeError), storage.db.transaction():
            storage.enqueue([new()], NOW)
            raise RuntimeError("rolled back")
        assert received() == 0
        storage.enqueue([new(at=NOW + 60)], NOW)  # scheduled: nothing became ready
        assert received() == 0
    finally:
        listener.close()


def test_a_worker_waiter_wakes_on_notify_and_after_its_connection_is_terminated(storage: QueueStorage) -> None:
    pg_only(storage)
    from engines import admin_execute
    from solidstack.db.pglisten import Listener

    waiter = storage.wakeups.listener()
    assert waiter is not None
    listener = Listener.of(storage.db)  # type: ignore[arg-type]
    try:
        assert listener.connected.wait(10)
        time.sleep(0.1)
        assert not waiter.wait(0.05)
        started = time.monotonic()
        storage.enqueue([new()], time.time())
        assert waiter.wait(5) and time.monotonic() - started < 2.0
        # The server drops the listening connection: the listener reconnects and wakes its waiters (a
        # notification may have been missed meanwhile).
        admin_execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      f"WHERE datname = '{storage.db.params['dbname']}' AND query LIKE 'LISTEN%'")
        assert waiter.wait(10)
        deadline = time.monotonic() + 10
        while listener.connections < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert listener.connections == 2 and listener.connected.wait(10)
        waiter.wait(0.2)  # drain
        storage.enqueue([new()], time.time())
        assert waiter.wait(5), "no wake-up after the reconnection"
    finally:
        waiter.close()
        listener.close()


def test_listen_false_means_polling_only(storage: QueueStorage) -> None:
    pg_only(storage)
    storage.db.listen = False  # type: ignore[attr-defined]
    quiet = QueueStorage(storage.db)
    assert quiet.wakeups.listener() is None
    quiet.enqueue([new()], NOW)  # no NOTIFY sent, nothing fails
    assert quiet.claim(1, ["*"], 1, NOW)


def test_claims_walk_an_index_in_order_without_statistics(storage: QueueStorage) -> None:
    """autovacuum off, never analyzed: the claim must not read and sort a whole queue (decision 0020)."""
    pg_only(storage)
    storage.enqueue([new(f"q{i % 4}") for i in range(20_000)], NOW)
    analyzed = storage.db.query("SELECT last_analyze, last_autoanalyze FROM pg_stat_user_tables "
                                "WHERE relname = 'solidstack_ready_executions'")
    assert list(analyzed[0]) == [None, None]
    params = {"limit": 3, "queue": "q2", "prefix": "q2", "prefix_end": "q3", "process_id": 1, "now": NOW}
    for name in ("ready_all", "ready_in_queue", "ready_in_prefix", "claim_all", "claim_in_queue",
                 "claim_in_prefix"):
        plan = "\n".join(row[0] for row in storage.db.query("EXPLAIN " + storage.sql[name], params))
        # (The claim's final sort of its :limit returned rows is fine; a sort of the ready rows is not.)
        assert "Sort Key: r." not in plan and "Bitmap" not in plan and "Seq Scan on solidstack_ready" not in plan, \
            f"{name}:\n{plan}"


def test_a_claim_whose_commit_answer_was_lost_is_handed_back(storage: QueueStorage) -> None:
    """The connection drops after the server committed a claim but before its answer came: the worker never got
    those jobs. The next claim first hands back what the process holds but does not have, and they run."""
    from solidstack.queue import Worker, WorkerConfig

    worker = Worker(storage, WorkerConfig(threads=1, polling_interval=0.1))
    worker.process_id = storage.register_process("Worker", worker.name, NOW)
    ids = storage.enqueue([new(), new()], NOW)
    stray = storage.claim(worker.process_id, ["*"], 2, NOW)  # as if its answer had been lost
    assert [row.id for row in stray] == ids
    worker._resync = True
    worker._claiming = True
    worker._claim(NOW, by_thread=False)  # releases both, then claims one for its one thread
    assert storage.counts()["ready"] + len(worker._ready) == 2
    assert len(worker._ready) == 1 and worker._ready[0].id == ids[0]
    assert storage.claimed_by(worker.process_id) == [ids[0]]


def test_a_pruner_that_loses_the_race_releases_nothing_claimed_again_elsewhere(storage: QueueStorage) -> None:
    """Two supervisors prune one dead process at once (PostgreSQL: nothing serializes them). The first releases
    its job and a worker claims it again; the second, which had read the dead process's claims before, must
    neither put that running job back in the queue nor count a second death. Before the fix it did both (the
    soak on PostgreSQL saw it as a duplicate ready row); SQLite's single writer never lets them overlap."""
    if storage.db.dialect != "postgresql":
        pytest.skip("SQLite serializes writers: the two pruners cannot overlap")
    import psycopg

    dead = storage.register_process("Worker", "dead", NOW, pid=999_999)
    alive = storage.register_process("Worker", "alive", NOW)
    (job_id,) = storage.enqueue([new()], NOW)
    assert [row.id for row in storage.claim(dead, ["*"], 1, NOW)] == [job_id]
    first = psycopg.connect(storage.db.conninfo, autocommit=False)  # type: ignore[attr-defined]
    try:
        # The first pruner holds the claim's row while it releases the job.
        first.execute("SELECT 1 FROM solidstack_claimed_executions WHERE job_id = %s FOR UPDATE", (job_id,))
        second = threading.Thread(target=storage.deregister_process, args=(dead, NOW),
                                  kwargs={"died": True, "reason": "dead", "max_deaths": 10, "cascade": False})
        second.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # until the second pruner waits for that row
            waiting = first.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()[0]
            if waiting:
                break
            time.sleep(0.01)
        assert waiting, "the second pruner never waited for the first"
        # The first pruner releases the job, and a live worker claims it again, all before the second goes on.
        first.execute("DELETE FROM solidstack_claimed_executions WHERE job_id = %s", (job_id,))
        first.execute("UPDATE solidstack_jobs SET process_deaths = process_deaths + 1 WHERE id = %s", (job_id,))
        first.execute("INSERT INTO solidstack_claimed_executions (job_id, process_id, created_at) "
                      "VALUES (%s, %s, %s)", (job_id, alive, NOW))
        first.execute("DELETE FROM solidstack_processes WHERE id = %s", (dead,))
        first.commit()
        second.join(10)
        assert not second.is_alive()
    finally:
        first.close()
    assert storage.claimed_by(alive) == [job_id]
    assert storage.counts()["ready"] == 0, "a running job was put back in the queue"
    deaths = storage.db.query_one("SELECT process_deaths FROM solidstack_jobs WHERE id = %s", (job_id,))[0]
    assert deaths == 1
