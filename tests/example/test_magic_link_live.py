"""The app as bin/dev runs it, driven over HTTP and WebSocket from outside: cable, and a flood of requests."""

from __future__ import annotations

import json
import re
import threading
from typing import Any

import httpx2
import pytest
from magic_link_helpers import Running, use_app, wait_for
from websockets.sync.client import connect

INBOX = json.dumps({"channel": "InboxChannel"})


def session_with_link(url: str, email: str) -> str:
    """Ask for a link as a browser would; returns the session cookie header."""
    with httpx2.Client(base_url=url, follow_redirects=False, timeout=10) as client:
        token = re.search(r'name="authenticity_token" value="([^"]+)"', client.get("/").text)
        assert token
        response = client.post("/magic_links", data={"email": email, "authenticity_token": token.group(1)})
        assert response.status_code == 303, response.text
        return "; ".join(f"{k}={v}" for k, v in client.cookies.items())


def frames(ws: Any) -> Any:
    while True:
        frame = json.loads(ws.recv(timeout=10))
        if frame.get("type") != "ping":
            yield frame


def cable(url: str, cookies: str = "") -> Any:
    headers = {"Cookie": cookies} if cookies else {}
    return connect(url.replace("http://", "ws://") + "/cable", subprotocols=["actioncable-v1-json"],
                   additional_headers=headers, open_timeout=10)


def test_a_cable_broadcast_reaches_the_subscribed_page(live_app: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    """The seed's "ActionCable works over Solid Cable": a broadcast from another process reaches the client."""
    use_app(live_app.root, "development", monkeypatch)
    from app.models import MagicLink
    from app.models.magic_link import primary

    from solidstack.cable import broadcast

    cookie = session_with_link(live_app.url, "cable@example.com")
    with cable(live_app.url, cookie) as ws:
        stream = frames(ws)
        assert next(stream) == {"type": "welcome"}
        ws.send(json.dumps({"command": "subscribe", "identifier": INBOX}))
        seen = []
        while not any(f.get("type") == "confirm_subscription" for f in seen) or \
                not any(f.get("message", {}).get("status") == "sent" for f in seen):
            seen.append(next(stream))  # the job's "sent" (it may come before or after the confirmation)
        # When the job finishes while the page subscribes, the channel's own "already sent" and the job's
        # broadcast both arrive: the same news twice, which the page shows once.
        sent = [f["message"] for f in seen if "message" in f]
        assert {(m["status"], m["email"]) for m in sent} == {("sent", "cable@example.com")}
        (row,) = primary().query(primary().statement("SELECT id FROM magic_links WHERE email = ?"),
                                 ("cable@example.com",))
        broadcast(MagicLink.stream_for(row["id"]), {"status": "hello from another process"})
        frame = next(stream)
        while frame.get("message", {}).get("status") == "sent":
            frame = next(stream)
        assert frame == {"identifier": INBOX, "message": {"status": "hello from another process"}}


def test_the_inbox_channel_needs_a_session_that_asked_for_a_link(live_app: Running) -> None:
    with cable(live_app.url) as ws:
        stream = frames(ws)
        assert next(stream) == {"type": "welcome"}
        ws.send(json.dumps({"command": "subscribe", "identifier": INBOX}))
        assert next(stream) == {"identifier": INBOX, "type": "reject_subscription"}


def test_a_flood_of_requests_gets_clear_answers_and_loses_nothing(live_app: Running,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    use_app(live_app.root, "development", monkeypatch)
    from app.models.magic_link import primary

    from solidstack.cache import cache
    from solidstack.queue import queue_storage

    results: dict[str, int] = {}
    bodies: list[str] = []
    lock = threading.Lock()

    def visitor(n: int) -> None:
        with httpx2.Client(base_url=live_app.url, follow_redirects=False, timeout=30) as client:
            token = re.search(r'name="authenticity_token" value="([^"]+)"', client.get("/").text)
            assert token
            for i in range(10):
                email = f"flood{n}-{i}@example.com"
                response = client.post("/magic_links", data={"email": email, "authenticity_token": token.group(1)})
                with lock:
                    results[email] = response.status_code
                    if response.status_code == 429:
                        bodies.append(response.text)

    try:
        threads = [threading.Thread(target=visitor, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        accepted = sorted(email for email, code in results.items() if code == 303)
        refused = [email for email, code in results.items() if code == 429]
        assert len(results) == 60 and len(accepted) + len(refused) == 60, results
        assert refused and len(accepted) <= 40  # RATE_LIMIT_PER_IP=40/600 for this server
        assert all("Too many sign-in links were asked for from your address" in body for body in bodies)
        # Every accepted request has its link and its email; refused ones have neither.
        rows = primary().query("SELECT email FROM magic_links WHERE email LIKE 'flood%%' ORDER BY email")
        assert [row["email"] for row in rows] == accepted
        mailbox = live_app.root / "storage" / "mailbox"
        assert wait_for(lambda: all(any(e in p.read_text() for p in mailbox.glob("*.eml")) for e in accepted), 30)
        assert queue_storage().counts()["failed"] == 0
        assert httpx2.get(f"{live_app.url}/up").text == "ok"
    finally:
        cache.delete("rate-limit:ip:127.0.0.1")  # later tests ask for links from this address too


def test_sign_out_closes_that_sessions_sockets_and_a_copied_cookie_is_anonymous(
        live_app: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    """Over the real server: a cable socket of a signed-in session is identified by its ``sessions`` row."""
    use_app(live_app.root, "development", monkeypatch)
    from app.models import MagicLink

    email = "sockets@example.com"

    def signed_in() -> tuple[httpx2.Client, str]:
        client = httpx2.Client(base_url=live_app.url, follow_redirects=False, timeout=10)
        link = MagicLink.create(email)
        page = client.get(f"/session/{link.token}")
        token = re.search(r'name="authenticity_token" value="([^"]+)"', page.text)
        assert page.status_code == 200 and token
        assert client.post(f"/session/{link.token}", data={"authenticity_token": token.group(1)}).status_code == 303
        return client, "; ".join(f"{k}={v}" for k, v in client.cookies.items())

    def sign_out(client: httpx2.Client) -> None:
        token = re.search(r'name="authenticity_token" value="([^"]+)"', client.get("/").text)
        assert token and client.post("/sign_out", data={"authenticity_token": token.group(1)}).status_code == 303

    first, copied = signed_in()
    with cable(live_app.url, copied) as ws:
        stream = frames(ws)
        assert next(stream) == {"type": "welcome"}
        sign_out(first)  # this session's sockets are told to go
        assert next(stream) == {"type": "disconnect", "reason": "remote", "reconnect": True}
    second, live_cookie = signed_in()  # the same user, a new session
    with cable(live_app.url, copied) as stale, cable(live_app.url, live_cookie) as live:
        assert next(frames(stale)) == {"type": "welcome"} and next(frames(live)) == {"type": "welcome"}
        sign_out(second)
        assert next(frames(live)) == {"type": "disconnect", "reason": "remote", "reconnect": True}
        # The copy's socket was anonymous: the same broadcast, already delivered to the live one, is not for it.
        with pytest.raises(TimeoutError):
            while True:
                frame = json.loads(stale.recv(timeout=1))
                assert frame.get("type") == "ping", frame
    first.close()
    second.close()
