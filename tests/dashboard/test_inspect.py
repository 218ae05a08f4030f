"""The queue's inspection reads and job actions (queue.admin.inspect / .actions), on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest

from solidstack.queue.admin.actions import JobActions
from solidstack.queue.admin.inspect import Count, JobFilter, QueueInspector
from solidstack.queue.rows import NewJob
from solidstack.queue.storage import QueueStorage

NOW = 1_700_000_000.0


@pytest.fixture
def storage(engine_storage: QueueStorage) -> QueueStorage:
    return engine_storage


def job(cls: str = "MailJob", queue: str = "default", args: object = ("a",), **kw: object) -> NewJob:
    return NewJob(queue, cls, json.dumps({"arguments": list(args)}), 0, f"aj-{cls}-{args}", **kw)  # type: ignore[arg-type]


def fail(storage: QueueStorage, ids: list[int], message: str = "boom") -> None:
    claimed = storage.claim(None, ["*"], len(ids), NOW)
    for row in claimed:
        storage.fail(row.id, None, {"exception_class": "RuntimeError", "message": message,
                                    "backtrace": ["app.py:1 in perform", "lib.py:2 in call"]}, NOW)


def test_lists_are_keyset_pages_newest_first_with_filters(storage: QueueStorage) -> None:
    ids = storage.enqueue([job(args=(f"n{i}",)) for i in range(7)] + [job("OtherJob", "mail", ("Secret",))], NOW)
    inspector = QueueInspector(storage)
    first = inspector.jobs("ready", limit=3)
    assert [j.id for j in first.jobs] == ids[::-1][:3] and first.next_after == str(ids[-3])
    second = inspector.jobs("ready", after=first.next_after, limit=3)
    assert [j.id for j in second.jobs] == ids[::-1][3:6]
    last = inspector.jobs("ready", after=second.next_after, limit=3)
    assert [j.id for j in last.jobs] == ids[1::-1] and last.next_after is None
    assert [j.id for j in inspector.jobs("ready", JobFilter(class_name="OtherJob")).jobs] == [ids[-1]]
    assert [j.id for j in inspector.jobs("ready", JobFilter(queue="mail")).jobs] == [ids[-1]]
    assert [j.id for j in inspector.jobs("ready", JobFilter(search="secret")).jobs] == [ids[-1]]
    assert inspector.jobs("ready", JobFilter(search="100%_")).jobs == []  # LIKE's wildcards are literal
    assert inspector.count("ready") == Count(8)
    assert inspector.count("ready", JobFilter(class_name="MailJob")) == Count(7)
    assert inspector.class_names() == ["MailJob", "OtherJob"]
    assert [(q.name, q.size, q.paused) for q in inspector.queues()] == [("default", Count(7), False),
                                                                        ("mail", Count(1), False)]


def test_counts_stop_at_the_cap_and_say_so(storage: QueueStorage) -> None:
    storage.enqueue([job(args=(i,)) for i in range(12)], NOW)
    inspector = QueueInspector(storage, count_cap=10)
    assert inspector.count("ready") == Count(10, capped=True)
    assert str(inspector.count("ready")) == "10+"
    assert inspector.count("ready", JobFilter(queue="default")).capped
    assert inspector.counts()["failed"] == Count(0)


def test_job_detail_in_each_state_with_the_error_and_backtrace(storage: QueueStorage) -> None:
    ready, failing = storage.enqueue([job(), job("BadJob")], NOW)
    [scheduled] = storage.enqueue([job(scheduled_at=NOW + 3600)], NOW)
    inspector = QueueInspector(storage)
    assert inspector.job(ready).state == "ready"
    assert inspector.job(scheduled).state == "scheduled"
    pid = storage.register_process("worker", "worker-1", NOW)
    claimed = storage.claim(pid, ["*"], 2, NOW)
    assert {c.id for c in claimed} == {ready, failing}
    detail = inspector.job(ready)
    assert detail.state == "claimed" and detail.process["name"] == "worker-1"
    storage.fail(failing, pid, {"exception_class": "ValueError", "message": "<b>bad</b>",
                                "backtrace": ["a.py:1", "b.py:2"]}, NOW + 1)
    failed = inspector.job(failing)
    assert failed.state == "failed" and failed.failed_at == NOW + 1
    assert failed.error["message"] == "<b>bad</b>" and failed.error["backtrace"] == ["a.py:1", "b.py:2"]
    storage.finish([ready], pid, NOW + 2)
    assert inspector.job(ready).state == "finished"
    assert inspector.job(999_999) is None
    assert [j.id for j in inspector.jobs("failed").jobs] == [failing]
    assert inspector.jobs("failed").jobs[0].error["exception_class"] == "ValueError"
    assert [j.id for j in inspector.jobs("finished").jobs] == [ready]
    assert inspector.jobs("finished", JobFilter(since=NOW + 3)).jobs == []
    assert inspector.jobs("finished", JobFilter(since=NOW + 1, until=NOW + 3)).jobs[0].id == ready


def test_processes_with_their_running_jobs_and_stale_heartbeats(storage: QueueStorage) -> None:
    [job_id] = storage.enqueue([job()], NOW)
    fresh = storage.register_process("worker", "w-fresh", NOW)
    storage.register_process("dispatcher", "d-old", NOW - 1000)
    storage.claim(fresh, ["*"], 1, NOW)
    processes = {p.name: p for p in QueueInspector(storage).processes(now=NOW + 10)}
    assert [r["id"] for r in processes["w-fresh"].running] == [job_id] and not processes["w-fresh"].stale
    assert processes["d-old"].stale and processes["d-old"].running == []
    assert QueueInspector(storage).process_counts() == {"worker": 1, "dispatcher": 1}


def test_retry_and_discard_failed_one_a_selection_or_all_matching(storage: QueueStorage) -> None:
    ids = storage.enqueue([job(args=(i,)) for i in range(4)] + [job("OtherJob")], NOW)
    fail(storage, ids)
    actions, inspector = JobActions(storage), QueueInspector(storage)
    assert inspector.count("failed") == Count(5)
    assert actions.retry([ids[0]]) == 1
    assert actions.retry([ids[0]]) == 0  # no longer failed: skipped, not retried twice
    assert inspector.job(ids[0]).state == "ready"
    assert actions.discard("failed", [ids[1], ids[2]]) == 2
    assert inspector.job(ids[1]) is None
    assert actions.retry(None, JobFilter(class_name="OtherJob")) == 1
    assert actions.discard("failed", None) == 1
    assert inspector.count("failed") == Count(0)


def test_scheduled_run_now_and_discard_blocked_run_now_ready_discard(storage: QueueStorage) -> None:
    s1, s2, s3 = storage.enqueue([job(args=(i,), scheduled_at=NOW + 600) for i in range(3)], NOW)
    actions, inspector = JobActions(storage), QueueInspector(storage)
    assert actions.run_now("scheduled", [s1]) == 1
    assert inspector.job(s1).state == "ready"
    assert actions.discard("scheduled", [s2, s1]) == 1  # s1 is ready now: not touched as scheduled
    assert inspector.job(s2) is None and inspector.job(s1).state == "ready"
    assert actions.run_now("scheduled", None) == 1 and inspector.job(s3).state == "ready"
    limited = dict(concurrency_key="k", concurrency_limit=1, concurrency_duration=60.0)
    first, second = storage.enqueue([job("LimitedJob", args=(1,), **limited), job("LimitedJob", args=(2,), **limited)],
                                    NOW)
    assert inspector.job(second).state == "blocked"
    assert inspector.jobs("blocked").jobs[0].detail == "k"
    assert actions.run_now("blocked", [second]) == 1
    assert inspector.job(second).state == "ready"
    assert actions.discard("ready", None, JobFilter(class_name="MailJob")) == 2
    assert inspector.count("ready") == Count(2)
    with pytest.raises(ValueError, match="not an action on finished"):
        actions.perform("retry", "finished", [first])


def test_finished_jobs_page_by_finishing_time_then_id(storage: QueueStorage) -> None:
    ids = storage.enqueue([job(args=(i,)) for i in range(5)], NOW)
    storage.claim(None, ["*"], 5, NOW)
    storage.finish([ids[0], ids[3]], None, NOW + 10)  # a tie: ordered by id within it
    storage.finish([ids[1]], None, NOW + 30)
    storage.finish([ids[2], ids[4]], None, NOW + 20)
    inspector = QueueInspector(storage)
    seen, after = [], None
    while True:
        page = inspector.jobs("finished", after=after, limit=2)
        seen += [j.id for j in page.jobs]
        if page.next_after is None:
            break
        after = page.next_after
    assert seen == [ids[1], ids[4], ids[2], ids[3], ids[0]]
    with pytest.raises(ValueError, match="not a page cursor"):
        inspector.jobs("finished", after="x:y")


def test_a_search_reads_a_bounded_window_per_page_and_goes_on_below_it(storage: QueueStorage) -> None:
    ids = storage.enqueue([job(args=("needle" if i in (1, 7) else f"hay{i}",)) for i in range(10)], NOW)
    inspector = QueueInspector(storage, search_window=3)
    needle = JobFilter(search="NEEDLE")
    found, after, pages = [], None, 0
    while True:
        page = inspector.jobs("ready", needle, after=after, limit=5)
        found += [j.id for j in page.jobs]
        pages += 1
        if page.next_after is None:
            break
        after = page.next_after
    assert found == [ids[7], ids[1]] and pages == 4  # 10 jobs read 3 (then 4 left) at a time
    assert inspector.count("ready", needle) == Count(1, capped=True)  # one in the newest window, maybe more
    assert [j.id for j in QueueInspector(storage).jobs("ready", needle).jobs] == [ids[7], ids[1]]
    assert QueueInspector(storage).count("ready", needle) == Count(2)
    # The same over finished jobs, by finishing time.
    storage.claim(None, ["*"], 10, NOW)
    storage.finish(ids, None, NOW + 1)
    found, after = [], None
    while True:
        page = inspector.jobs("finished", needle, after=after, limit=5)
        found += [j.id for j in page.jobs]
        if page.next_after is None:
            break
        after = page.next_after
    assert found == [ids[7], ids[1]]
    assert list(inspector.job_ids("finished", needle, batch=5)) == [[ids[7]], [ids[1]]]
