"""solidstack_asgi: the cable endpoint and the jobs dashboard mounted in Django's ASGI application, driven through
that application (Django's handler wrapped) with real sessions, users and queue databases on both engines."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from solidstack.cable import Channel
from solidstack.cable.session import PROTOCOL

STREAM = "asgi_test_stream"


class WhoChannel(Channel):
    """Says who the connection is, then streams STREAM."""

    def subscribed(self) -> None:
        user = self.connection.current_user
        self.transmit({"user": None if user is None else user.get_username()})
        self.stream_from(STREAM)


class StaffOnlyChannel(Channel):
    def subscribed(self) -> None:
        user = self.connection.current_user
        if user is None or not user.is_staff:
            self.reject()


@pytest.fixture(scope="module", autouse=True)
def _django_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Django's own tables (users, sessions) in a test database file, for the whole module."""
    from django.conf import settings
    from django.db import connection
    from django.test.utils import setup_test_environment, teardown_test_environment

    from solidstack.django.conf import configure_from_settings

    folder = tmp_path_factory.mktemp("asgi-db")
    base_dir, old_name = settings.BASE_DIR, connection.settings_dict["NAME"]
    old_test = dict(connection.settings_dict.get("TEST") or {})
    settings.BASE_DIR = folder
    configure_from_settings()
    connection.settings_dict["TEST"] = {**old_test, "NAME": str(folder / "default.sqlite3")}
    setup_test_environment()  # ALLOWED_HOSTS gets "testserver"
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    yield
    connection.creation.destroy_test_db(old_name, verbosity=0)
    connection.settings_dict["TEST"] = old_test
    teardown_test_environment()
    settings.BASE_DIR = base_dir


def _user(name: str, *, staff: bool) -> Any:
    from django.contrib.auth.models import User

    user, _ = User.objects.get_or_create(username=name, defaults={"is_staff": staff})
    user.is_staff = staff
    user.set_password("pw")
    user.save()
    return user


def _session_cookie(user: Any) -> dict[str, str]:
    """The session cookie of ``user`` signed in (Django's test client writes the session as login would)."""
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    return {settings.SESSION_COOKIE_NAME: client.cookies[settings.SESSION_COOKIE_NAME].value}


def _application(**options: Any) -> Any:
    from django.core.asgi import get_asgi_application

    from solidstack.django.asgi import solidstack_asgi

    return solidstack_asgi(get_asgi_application(), **options)


def _frame(ws: Any, wanted: str | None = None, timeout: float = 10.0) -> dict[str, Any]:
    """The next frame that is not a ping (of ``type`` wanted, when given)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = json.loads(ws.receive_text())
        if frame.get("type") == "ping":
            continue
        if wanted is None or frame.get("type") == wanted:
            return frame
    raise AssertionError(f"no {wanted or 'frame'} within {timeout} s")


def _subscribe(ws: Any, channel: str) -> str:
    identifier = json.dumps({"channel": channel})
    ws.send_text(json.dumps({"command": "subscribe", "identifier": identifier}))
    return identifier


# -- routing --------------------------------------------------------------------------------------------------


def test_other_requests_reach_django_unchanged(project: Path) -> None:
    with TestClient(_application(channels=[WhoChannel])) as client:
        response = client.get("/hello")
        assert response.status_code == 200
        assert response.text == "Hello from Django (/hello)"
        assert client.get("/jobsx").status_code == 404  # Django's 404: not a path below /jobs/
        assert client.get("/cable").status_code == 426  # the cable endpoint speaks WebSocket only
        redirect = client.get("/jobs", follow_redirects=False)
        assert redirect.status_code == 307 and redirect.headers["location"].endswith("/jobs/")


def test_parts_can_be_left_out_and_bad_arguments_are_named(project: Path) -> None:
    with TestClient(_application(cable_path=None, dashboard_path=None)) as client:
        assert client.get("/cable").status_code == 404
        assert client.get("/jobs/").status_code == 404
    with pytest.raises(ImproperlyConfigured, match=r"not a solidstack\.cable\.Channel subclass"):
        _application(channels=["djproject.urls.hello"])
    with pytest.raises(ImproperlyConfigured, match=r"dashboard_path='/'"):
        _application(dashboard_path="/")
    with pytest.raises(ImproperlyConfigured, match="both '/x'"):
        _application(cable_path="/x", dashboard_path="/x/")


# -- the cable endpoint ---------------------------------------------------------------------------------------


def test_cable_identifies_the_django_user_and_delivers_broadcasts(project: Path) -> None:
    from solidstack.cable import broadcast

    cookies = _session_cookie(_user("ada", staff=False))
    app = _application(channels=["test_asgi.WhoChannel"])
    with TestClient(app, cookies=cookies) as client, client.websocket_connect("/cable", subprotocols=[PROTOCOL]) as ws:
        assert ws.accepted_subprotocol == PROTOCOL
        assert _frame(ws)["type"] == "welcome"
        identifier = _subscribe(ws, "WhoChannel")
        frames = [_frame(ws), _frame(ws)]
        assert {"identifier": identifier, "type": "confirm_subscription"} in frames
        assert {"identifier": identifier, "message": {"user": "ada"}} in frames
        broadcast(STREAM, {"text": "through the cable database"})
        assert _frame(ws) == {"identifier": identifier, "message": {"text": "through the cable database"}}


def test_cable_anonymous_socket_and_a_channel_that_refuses_it(project: Path) -> None:
    app = _application(channels=[WhoChannel, StaffOnlyChannel])
    with TestClient(app) as client, client.websocket_connect("/cable", subprotocols=[PROTOCOL]) as ws:
        _frame(ws, "welcome")
        who = _subscribe(ws, "WhoChannel")
        frames = [_frame(ws), _frame(ws)]
        assert {"identifier": who, "message": {"user": None}} in frames
        staff = _subscribe(ws, "StaffOnlyChannel")
        assert _frame(ws) == {"identifier": staff, "type": "reject_subscription"}
    cookies = _session_cookie(_user("grace", staff=True))
    app = _application(channels=[StaffOnlyChannel])
    with TestClient(app, cookies=cookies) as client, client.websocket_connect("/cable", subprotocols=[PROTOCOL]) as ws:
        _frame(ws, "welcome")
        staff = _subscribe(ws, "StaffOnlyChannel")
        assert _frame(ws) == {"identifier": staff, "type": "confirm_subscription"}


def test_cable_refuses_another_sites_origin(project: Path) -> None:
    with TestClient(_application(channels=[WhoChannel])) as client:
        with client.websocket_connect("/cable", headers={"origin": "http://testserver"}) as ws:
            assert _frame(ws)["type"] == "welcome"  # the page's own host
        with (pytest.raises(WebSocketDisconnect) as refused,
              client.websocket_connect("/cable", headers={"origin": "http://evil.example"}) as ws):
            ws.receive_text()
        assert refused.value.code == 1008


def test_hosts_outside_allowed_hosts_are_refused(project: Path) -> None:
    """As Django refuses them: the cable's same-origin test trusts Host, which DNS rebinding would control."""
    with TestClient(_application(channels=[WhoChannel]), base_url="http://evil.example") as client:
        assert client.get("/jobs/default/").status_code == 400
        # Origin and Host agree (the cable's own check would pass): the host check refuses it.
        headers = {"host": "evil.example", "origin": "http://evil.example"}
        with (pytest.raises(WebSocketDisconnect) as refused,
              client.websocket_connect("/cable", headers=headers) as ws):
            ws.receive_text()
        assert refused.value.code == 1008
    with TestClient(_application(channels=[WhoChannel])) as client:  # testserver: in ALLOWED_HOSTS
        assert client.get("/cable").status_code == 426


def test_turbo_stream_names_signed_with_django_secret(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from solidstack.cable import broadcast, sign_stream_name
    from solidstack.cable.turbo import set_secret

    for var in ("SECRET_KEY_BASE", "SOLIDSTACK_SECRET_KEY_BASE"):
        monkeypatch.delenv(var, raising=False)
    app = _application()
    try:
        signed = sign_stream_name("room", 1)
        with TestClient(app) as client, client.websocket_connect("/cable", subprotocols=[PROTOCOL]) as ws:
            _frame(ws, "welcome")
            identifier = json.dumps({"channel": "Turbo::StreamsChannel", "signed_stream_name": signed})
            ws.send_text(json.dumps({"command": "subscribe", "identifier": identifier}))
            assert _frame(ws)["type"] == "confirm_subscription"
            broadcast("room:1", "<turbo-stream action='append' target='x'></turbo-stream>")
            assert "turbo-stream" in _frame(ws)["message"]
            forged = json.dumps({"channel": "Turbo::StreamsChannel", "signed_stream_name": signed[:-2] + "00"})
            ws.send_text(json.dumps({"command": "subscribe", "identifier": forged}))
            assert _frame(ws)["type"] == "reject_subscription"
    finally:
        set_secret(None)


# -- the dashboard ----------------------------------------------------------------------------------------------


def _token(html: str) -> str:
    match = re.search(r'name="authenticity_token" value="([^"]+)"', html)
    assert match, "no CSRF field in the page"
    return match.group(1)


def test_dashboard_is_for_staff_users_only(project: Path) -> None:
    app = _application()
    with TestClient(app) as client:
        refused = client.get("/jobs/default/")
        assert refused.status_code == 403 and "not allowed" in refused.text
        with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect("/jobs/cable") as ws:
            ws.receive_text()
        assert closed.value.code == 1008
    with TestClient(app, cookies=_session_cookie(_user("bob", staff=False))) as client:
        assert client.get("/jobs/default/").status_code == 403
    inactive = _user("old", staff=True)
    cookies = _session_cookie(inactive)
    inactive.is_active = False
    inactive.save()
    with TestClient(app, cookies=cookies) as client:
        assert client.get("/jobs/default/").status_code == 403


def test_dashboard_page_and_a_csrf_checked_action_through_django_asgi(project: Path) -> None:
    from djproject.tasks import noop

    from solidstack.queue import Queue

    noop.enqueue(1)
    with TestClient(_application(), cookies=_session_cookie(_user("grace", staff=True))) as client:
        page = client.get("/jobs/")  # the dashboard's root: on to its first database
        assert page.status_code == 200
        assert page.url.path == "/jobs/default/"
        assert "/jobs/static/dashboard.js" in page.text  # its links and assets under the mount
        token = _token(page.text)
        without = client.post("/jobs/default/queues/pause", data={"queue": "default"}, follow_redirects=False)
        assert without.status_code == 403
        assert not Queue("default").paused
        wrong = client.post("/jobs/default/queues/pause", data={"queue": "default", "authenticity_token": "x" * 43},
                            follow_redirects=False)
        assert wrong.status_code == 403
        done = client.post("/jobs/default/queues/pause", data={"queue": "default", "authenticity_token": token},
                           follow_redirects=False)
        assert done.status_code == 303 and "/jobs/default/" in done.headers["location"]
        assert Queue("default").paused
        with client.websocket_connect("/jobs/cable", subprotocols=[PROTOCOL]) as ws:  # its live socket
            assert _frame(ws)["type"] == "welcome"


def test_dashboard_with_the_environments_basic_credentials(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOLIDSTACK_DASHBOARD_USERNAME", "ops")
    monkeypatch.setenv("SOLIDSTACK_DASHBOARD_PASSWORD", "s3cret")
    with TestClient(_application(dashboard_authorize=None)) as client:
        assert client.get("/jobs/default/").status_code == 401
        basic = "Basic " + base64.b64encode(b"ops:s3cret").decode()
        assert client.get("/jobs/default/", headers={"authorization": basic}).status_code == 200
