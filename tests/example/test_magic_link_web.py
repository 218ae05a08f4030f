"""The web app's pages in this process (Starlette's TestClient, test environment, real SQLite files).

Bad input gets a clear page and status, and loses nothing: invalid email, missing or wrong authenticity
token, replayed, expired and forged links, and floods from one address or for one email.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from solidstack.cable import broadcasts
from solidstack.queue import Worker, queue_storage


@pytest.fixture
def client(example: Path) -> Iterator[TestClient]:
    from app.web import create_app

    # One event loop (and one set of worker threads) for the whole test, rather than one per request.
    with TestClient(create_app(), follow_redirects=False) as client:
        yield client


def token_of(html: str) -> str:
    match = re.search(r'name="authenticity_token" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def ask(client: TestClient, email: str, token: str | None = None) -> object:
    token = token if token is not None else token_of(client.get("/").text)
    return client.post("/magic_links", data={"email": email, "authenticity_token": token})


def sign_in(client: TestClient, path: str) -> object:
    """Open the link (a confirmation page that leaves it unused), then press its button."""
    from app.models import MagicLink

    page = client.get(path)
    assert page.status_code == 200 and 'id="confirm-sign-in"' in page.text, page.text
    assert page.headers["cache-control"] == "no-store"
    assert MagicLink.find_by_token(path.rsplit("/", 1)[1]).used_at is None  # type: ignore[union-attr]
    return client.post(path, data={"authenticity_token": token_of(page.text)})


def run_jobs() -> int:
    storage = queue_storage()
    worker = Worker(storage)
    worker.process_id = storage.register_process("Worker", "w", time.time())
    worker.poll(time.time())
    worker.shutdown(10)
    return storage.counts()["finished"]


def link_in_mailbox(client: TestClient, email: str) -> str:
    page = client.get("/mailbox").text
    match = re.search(r'data-to="' + re.escape(email) + r'".*?href="http://[^/]+(/session/[^"]+)"', page, re.S)
    assert match, page
    return match.group(1)


def test_a_link_is_requested_sent_and_used(client: TestClient, example: Path) -> None:
    from app.models import MagicLink

    home = client.get("/")
    assert home.status_code == 200 and "Email me a sign-in link" in home.text
    response = ask(client, "  Ann@Example.COM ")
    assert response.status_code == 303 and response.headers["location"] == "/magic_links/sent"
    page = client.get("/magic_links/sent").text
    assert 'data-state="sending"' in page and "ann@example.com" in page
    assert '/static/inbox.js' in page and 'name="action-cable-url" content="/cable"' in page
    assert MagicLink.count() == 1 and queue_storage().counts()["ready"] == 1

    assert run_jobs() == 1
    assert 'data-state="sent"' in client.get("/magic_links/sent").text
    path = link_in_mailbox(client, "ann@example.com")
    signed_in = sign_in(client, path)
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/"
    home = client.get("/").text
    assert "Signed in as ann@example.com." in home and "You're signed in" in home

    replay = client.get(path)
    assert replay.status_code == 410 and "This link was already used" in replay.text
    replay = client.post(path, data={"authenticity_token": token_of(client.get("/").text)})
    assert replay.status_code == 410 and "This link was already used" in replay.text
    assert client.post("/sign_out", data={}).status_code == 403  # no token: not signed out
    assert "You're signed in" in client.get("/").text
    out = client.post("/sign_out", data={"authenticity_token": token_of(client.get("/").text)})
    assert out.status_code == 303
    assert "Signed out." in client.get("/").text and "Email me a sign-in link" in client.get("/").text
    # The cable sockets of that session are told to go (and come back signed out).
    assert broadcasts("action_cable/ann@example.com") == [{"type": "disconnect", "reconnect": True}]


def test_the_authenticity_token_is_required(client: TestClient, example: Path) -> None:
    from app.models import MagicLink

    client.get("/")
    for token in ("", "forged-token", None):
        data = {"email": "a@example.com"} | ({"authenticity_token": token} if token is not None else {})
        response = client.post("/magic_links", data=data)
        assert response.status_code == 403, token
        assert "This form has expired" in response.text and "security token" in response.text
    # A token from another session does not pass either.
    with TestClient(client.app) as other:
        assert ask(client, "a@example.com", token_of(other.get("/").text)).status_code == 403
    assert MagicLink.count() == 0 and queue_storage().counts()["ready"] == 0


@pytest.mark.parametrize("email", ["", "not-an-email", "a@b", "a b@example.com", "x@example", "<script>@x.com",
                                   "a" * 250 + "@example.com", "@example.com"])
def test_an_invalid_email_is_refused_clearly(client: TestClient, example: Path, email: str) -> None:
    from app.models import MagicLink

    response = ask(client, email)
    assert response.status_code == 422
    assert "Enter a valid email address, like you@example.com." in response.text
    assert "<script>@" not in response.text  # escaped when shown back
    assert MagicLink.count() == 0 and queue_storage().counts()["ready"] == 0


def test_expired_and_forged_links_get_clear_pages(client: TestClient, example: Path) -> None:
    from app.models import MagicLink

    expired = MagicLink.create("late@example.com", lifetime=-1)
    response = client.get(f"/session/{expired.token}")
    assert response.status_code == 410 and "This link has expired" in response.text
    response = client.post(f"/session/{expired.token}", data={"authenticity_token": token_of(response.text)})
    assert response.status_code == 410 and "This link has expired" in response.text
    forged = expired.token[:-4] + ("AAAA" if not expired.token.endswith("AAAA") else "BBBB")
    for token in (forged, "short", "x" * 5000, "..%2F..%2Fetc", "' OR 1=1 --"):
        response = client.get(f"/session/{token}")
        assert response.status_code == 404, token
        assert "This sign-in link is not valid" in response.text
        response = client.post(f"/session/{token}", data={"authenticity_token": token_of(response.text)})
        assert response.status_code == 404, token
    assert "You're signed in" not in client.get("/").text
    assert client.get("/no/such/page").status_code == 404
    assert client.get("/magic_links").status_code == 405


def test_a_link_signs_in_once_even_when_clicked_twice_at_once(example: Path) -> None:
    from app.models import MagicLink

    link = MagicLink.create("twice@example.com")
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def click() -> None:
        barrier.wait()
        outcomes.append(MagicLink.redeem(link.token)[0])

    threads = [threading.Thread(target=click) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(outcomes) == ["signed_in"] + ["used"] * 7


def test_links_for_one_email_are_rate_limited(client: TestClient, example: Path) -> None:
    from app.models import MagicLink

    token = token_of(client.get("/").text)
    assert [ask(client, "flood@example.com", token).status_code for _ in range(3)] == [303] * 3
    response = ask(client, "FLOOD@example.com", token)
    assert response.status_code == 429 and int(response.headers["retry-after"]) == 600
    assert "Too many links for this address" in response.text and "flood@example.com" in response.text
    assert ask(client, "other@example.com", token).status_code == 303
    # Every accepted request has its link and its job; the refused one has neither.
    assert MagicLink.count() == 4 and queue_storage().counts()["ready"] == 4


def test_requests_from_one_address_are_rate_limited(client: TestClient, example: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from app.models import MagicLink

    monkeypatch.setenv("RATE_LIMIT_PER_IP", "5/60")
    token = token_of(client.get("/").text)
    codes = [ask(client, f"user{i}@example.com", token).status_code for i in range(5)]
    codes += [ask(client, "not an email", token).status_code]
    assert codes == [303] * 5 + [429]
    response = ask(client, "late@example.com", token)
    assert response.status_code == 429 and "Too many requests" in response.text
    assert "Try again in 1 minutes" in response.text
    assert MagicLink.count() == 5 and queue_storage().counts()["ready"] == 5


def test_the_rate_limit_counts_live_in_the_cache_database(client: TestClient, example: Path, engine: str) -> None:
    from solidstack.cache import cache

    ask(client, "counted@example.com")
    assert cache.read("rate-limit:email:counted@example.com") == 1
    assert cache.read("rate-limit:ip:testclient") == 1
    if engine == "sqlite":
        assert (example / "storage" / "test_cache.sqlite3").exists()
    else:
        assert not (example / "storage" / "test_cache.sqlite3").exists()


def test_login_csrf_opening_an_attackers_link_does_not_sign_the_victim_in(client: TestClient, example: Path) -> None:
    """The attacker asks for a link to their own account and gets a victim to open it (a GET)."""
    from app.models import MagicLink

    link = MagicLink.create("attacker@example.com")
    with TestClient(client.app, follow_redirects=False) as victim:
        page = victim.get(f"/session/{link.token}")
        # A page that asks, naming the account; not a sign-in.
        assert page.status_code == 200 and "Sign in as attacker@example.com?" in page.text
        assert "You're signed in" not in victim.get("/").text
        # Mail scanners prefetch links: any number of GETs leaves the link usable.
        assert victim.get(f"/session/{link.token}").status_code == 200
        assert MagicLink.find(link.id).used_at is None  # type: ignore[union-attr]
        # The attacker's cross-site form cannot carry the victim's authenticity token: refused, link kept.
        for data in ({}, {"authenticity_token": "forged"},
                     {"authenticity_token": token_of(client.get(f"/session/{link.token}").text)}):
            response = victim.post(f"/session/{link.token}", data=data)
            assert response.status_code == 403 and "This form has expired" in response.text
        assert "You're signed in" not in victim.get("/").text
        assert MagicLink.find(link.id).used_at is None  # type: ignore[union-attr]


def test_a_session_cookie_copied_before_sign_out_does_not_work_after_it(client: TestClient, example: Path) -> None:
    from app.models import MagicLink, Session

    link = MagicLink.create("copied@example.com")
    assert sign_in(client, f"/session/{link.token}").status_code == 303
    assert "You're signed in" in client.get("/").text
    copied = client.cookies.get("_magic_link_session")
    assert copied
    with TestClient(client.app, follow_redirects=False, cookies={"_magic_link_session": copied}) as thief:
        assert "You're signed in" in thief.get("/").text  # the copy works while the session lives
        out = client.post("/sign_out", data={"authenticity_token": token_of(client.get("/").text)})
        assert out.status_code == 303 and "Signed out." in client.get("/").text
        thief.cookies.set("_magic_link_session", copied)
        home = thief.get("/")
        assert "You're signed in" not in home.text and "copied@example.com" not in home.text
        # Signing out with the copy cannot sign anyone else out either: the row is gone already.
        assert thief.post("/sign_out", data={"authenticity_token": token_of(thief.get("/").text)}).status_code == 303
    # Sign-out deleted the row, not left it to expire.
    assert Session.cleanup(now=10**12) == 0  # sign-out deleted the row; nothing was left to expire
