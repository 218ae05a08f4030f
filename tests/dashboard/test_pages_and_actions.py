"""Every page and every action of the dashboard, over HTTP, against real databases (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import re
import time

from starlette.testclient import TestClient

from solidstack.dashboard import dashboard_app
from solidstack.queue.admin.inspect import QueueInspector
from solidstack.queue.admin.queues import paused_queues
from solidstack.queue.rows import NewJob
from solidstack.queue.storage import QueueStorage

from .conftest import AUTH, flash, post

NOW = time.time()


def job(cls: str = "MailJob", queue: str = "default", i: int = 0, **kw: object) -> NewJob:
    return NewJob(queue, cls, json.dumps({"args": [i], "kwargs": {}}), 0, f"aj-{cls}-{i}", **kw)  # type: ignore[arg-type]


def failed(storage: QueueStorage, jobs: list[NewJob]) -> list[int]:
    ids = storage.enqueue(jobs, NOW)
    for row in storage.claim(None, ["*"], len(ids), NOW):
        storage.fail(row.id, None, {"exception_class": "RuntimeError", "message": f"boom {row.id}",
                                    "backtrace": [f"jobs.py:{row.id} in perform", "lib.py:7 in helper"]}, NOW)
    return ids


def ids_on(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr data-job="(\d+)">', html)]


def test_every_page_answers(client: TestClient, storage: QueueStorage) -> None:
    [job_id] = failed(storage, [job()])
    for path in ("/default/", *(f"/default/jobs/{s}" for s in ("ready", "scheduled", "claimed", "blocked", "failed",
                                                                 "finished")),
                 f"/default/job/{job_id}", "/default/processes", "/default/recurring", "/default/stats",
                 "/default/queues/clear?queue=default", "/default/live.json", "/metrics"):
        assert client.get(path).status_code == 200, path
    assert client.get("/default/job/987654").status_code == 404
    assert client.get("/default/jobs/bogus").status_code == 404
    assert client.get("/nosuchdb/").status_code == 404


def test_failed_job_detail_shows_the_backtrace_and_retry_reports_how_many(client: TestClient,
                                                                          storage: QueueStorage) -> None:
    ids = failed(storage, [job(i=i) for i in range(3)] + [job("OtherJob", i=9)])
    page = client.get(f"/default/job/{ids[0]}").text
    assert f"jobs.py:{ids[0]} in perform" in page and "lib.py:7 in helper" in page and "RuntimeError" in page
    assert flash(client, post(client, "/default/jobs/failed/retry", {"ids": [ids[0]]})) == "Retried 1 job."
    # A job that left the state since the page was drawn is not touched, and the notice says so.
    notice = flash(client, post(client, "/default/jobs/failed/retry", {"ids": [ids[0], ids[1]]}))
    assert notice == "Retried 1 job. 1 job had left the failed state and were not touched."
    inspector = QueueInspector(storage)
    assert inspector.job(ids[0]).state == "ready" and inspector.job(ids[1]).state == "ready"
    notice = flash(client, post(client, "/default/jobs/failed/discard",
                                {"scope": "all", "class_name": "OtherJob"}))
    assert notice == "Discarded 1 job." and inspector.job(ids[3]) is None
    assert flash(client, post(client, "/default/jobs/failed/retry", {"scope": "all"})) == "Retried 1 job."
    assert inspector.count("failed").value == 0
    assert flash(client, post(client, "/default/jobs/failed/retry", {})).startswith("Select jobs first")


def test_scheduled_blocked_and_ready_actions(client: TestClient, storage: QueueStorage) -> None:
    s1, s2 = storage.enqueue([job(i=1, scheduled_at=NOW + 3600), job(i=2, scheduled_at=NOW + 3600)], NOW)
    limited = {"concurrency_key": "k", "concurrency_limit": 1, "concurrency_duration": 60.0}
    _, blocked = storage.enqueue([job("LimitedJob", i=3, **limited), job("LimitedJob", i=4, **limited)], NOW)
    inspector = QueueInspector(storage)
    assert ids_on(client.get("/default/jobs/scheduled").text) == [s2, s1]
    assert flash(client, post(client, "/default/jobs/scheduled/run_now", {"ids": [s1]})) == "Moved to ready 1 job."
    assert flash(client, post(client, "/default/jobs/scheduled/discard", {"ids": [s2]})) == "Discarded 1 job."
    assert inspector.job(s1).state == "ready" and inspector.job(s2) is None
    assert "<code>k</code>" in client.get("/default/jobs/blocked").text  # the concurrency key
    assert flash(client, post(client, "/default/jobs/blocked/run_now", {"ids": [blocked]})) == "Moved to ready 1 job."
    assert inspector.job(blocked).state == "ready"
    notice = flash(client, post(client, "/default/jobs/ready/discard", {"scope": "all", "class_name": "MailJob"}))
    assert notice == "Discarded 1 job."
    # Actions a state does not have are refused.
    assert post(client, "/default/jobs/finished/retry", {"ids": [s1]}).status_code == 400
    assert post(client, "/default/jobs/ready/retry", {"ids": [s1]}).status_code == 400


def test_pause_resume_and_clear_with_confirmation(client: TestClient, storage: QueueStorage) -> None:
    storage.enqueue([job(queue="mailers", i=i) for i in range(3)], NOW)
    page = client.get("/default/").text
    assert 'data-queue="mailers"' in page
    notice = flash(client, post(client, "/default/queues/pause", {"queue": "mailers"}))
    assert notice.startswith("Paused queue mailers") and paused_queues(storage) == ["mailers"]
    assert "paused" in client.get("/default/").text
    assert flash(client, post(client, "/default/queues/resume", {"queue": "mailers"})) == "Resumed queue mailers."
    assert paused_queues(storage) == []
    confirm = client.get("/default/queues/clear?queue=mailers").text
    assert "<strong>3</strong>" in confirm and 'name="confirm"' in confirm
    assert post(client, "/default/queues/clear", {"queue": "mailers"}).status_code == 400  # not confirmed
    assert QueueInspector(storage).count("ready").value == 3
    notice = flash(client, post(client, "/default/queues/clear", {"queue": "mailers", "confirm": "mailers"}))
    assert notice == "Cleared queue mailers: deleted 3 jobs that were ready."


def test_lists_page_by_keyset_with_filters_carried(storage: QueueStorage) -> None:
    ids = storage.enqueue([job(i=i) for i in range(5)] + [job("OtherJob", i=5)], NOW)
    app = dashboard_app(storage, username="ops", password="s3cret", page_size=2)
    with TestClient(app, headers=AUTH) as client:
        first = client.get("/default/jobs/ready?class_name=MailJob").text
        assert ids_on(first) == [ids[4], ids[3]]
        older = re.search(r'id="next-page" href="([^"]+)"', first).group(1).replace("&amp;", "&")
        assert "class_name=MailJob" in older and f"after={ids[3]}" in older and "offset" not in older
        second = client.get(older).text
        assert ids_on(second) == [ids[2], ids[1]]
        assert ids_on(client.get("/default/jobs/ready?search=5").text) == [ids[5]]
        assert "5 " in client.get("/default/jobs/ready?class_name=MailJob").text  # the matching count


def test_counts_are_capped_and_say_so(storage: QueueStorage) -> None:
    storage.enqueue([job(i=i) for i in range(12)], NOW)
    app = dashboard_app(storage, allow_unauthenticated=True, count_cap=10)
    with TestClient(app) as client:
        assert 'data-count="ready">10+</span>' in client.get("/default/").text


def test_processes_show_running_jobs_and_stale_heartbeats(client: TestClient, storage: QueueStorage) -> None:
    [job_id] = storage.enqueue([job()], NOW)
    worker = storage.register_process("worker", "worker-alive", time.time(), metadata={"queues": "*", "threads": 3})
    storage.register_process("dispatcher", "dispatcher-gone", time.time() - 3600)
    storage.claim(worker, ["*"], 1, NOW)
    html = client.get("/default/processes").text
    assert "worker-alive" in html and f"MailJob #{job_id}" in html
    stale_row = re.search(r'<tr class="stale"[^>]*>(.*?)</tr>', html, re.S).group(1)
    assert "dispatcher-gone" in stale_row and ">stale<" in stale_row


def test_recurring_tasks_with_last_and_next_run_and_run_now(client: TestClient, storage: QueueStorage) -> None:
    from solidstack.queue.processes.scheduler import RecurringStore
    from solidstack.queue.recurring import RecurringTask
    from solidstack.queue.recurring.schedule import parse_schedule

    task = RecurringTask(key="nightly_cleanup", schedule=parse_schedule("every day at 3am"),
                         command="solidstack.queue.retention.clear_finished_jobs", queue="maintenance")
    store = RecurringStore(storage)
    store.sync_static([task], NOW)
    job_id = store.enqueue_run(task, NOW - 60, NOW - 60)
    html = client.get("/default/recurring").text
    assert "nightly_cleanup" in html and "every day at 3am" in html and f"job #{job_id}" in html
    assert "0 3 * * *" in html and "command solidstack.queue.retention.clear_finished_jobs" in html
    notice = flash(client, post(client, "/default/recurring/run", {"key": "nightly_cleanup"}))
    assert notice.startswith("Enqueued a run of nightly_cleanup now (job ")
    assert QueueInspector(storage).count("ready").value == 2
    assert "No recurring task called" in flash(client, post(client, "/default/recurring/run", {"key": "nope"}))


def test_metrics_in_prometheus_text(client: TestClient, storage: QueueStorage) -> None:
    failed(storage, [job("BrokenJob")])
    storage.enqueue([job(queue="mailers", i=i) for i in range(2)], NOW - 30)
    pid = storage.register_process("worker", "w", NOW)
    [done] = storage.enqueue([job("DoneJob", queue="other")], NOW)
    storage.claim(pid, ["other"], 1, NOW)
    storage.finish([done], pid, time.time())  # within the last minute of the scrape
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'solidstack_queue_size{database="default",queue="mailers"} 2.0' in text
    assert re.search(r'solidstack_queue_latency_seconds\{database="default",queue="mailers"\} (\d+\.\d+)', text)
    assert 'solidstack_jobs_failed{class_name="BrokenJob",database="default"} 1.0' in text
    assert 'solidstack_jobs_finished_last_minute{class_name="DoneJob",database="default"} 1.0' in text
    assert 'solidstack_jobs{database="default",state="failed"} 1.0' in text
    assert 'solidstack_processes{database="default",kind="worker"} 1.0' in text


def test_several_queue_databases_from_a_menu(storage: QueueStorage, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from solidstack.db import SQLiteDatabase, migrate, package_migrations

    other_db = SQLiteDatabase(tmp_path / "billing_queue.sqlite3")
    migrate(other_db, package_migrations("solidstack.queue", "sqlite"))
    other = QueueStorage(other_db)
    other.enqueue([job("InvoiceJob", queue="billing")], NOW)
    storage.enqueue([job("MailJob", queue="mailers")], NOW)
    app = dashboard_app({"app": storage, "billing": other}, allow_unauthenticated=True)
    with TestClient(app) as client:
        page = client.get("/app/").text
        assert 'id="db-menu"' in page and "/billing/" in page and 'data-queue="mailers"' in page
        billing = client.get("/billing/").text
        assert 'data-queue="billing"' in billing and 'data-queue="mailers"' not in billing
        assert "InvoiceJob" in client.get("/billing/jobs/ready").text
        assert 'database="billing",queue="billing"' in client.get("/metrics").text
