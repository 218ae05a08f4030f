"""The dashboard is closed until configured, refuses forged forms, and never renders job data as markup."""

from __future__ import annotations

import base64
import json

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from solidstack.dashboard import dashboard_app
from solidstack.queue import Job
from solidstack.queue.storage import QueueStorage

from .conftest import AUTH, token

NOW = 1_700_000_000.0


def test_closed_until_configured_with_a_message_that_says_how(storage: QueueStorage) -> None:
    with TestClient(dashboard_app(storage)) as client:
        for path in ("/", "/default/", "/default/jobs/failed", "/metrics", "/static/dashboard.css"):
            response = client.get(path)
            assert response.status_code == 403, path
            assert "SOLIDSTACK_DASHBOARD_USERNAME" in response.text and "authorize=" in response.text
        assert client.post("/default/queues/pause", data={"queue": "q"}).status_code == 403
        with pytest.raises(WebSocketDisconnect), client.websocket_connect("/cable") as ws:
            ws.receive_text()


def test_basic_credentials_from_the_environment(storage: QueueStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOLIDSTACK_DASHBOARD_USERNAME", "ops")
    monkeypatch.setenv("SOLIDSTACK_DASHBOARD_PASSWORD", "s3cret")
    with TestClient(dashboard_app(storage)) as client:
        refused = client.get("/default/")
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Basic")
        wrong = {"Authorization": "Basic " + base64.b64encode(b"ops:nope").decode()}
        assert client.get("/default/", headers=wrong).status_code == 401
        assert client.get("/default/", headers={"Authorization": "Basic !!!"}).status_code == 401
        assert client.get("/default/", headers=AUTH).status_code == 200


def test_half_configured_basic_auth_is_an_error(storage: QueueStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOLIDSTACK_DASHBOARD_USERNAME", "ops")
    with pytest.raises(ValueError, match="SOLIDSTACK_DASHBOARD_PASSWORD"):
        dashboard_app(storage)


@pytest.mark.parametrize("asynchronous", [False, True])
def test_an_authorize_callable_decides_for_pages_and_the_cable(storage: QueueStorage, asynchronous: bool) -> None:
    def allowed(request) -> bool:  # type: ignore[no-untyped-def]
        return request.headers.get("x-user") == "admin"

    async def allowed_async(request) -> bool:  # type: ignore[no-untyped-def]
        return allowed(request)

    app = dashboard_app(storage, authorize=allowed_async if asynchronous else allowed)
    with TestClient(app) as client:
        assert client.get("/default/").status_code == 403
        assert client.get("/default/", headers={"x-user": "admin"}).status_code == 200
        with pytest.raises(WebSocketDisconnect), client.websocket_connect("/cable") as ws:
            ws.receive_text()
        with client.websocket_connect("/cable", headers={"x-user": "admin"}) as ws:
            assert json.loads(ws.receive_text()) == {"type": "welcome"}


def test_mounted_in_an_app_under_a_prefix(storage: QueueStorage) -> None:
    host = Starlette(routes=[Mount("/jobs", dashboard_app(storage, username="ops", password="s3cret"))])
    with TestClient(host, headers=AUTH, follow_redirects=False) as client:
        assert client.get("/jobs/").headers["location"].endswith("/jobs/default/")
        page = client.get("/jobs/default/")
        assert page.status_code == 200 and 'href="http://testserver/jobs/default/jobs/failed"' in page.text
        assert client.get("/jobs/static/dashboard.js").status_code == 200
        assert client.get("/jobs/static/vendor/actioncable.esm.js").status_code == 200


def test_every_action_needs_the_forms_token_and_this_sites_origin(client: TestClient) -> None:
    good = token(client)
    assert client.post("/default/queues/pause", data={"queue": "q"}).status_code == 403
    assert client.post("/default/queues/pause", data={"queue": "q", "authenticity_token": "x" * 43}).status_code == 403
    cross = client.post("/default/queues/pause", data={"queue": "q", "authenticity_token": good},
                        headers={"Origin": "https://evil.example"})
    assert cross.status_code == 403
    assert client.get("/default/queues/pause").status_code == 405  # actions are POST only
    assert client.post("/default/queues/pause", data={"queue": "q", "authenticity_token": good}).status_code == 303


class DashboardSecretJob(Job):
    def perform(self, email: str, reset_token: str, note: str = "") -> None:
        pass


def test_arguments_and_errors_are_escaped_and_secrets_redacted(client: TestClient, storage: QueueStorage) -> None:
    from solidstack.queue.rows import NewJob

    arguments = json.dumps({"args": ["<script>alert('args')</script>", "tok-123"],
                            "kwargs": {"password": "hunter2", "api_key": "k-9", "monkey": "visible"}})
    [job_id] = storage.enqueue([NewJob("default", "DashboardSecretJob", arguments, 0, "aj-1")], NOW)
    storage.claim(None, ["*"], 1, NOW)
    # An earlier attempt, retried: its error is on the job's page too (decision 0048).
    storage.retry_later(job_id, None, 1, NOW, NOW, error={
        "exception_class": "<i>Early</i>Error", "message": "<svg onload=alert('first')>",
        "backtrace": ["<u>first frame</u> app.py:9\n"]})
    storage.claim(None, ["*"], 1, NOW)
    storage.fail(job_id, None, {"exception_class": "ValueError", "message": "<img src=x onerror=alert('err')>",
                                "backtrace": ["<b>frame</b> app.py:1"]}, NOW)
    for path in ("/default/jobs/failed", f"/default/job/{job_id}"):
        html = client.get(path).text
        assert "<script>alert" not in html and "<img src=x" not in html and "<b>frame" not in html
        assert "&lt;script&gt;alert" in html and "&lt;img src=x onerror=alert" in html
        assert "hunter2" not in html and "k-9" not in html and "tok-123" not in html  # reset_token, by position
        assert "[REDACTED]" in html
    detail = client.get(f"/default/job/{job_id}").text
    assert "&lt;b&gt;frame&lt;/b&gt; app.py:1" in detail and "visible" in detail  # monkey is not a secret
    assert "<svg" not in detail and "<u>first" not in detail and "<i>Early" not in detail
    assert "&lt;svg onload=alert" in detail and "&lt;u&gt;first frame&lt;/u&gt; app.py:9" in detail
    assert "&lt;i&gt;Early&lt;/i&gt;Error" in detail and detail.count('class="attempt ') == 2


def test_redaction_is_configurable(storage: QueueStorage) -> None:
    from solidstack.queue.rows import NewJob

    [job_id] = storage.enqueue([NewJob("default", "AnyJob", json.dumps({"args": [], "kwargs": {
        "password": "hunter2", "pin": "1234"}}), 0, "aj")], NOW)
    app = dashboard_app(storage, allow_unauthenticated=True, redact=["pin"])
    with TestClient(app) as client:
        html = client.get(f"/default/job/{job_id}").text
        assert "hunter2" in html and "1234" not in html
