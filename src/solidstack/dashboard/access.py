"""Who may see the dashboard, and that its forms were sent by its own pages.

Closed until its owner decides: an ``authorize(request) -> bool`` callable (apps with their own sign-in), or
HTTP basic credentials (``SOLIDSTACK_DASHBOARD_USERNAME`` / ``SOLIDSTACK_DASHBOARD_PASSWORD``, or passed in).
With neither, every request gets 403 and a page that says how to configure it; ``allow_unauthenticated``
(``solidstack dashboard --no-auth`` on a loopback address) opens it, with a warning.

CSRF: a random token in a ``SameSite=Strict``, ``HttpOnly`` cookie, repeated in a hidden field of every form;
a POST whose field does not match its cookie, or whose ``Origin`` is another site, is refused (403). The
cable handshake is authorized like the pages (its ``Origin`` is checked by the cable app).
"""

from __future__ import annotations

import base64
import binascii
import inspect
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection

USERNAME_VAR = "SOLIDSTACK_DASHBOARD_USERNAME"
PASSWORD_VAR = "SOLIDSTACK_DASHBOARD_PASSWORD"
CSRF_COOKIE = "solidstack_dashboard_csrf"
CSRF_FIELD = "authenticity_token"

Authorize = Callable[[HTTPConnection], bool | Awaitable[bool]]

HOW_TO = (
    "The solidstack dashboard is closed until you configure who may open it. Either set the environment "
    f"variables {USERNAME_VAR} and {PASSWORD_VAR} (HTTP basic authentication), or pass "
    "authorize=callable(request) -> bool to dashboard_app() to use your app's own sign-in. For a local look, "
    "`solidstack dashboard --no-auth` serves it without authentication on a loopback address."
)


@dataclass(frozen=True)
class Verdict:
    """The answer to one request: allowed, or the status, message and headers of the refusal."""

    allowed: bool
    status: int = 200
    message: str = ""
    headers: dict[str, str] | None = None


class Access:
    """The dashboard's access rule, built once by :func:`~solidstack.dashboard.dashboard_app`."""

    def __init__(self, *, authorize: Authorize | None = None, username: str | None = None,
                 password: str | None = None, allow_unauthenticated: bool = False) -> None:
        self.authorize = authorize
        self.username = username if username is not None else os.environ.get(USERNAME_VAR)
        self.password = password if password is not None else os.environ.get(PASSWORD_VAR)
        if bool(self.username) != bool(self.password):
            raise ValueError(f"dashboard basic authentication needs both a username and a password "
                             f"({USERNAME_VAR} and {PASSWORD_VAR}); only one is set")
        self.allow_unauthenticated = allow_unauthenticated

    @property
    def configured(self) -> bool:
        return self.authorize is not None or bool(self.username) or self.allow_unauthenticated

    async def check(self, conn: HTTPConnection) -> Verdict:
        if self.authorize is not None:
            result = self.authorize(conn)
            if inspect.isawaitable(result):
                result = await result
            if result is True:
                return Verdict(True)
            return Verdict(False, 403, "You are not allowed to open the jobs dashboard.")
        if self.username:
            if self._basic_ok(conn.headers.get("authorization", "")):
                return Verdict(True)
            return Verdict(False, 401, "Sign in to open the jobs dashboard.",
                           {"WWW-Authenticate": 'Basic realm="solidstack dashboard", charset="UTF-8"'})
        if self.allow_unauthenticated:
            return Verdict(True)
        return Verdict(False, 403, HOW_TO)

    def _basic_ok(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return False
        # Both compared whatever the first gives: the time taken says nothing about which was wrong.
        ok_user = secrets.compare_digest(user.encode(), (self.username or "").encode())
        ok_password = secrets.compare_digest(password.encode(), (self.password or "").encode())
        return bool(sep) and ok_user and ok_password


def csrf_token(conn: HTTPConnection) -> tuple[str, bool]:
    """This browser's token, and whether it is new (then the response must set the cookie)."""
    token = conn.cookies.get(CSRF_COOKIE)
    if token and len(token) >= 32:
        return token, False
    return secrets.token_urlsafe(32), True


def csrf_ok(conn: HTTPConnection, form: Any) -> bool:
    """The form's token matches the cookie's, and the request comes from this site (when it says)."""
    sent, kept = form.get(CSRF_FIELD), conn.cookies.get(CSRF_COOKIE)
    if not (isinstance(sent, str) and isinstance(kept, str) and kept and secrets.compare_digest(sent, kept)):
        return False
    origin = conn.headers.get("origin")
    if origin and origin != "null":
        return urlsplit(origin).netloc.lower() == (conn.headers.get("host") or "").lower()
    return True
