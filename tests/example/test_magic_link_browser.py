"""End to end in headless Chromium (Debian's, through Playwright): the app as bin/dev runs it — web, jobs, mail.

Request a link, watch "check your inbox" change by itself when the job has sent the email (over /cable, with
the published @rails/actioncable client), open the mailbox, follow the link, confirm, land signed in; a used link and an
expired one are refused with a clear page. Screenshots of each step go to test-artifacts/.
"""

from __future__ import annotations

from typing import Any

import pytest
from magic_link_helpers import Running, use_app

from browser_helpers import ARTIFACTS

pytestmark = pytest.mark.timeout(900)  # the first run on a new machine may install chromium with apt


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"magic_link_{name}.png"), full_page=True)


def test_sign_in_with_a_magic_link_in_a_browser(live_app: Running, browser: Any,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    use_app(live_app.root, "development", monkeypatch)
    from app.models import MagicLink

    from solidstack.queue import Queue

    context = browser.new_context(viewport={"width": 900, "height": 640})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    expected = ("status of 410", "status of 422")  # the used/expired link and invalid email pages themselves
    page.on("console", lambda message: message.type == "error" and not any(e in message.text for e in expected)
            and problems.append(f"console: {message.text}"))
    email = "browser@example.com"

    # Hold the job back until the page is listening, so the update is seen arriving, not already there.
    queue = Queue("default")
    queue.pause()
    try:
        page.goto(live_app.url)
        shot(page, "1_request_form")
        page.fill("#email", email)
        page.click("#request-link button[type=submit]")
        page.wait_for_url("**/magic_links/sent")
        page.wait_for_selector('#inbox[data-cable="connected"]', timeout=10_000)
        assert page.get_attribute("#inbox", "data-state") == "sending"
        assert "Sending a sign-in link to" in page.inner_text("#delivery-status")
        shot(page, "2_check_your_inbox_sending")
    finally:
        queue.resume()
    page.wait_for_selector('#inbox[data-state="sent"]', timeout=10_000)
    assert f"Sent! A sign-in link is in the inbox of {email}." in page.inner_text("#delivery-status")
    shot(page, "3_check_your_inbox_sent")

    page.click("#open-mailbox")
    page.wait_for_url("**/mailbox")
    mail = page.locator(f'article.mail[data-to="{email}"]').first
    assert "Your sign-in link" in mail.inner_text()
    shot(page, "4_mailbox")
    link = mail.locator("a").first
    href = link.get_attribute("href")
    assert href and href.startswith(f"{live_app.url}/session/")
    link.click()
    # The link opens a page that asks (a GET signs no one in, and mail scanners do not use the link up).
    page.wait_for_url(href)
    assert page.inner_text("#confirm-sign-in h1") == f"Sign in as {email}?"
    shot(page, "5_confirm_sign_in")
    page.click("#confirm-sign-in-button")
    page.wait_for_url(f"{live_app.url}/")
    assert page.inner_text("#flash") == f"Signed in as {email}."
    assert "You're signed in" in page.inner_text("#signed-in")
    shot(page, "6_signed_in")

    response = page.goto(href)
    assert response is not None and response.status == 410
    assert page.inner_text("#link-problem h1") == "This link was already used"
    shot(page, "7_link_already_used")
    copied = context.cookies()
    page.click("#sign-out")
    page.wait_for_url(f"{live_app.url}/")
    assert page.inner_text("#flash") == "Signed out."
    context.add_cookies(copied)  # the cookie as it was before sign-out: revoked, so signed out all the same
    page.goto(live_app.url)
    assert page.locator("#signed-in").count() == 0 and page.locator("#request-link").is_visible()

    expired = MagicLink.create(email, lifetime=-1)
    response = page.goto(f"{live_app.url}/session/{expired.token}")
    assert response is not None and response.status == 410
    assert page.inner_text("#link-problem h1") == "This link has expired"
    assert page.locator("#request-link").is_visible()  # with the form to ask for a new one
    shot(page, "8_link_expired")

    page.goto(live_app.url)
    page.fill("#email", "not an email")
    page.click("#request-link button[type=submit]")
    assert page.inner_text("#email-error") == "Enter a valid email address, like you@example.com."
    shot(page, "9_invalid_email")
    context.close()
    assert problems == []
    assert "smtp://127.0.0.1" in live_app.output()  # the email went by SMTP to the mailbox server
