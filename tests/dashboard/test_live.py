"""Live updates over the dashboard's own Action Cable endpoint: a subscriber hears counts and queues change."""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.testclient import TestClient

from solidstack.dashboard import dashboard_app
from solidstack.queue.rows import NewJob
from solidstack.queue.storage import QueueStorage

IDENTIFIER = json.dumps({"channel": "SolidstackDashboardChannel", "db": "default"})


def next_message(ws: Any) -> dict[str, Any]:
    while True:
        frame = json.loads(ws.receive_text())
        if frame.get("type") == "ping":
            continue
        return frame


def test_a_subscriber_hears_counts_queues_and_the_chart_change(storage: QueueStorage) -> None:
    with TestClient(dashboard_app(storage, allow_unauthenticated=True)) as client, \
            client.websocket_connect("/cable", subprotocols=["actioncable-v1-json"]) as ws:
        assert next_message(ws) == {"type": "welcome"}
        ws.send_text(json.dumps({"command": "subscribe", "identifier": IDENTIFIER}))
        assert next_message(ws)["type"] == "confirm_subscription"
        first = next_message(ws)["message"]  # the snapshot at subscription
        assert first["counts"]["ready"] == 0 and first["queues"] == []
        storage.enqueue([NewJob("mailers", "MailJob", '{"args":[],"kwargs":{}}', 0, "aj")], time.time() - 5)
        update = next_message(ws)["message"]
        assert update["counts"]["ready"] == 1 and update["counts_text"]["ready"] == "1"
        assert update["queues"][0]["name"] == "mailers" and update["queues"][0]["latency"] >= 5
        assert len(update["chart"]["minutes"]) == 60
        # The chart's latency is enqueue-to-start of finished jobs: none yet.
        assert update["chart"]["latency"] == {}


def test_an_unknown_database_is_rejected(storage: QueueStorage) -> None:
    with TestClient(dashboard_app(storage, allow_unauthenticated=True)) as client, \
            client.websocket_connect("/cable", subprotocols=["actioncable-v1-json"]) as ws:
        assert next_message(ws) == {"type": "welcome"}
        identifier = json.dumps({"channel": "SolidstackDashboardChannel", "db": "other"})
        ws.send_text(json.dumps({"command": "subscribe", "identifier": identifier}))
        assert next_message(ws) == {"identifier": identifier, "type": "reject_subscription"}


def test_the_chart_counts_jobs_finished_per_minute(storage: QueueStorage) -> None:
    from solidstack.dashboard.live import LiveUpdates
    from solidstack.dashboard.sources import QueueDatabase

    now = time.time()
    ids = storage.enqueue([NewJob("mailers", "MailJob", '{"args":[],"kwargs":{}}', 0, f"aj{i}") for i in range(6)], now)
    storage.claim(None, ["*"], 6, now)
    storage.finish(ids[:3], None, now - 120)
    storage.finish(ids[3:], None, now)

    class Fake:
        databases: dict[str, Any] = {}

    snapshot = LiveUpdates(Fake()).snapshot(QueueDatabase("default", storage, count_cap=100), now)
    series = snapshot["chart"]["throughput"]["mailers"]
    assert series[-1] == round(3 / 60, 3) and series[-3] == round(3 / 60, 3) and sum(series) == round(6 / 60, 3)


def test_the_chart_draws_enqueue_to_start_latency_of_the_jobs_finished_each_minute(storage: QueueStorage) -> None:
    from solidstack.dashboard.live import LiveUpdates
    from solidstack.dashboard.sources import QueueDatabase

    now = time.time()
    minute = now - now % 60
    waited = storage.enqueue([NewJob("mailers", "MailJob", '{"args":[],"kwargs":{}}', 0, f"w{i}")
                              for i in range(2)], minute - 200)
    storage.claim(None, ["mailers"], 1, minute - 190)  # waited 10 s, finished two minutes ago
    storage.finish(waited[:1], None, minute - 110)
    storage.claim(None, ["mailers"], 1, minute - 170)  # waited 30 s, finished in the same minute
    storage.finish(waited[1:], None, minute - 100)
    [scheduled] = storage.enqueue([NewJob("reports", "Report", '{"args":[],"kwargs":{}}', 0, "s", minute - 50)],
                                  minute - 300)
    storage.dispatch_due(minute - 50, 10)
    storage.claim(None, ["reports"], 1, minute - 46)  # due 4 s before it started: not its 254 s since enqueue
    storage.finish([scheduled], None, minute + 1)

    class Fake:
        databases: dict[str, Any] = {}

    chart = LiveUpdates(Fake()).snapshot(QueueDatabase("default", storage, count_cap=100), minute + 2)["chart"]
    assert chart["latency"]["mailers"][-2] is None and chart["latency"]["mailers"][-3] == 20.0
    assert chart["latency_max"]["mailers"][-3] == 30.0
    assert chart["latency"]["reports"][-1] == 4.0 and chart["latency"]["reports"][:-1] == [None] * 59
