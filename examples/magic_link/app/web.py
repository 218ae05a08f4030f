"""The web app: ask for a sign-in link, watch it being sent, read it in the mailbox, follow it, sign out.

Starlette + Jinja2. The session is a signed cookie (Starlette's SessionMiddleware, itsdangerous); every form
carries an authenticity token kept in that session; link requests are rate-limited through the cache; the
"check your inbox" page hears over ``/cable`` when the job has sent the email.

Following a link only shows a confirmation page; its form (a POST with the authenticity token) signs in. So a
mail scanner that fetches the link does not use it up, and a victim sent to an attacker's own link is not
signed in as the attacker without seeing whose account it is (login CSRF). Being signed in is a row in the
``sessions`` table whose token the cookie carries (:class:`CurrentSession`); signing out deletes it, so a copy
of the cookie stops working too.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Receive, Scope, Send

from solidstack import current_app
from solidstack.cable import CableApp, remote_connections
from solidstack.queue.processes.asgi import jobs_lifespan

from . import admin, mailer, rate_limit
from .channels import AppConnection, InboxChannel
from .jobs import SendMagicLinkEmailJob
from .models import MagicLink, Session
from .models.magic_link import LIFETIME
from .models.session import LIFETIME as SESSION_LIFETIME

log = logging.getLogger("app")

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
# What a browser's <input type=email> accepts (the HTML standard's rule), with a dot in the domain.
EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}\.)+[A-Za-z]{2,63}")
URL = re.compile(r"https?://[^\s<>\"]+")


def secret_key_base() -> str:
    """``SECRET_KEY_BASE``; outside production, a random one kept in storage/ (as Rails' tmp/local_secret.txt)."""
    if os.environ.get("SECRET_KEY_BASE"):
        return os.environ["SECRET_KEY_BASE"]
    app = current_app()
    if app.env == "production":
        raise RuntimeError("set SECRET_KEY_BASE: it signs the session cookies")
    path = app.root / "storage" / "secret_key_base.txt"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(64))
    return path.read_text().strip()


def linkify(text: str) -> Markup:
    """Plain text with its URLs made links (the mailbox shows emails this way)."""
    out, last = [], 0
    for match in URL.finditer(text):
        out += [escape(text[last:match.start()]), Markup('<a href="{0}">{0}</a>').format(match.group())]
        last = match.end()
    out.append(escape(text[last:]))
    return Markup("").join(out)


templates.env.filters["linkify"] = linkify


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


def csrf_ok(request: Request, form: Any) -> bool:
    sent, kept = form.get("authenticity_token"), request.session.get("csrf")
    return isinstance(sent, str) and isinstance(kept, str) and secrets.compare_digest(sent, kept)


#: The key of the session cookie that holds the token of the ``sessions`` row.
SESSION_TOKEN = "session_token"


class CurrentSession:
    """ASGI middleware (inside SessionMiddleware): who is signed in, from the ``sessions`` row of the cookie's token.

    Sets ``scope["state"]["email"]`` (``request.state.email``, also on the cable's handshake) to the email, or
    ``None``; a token whose row is gone (signed out, expired) is dropped from the cookie.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            session = scope.get("session", {})
            token, email = session.get(SESSION_TOKEN), None
            if isinstance(token, str):
                record = await run_in_threadpool(Session.find_by_token, token)
                if record is None:
                    session.pop(SESSION_TOKEN, None)
                else:
                    email = record.email
            scope.setdefault("state", {})["email"] = email
        await self.app(scope, receive, send)


def signed_in_as(request: Request) -> str | None:
    return getattr(request.state, "email", None)


def render(request: Request, name: str, status: int = 200, **context: Any) -> Response:
    context.setdefault("flash", request.session.pop("flash", None))
    context.update(csrf=csrf_token(request), signed_in_as=signed_in_as(request),
                   development=current_app().env != "production")
    return templates.TemplateResponse(request, name, context, status_code=status)


def problem(request: Request, status: int, title: str, message: str, **headers: str) -> Response:
    response = render(request, "error.html", status, title=title, message=message)
    response.headers.update(headers)
    return response


async def home(request: Request) -> Response:
    return render(request, "home.html", email="")


async def request_link(request: Request) -> Response:
    form = await request.form()
    if not csrf_ok(request, form):
        log.warning("refused a link request without a valid authenticity token from %s", _ip(request))
        return problem(request, 403, "This form has expired",
                       "The page's security token was missing or did not match your session. Go back, reload "
                       "the page and try again.")
    per_ip = rate_limit.per_ip()
    if not await run_in_threadpool(per_ip.hit, _ip(request)):
        return problem(request, 429, "Too many requests",
                       f"Too many sign-in links were asked for from your address. Try again in "
                       f"{per_ip.minutes} minutes.", **{"Retry-After": str(int(per_ip.within))})
    email = str(form.get("email") or "").strip().lower()
    if len(email) > 254 or not EMAIL.fullmatch(email):
        return render(request, "home.html", 422, email=str(form.get("email") or "")[:254],
                      error="Enter a valid email address, like you@example.com.")
    per_email = rate_limit.per_email()
    if not await run_in_threadpool(per_email.hit, email):
        return problem(request, 429, "Too many links for this address",
                       f"We have sent {email} {per_email.to} sign-in links in the last {per_email.minutes} "
                       f"minutes. Use one of those, or try again later.",
                       **{"Retry-After": str(int(per_email.within))})
    link = await run_in_threadpool(_create_and_send, email)
    request.session["pending_link"] = link.id
    request.session["pending_email"] = email
    return RedirectResponse("/magic_links/sent", status_code=303)


def _create_and_send(email: str) -> MagicLink:
    link = MagicLink.create(email)
    SendMagicLinkEmailJob.perform_later(email, link.token)
    return link


async def sent(request: Request) -> Response:
    link_id = request.session.get("pending_link")
    link = await run_in_threadpool(MagicLink.find, link_id) if isinstance(link_id, int) else None
    if link is None:
        return RedirectResponse("/", status_code=303)
    return render(request, "sent.html", email=link.email, link_sent=link.sent_at is not None)


async def mailbox(request: Request) -> Response:
    if current_app().env == "production":
        raise HTTPException(404)
    return render(request, "mailbox.html", mails=await run_in_threadpool(mailer.delivered))


async def confirm_sign_in(request: Request) -> Response:
    """``GET /session/<token>``: the page that asks before signing in. It leaves the link unused."""
    token = request.path_params["token"]
    outcome, link = await run_in_threadpool(MagicLink.check, token)
    if outcome != "valid" or link is None:
        return _link_problem(request, outcome)
    response = render(request, "confirm_sign_in.html", email=link.email, token=token)
    # The token is in this page: keep it out of caches and out of the Referer of anything it loads.
    response.headers.update({"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})
    return response


async def sign_in(request: Request) -> Response:
    """``POST /session/<token>`` from the confirmation page's form: use the link, start a session."""
    form = await request.form()
    if not csrf_ok(request, form):
        log.warning("refused a sign-in without a valid authenticity token from %s", _ip(request))
        return problem(request, 403, "This form has expired",
                       "The page's security token was missing or did not match your session. Open the link "
                       "from your email again.")
    outcome, link = await run_in_threadpool(MagicLink.redeem, request.path_params["token"])
    if outcome == "signed_in" and link is not None:
        _, session_token = await run_in_threadpool(Session.start, link.email)
        # A new session on sign-in: nothing from before (a planted cookie) carries over.
        request.session.clear()
        request.session.update({SESSION_TOKEN: session_token, "flash": f"Signed in as {link.email}."})
        log.info("%s signed in with magic link %d", link.email, link.id)
        return RedirectResponse("/", status_code=303)
    return _link_problem(request, outcome)


def _link_problem(request: Request, outcome: str) -> Response:
    pages = {
        "used": (410, "This link was already used",
                 "Each sign-in link works once. Ask for a new one below."),
        "expired": (410, "This link has expired",
                    f"Sign-in links work for {LIFETIME // 60} minutes. Ask for a new one below."),
        "invalid": (404, "This sign-in link is not valid",
                    "It may have been mistyped, cut short by your email program, or already cleaned up. Ask "
                    "for a new one below."),
    }
    status, title, message = pages[outcome]
    log.info("refused a sign-in link (%s)", outcome)
    return render(request, "link_error.html", status, title=title, message=message, outcome=outcome, email="")


async def sign_out(request: Request) -> Response:
    form = await request.form()
    if not csrf_ok(request, form):
        return problem(request, 403, "This form has expired",
                       "The page's security token was missing or did not match your session. Reload and try again.")
    email, token = signed_in_as(request), request.session.get(SESSION_TOKEN)
    if isinstance(token, str):
        await run_in_threadpool(Session.end, token)  # every copy of this cookie is signed out too
    request.session.clear()
    request.session["flash"] = "Signed out."
    if email:
        # Sockets this browser opened while signed in close, and reconnect as signed out (Action Cable's
        # remote_connections): from any process, on every server sharing the cable database.
        where = remote_connections(AppConnection).where(session_email=email)
        await run_in_threadpool(where.disconnect)
    return RedirectResponse("/", status_code=303)


async def up(request: Request) -> Response:
    return PlainTextResponse("ok")


async def not_found(request: Request, exc: Exception) -> Response:
    return problem(request, 404, "Not found", "There is no page at this address.")


async def method_not_allowed(request: Request, exc: Exception) -> Response:
    return problem(request, 405, "Not allowed", "This page does not take that kind of request.")


def _ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def create_app() -> Starlette:
    """The ASGI app for the current solidstack app (``solidstack.configure`` first, and import the jobs)."""
    cable = CableApp([InboxChannel], connection_class=AppConnection)
    routes = [
        Route("/", home),
        Route("/magic_links", request_link, methods=["POST"]),
        Route("/magic_links/sent", sent),
        Route("/mailbox", mailbox),
        Route("/session/{token:path}", confirm_sign_in, methods=["GET"]),
        Route("/session/{token:path}", sign_in, methods=["POST"]),
        Route("/sign_out", sign_out, methods=["POST"]),
        Route("/up", up),
        WebSocketRoute("/cable", cable),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
        Mount("/jobs", admin.dashboard()),  # the jobs dashboard (see admin.py for who may open it)
    ]
    production = current_app().env == "production"
    middleware = [Middleware(SessionMiddleware, secret_key=secret_key_base(), session_cookie="_magic_link_session",
                             same_site="lax", https_only=production, max_age=SESSION_LIFETIME),
                  Middleware(CurrentSession)]
    # SOLID_QUEUE_IN_PUMA=1 (or SOLIDSTACK_JOBS_IN_PROCESS=1): the supervisor runs in this server's lifespan.
    return Starlette(routes=routes, middleware=middleware, lifespan=jobs_lifespan(),
                     exception_handlers={404: not_found, 405: method_not_allowed})
