"""solidstack's Action Cable endpoint and jobs dashboard, mounted in Django's ASGI application.

In ``asgi.py``, after ``get_asgi_application()`` (which sets Django up)::

    from django.core.asgi import get_asgi_application
    from solidstack.django.asgi import solidstack_asgi

    application = solidstack_asgi(get_asgi_application(), channels=["notes.cable.SentChannel"])

``/cable`` is then solidstack's cable server (the ``@rails/actioncable`` client and Turbo Streams' default URL)
and ``/jobs/`` the jobs dashboard; every other request goes to the wrapped application (Django's handler, or a
Channels ``ProtocolTypeRouter``) unchanged. Both need the ``web`` extra (Starlette).

- The cable server is :class:`solidstack.cable.asgi.CableApp` as configured by the cable part
  (``SOLIDSTACK["CABLE"]`` or ``config/cable.yml``): its pub/sub and database, ``allowed_request_origins``
  (else only the page's own host) and per-socket limits. Its connection class is :class:`DjangoConnection`,
  which identifies each socket by the Django user of its session cookie (``self.connection.current_user`` in a
  channel, ``None`` when anonymous); a channel refuses what it must with ``self.reject()``. Turbo's
  ``Turbo::StreamsChannel`` is included; its signed stream names are signed with ``SECRET_KEY_BASE`` from the
  environment, else with Django's ``SECRET_KEY``.
- The dashboard is :func:`solidstack.dashboard.dashboard_app` on the queue database the integration uses. By
  default only active staff users of the session (:func:`staff_member`) may open it; pass
  ``dashboard_authorize=None`` for the HTTP basic credentials of the environment
  (``SOLIDSTACK_DASHBOARD_USERNAME`` / ``_PASSWORD``), or your own ``authorize(request) -> bool``. Its forms
  carry the dashboard's own CSRF token (Django's middleware does not see these requests).

Both check the request's ``Host`` against ``ALLOWED_HOSTS`` first, as Django does for its own requests.
``cable_path=None`` or ``dashboard_path=None`` leaves that part out. See docs/decisions/0705.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from importlib import import_module
from types import SimpleNamespace
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from solidstack.cable.channel import Channel
from solidstack.cable.connection import Connection

log = logging.getLogger("solidstack.django")
Scope = dict[str, Any]
ASGIApp = Callable[..., Any]

__all__ = ["DjangoConnection", "SolidstackASGI", "django_user", "solidstack_asgi", "staff_member"]


async def django_user(request: Any) -> Any | None:
    """The signed-in Django user of a request or WebSocket handshake (a Starlette ``HTTPConnection``), from its
    session cookie; ``None`` when anonymous, or when ``django.contrib.auth`` is not installed."""
    if not apps.is_installed("django.contrib.auth"):
        return None
    key = request.cookies.get(settings.SESSION_COOKIE_NAME)
    if not key:
        return None
    from django.contrib.auth import aget_user

    session = import_module(settings.SESSION_ENGINE).SessionStore(key)
    user = await aget_user(SimpleNamespace(session=session))  # checks the session's auth hash, as Django's middleware
    return user if user.is_authenticated else None


async def staff_member(request: Any) -> bool:
    """The dashboard's default ``authorize``: the session's user is an active staff member."""
    user = await django_user(request)
    return bool(user is not None and user.is_active and user.is_staff)


class DjangoConnection(Connection):
    """A cable connection identified by the Django user of its session (``current_user``; ``None``: anonymous).

    Subclass it to refuse anonymous sockets (``self.reject_unauthorized_connection()`` in ``connect``) or to
    identify by something else. The identifier is ``str(user)`` (the username by default).
    """

    identified_by = ("current_user",)

    async def connect(self) -> None:
        self.current_user = await django_user(self.request)


def _classes(items: Iterable[type[Channel] | str]) -> list[type[Channel]]:
    found = []
    for item in items:
        cls = import_string(item) if isinstance(item, str) else item
        if not (isinstance(cls, type) and issubclass(cls, Channel)):
            raise ImproperlyConfigured(f"solidstack_asgi(channels=...): {item!r} is not a solidstack.cable.Channel "
                                       "subclass")
        found.append(cls)
    return found


def _prefix(path: str | None, what: str) -> str | None:
    if path is None:
        return None
    if not path.startswith("/") or path.rstrip("/") == "":
        raise ImproperlyConfigured(f"solidstack_asgi({what}={path!r}): a path below the site's root, such as "
                                   f"{'/cable' if what == 'cable_path' else '/jobs/'}")
    return path.rstrip("/")


class SolidstackASGI:
    """The wrapper :func:`solidstack_asgi` returns: routes the cable path and the dashboard's prefix, passes the
    rest to ``app``. ``cable`` and ``dashboard`` are the mounted ASGI apps (``None`` when left out)."""

    def __init__(self, app: ASGIApp, *, cable: ASGIApp | None, cable_path: str | None, dashboard: ASGIApp | None,
                 dashboard_path: str | None) -> None:
        self.app = app
        self.cable = cable
        self.cable_path = cable_path
        self.dashboard = dashboard
        self.dashboard_path = dashboard_path

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            # Django's handler does not speak lifespan; the cable server closes its stream router at shutdown.
            if self.cable is not None:
                await self.cable(scope, receive, send)
            else:
                await _lifespan(receive, send)
            return
        if kind in ("http", "websocket"):
            root = scope.get("root_path", "")
            path = scope["path"]
            route = path[len(root):] if root and path.startswith(root) else path
            if self.cable is not None and route.rstrip("/") == self.cable_path:
                if await _host_allowed(scope, send):
                    await self.cable(scope, receive, send)
                return
            prefix = self.dashboard_path
            if self.dashboard is not None and prefix is not None and (route == prefix
                                                                      or route.startswith(prefix + "/")):
                if not await _host_allowed(scope, send):
                    return
                if route == prefix and kind == "http":
                    await _redirect(scope, send, root + prefix + "/")
                    return
                # As Starlette's Mount: the full path stays, the mount's prefix moves into root_path.
                await self.dashboard({**scope, "root_path": root + prefix}, receive, send)
                return
        await self.app(scope, receive, send)


async def _host_allowed(scope: Scope, send: Any) -> bool:
    """Django's ``ALLOWED_HOSTS`` check for the requests Django does not see (its same rule, DEBUG's defaults
    included): the cable's same-origin test compares ``Origin`` with ``Host``, which a DNS-rebinding page would
    control. A refused HTTP request gets 400, a refused handshake is closed (1008)."""
    from django.http.request import split_domain_port, validate_host

    host = next((value.decode("latin-1") for name, value in scope.get("headers", ()) if name == b"host"), "")
    allowed = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    domain, _port = split_domain_port(host)
    if domain and validate_host(domain, allowed):
        return True
    log.warning("solidstack_asgi: Host %r is not in ALLOWED_HOSTS; refused", host)
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
    else:
        body = b"Bad Request: this Host is not in ALLOWED_HOSTS.\n"
        await send({"type": "http.response.start", "status": 400,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
    return False


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _redirect(scope: Scope, send: Any, location: str) -> None:
    query = scope.get("query_string", b"")
    target = location + ("?" + query.decode("latin-1") if query else "")
    await send({"type": "http.response.start", "status": 307, "headers": [(b"location", target.encode("latin-1")),
                                                                         (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})


def solidstack_asgi(app: ASGIApp, *, channels: Iterable[type[Channel] | str] = (), cable_path: str | None = "/cable",
                    connection_class: type[Connection] | str = DjangoConnection, turbo: bool = True,
                    dashboard_path: str | None = "/jobs/",
                    dashboard_authorize: Callable[[Any], Any] | None = staff_member,
                    dashboard_options: Mapping[str, Any] | None = None) -> SolidstackASGI:
    """Wrap Django's ASGI application ``app`` with solidstack's cable server at ``cable_path`` and the jobs
    dashboard under ``dashboard_path``.

    ``channels``: the cable channel classes (or dotted paths) browsers may subscribe to; ``turbo`` adds
    ``Turbo::StreamsChannel``. ``connection_class``: who a socket belongs to (default :class:`DjangoConnection`).
    ``dashboard_authorize``: who may open the dashboard (default :func:`staff_member`; ``None``: the environment's
    basic credentials). ``dashboard_options``: more keywords for :func:`solidstack.dashboard.dashboard_app`
    (``title``, ``redact``, ``queues``, ...).
    """
    if not settings.configured or not apps.ready:
        raise ImproperlyConfigured("solidstack_asgi() wraps Django's ASGI application: call "
                                   "django.core.asgi.get_asgi_application() first")
    cable_prefix = _prefix(cable_path, "cable_path")
    dashboard_prefix = _prefix(dashboard_path, "dashboard_path")
    if cable_prefix is not None and cable_prefix == dashboard_prefix:
        raise ImproperlyConfigured(f"solidstack_asgi(): cable_path and dashboard_path are both {cable_path!r}")
    cable = None
    if cable_prefix is not None:
        from solidstack.cable.asgi import CableApp
        from solidstack.cable.turbo import SECRET_VARS, StreamsChannel, set_secret

        classes = _classes(channels)
        if turbo:
            classes.append(StreamsChannel)
            if not any(os.environ.get(var) for var in SECRET_VARS):
                set_secret(settings.SECRET_KEY)
        connection = import_string(connection_class) if isinstance(connection_class, str) else connection_class
        if not (isinstance(connection, type) and issubclass(connection, Connection)):
            raise ImproperlyConfigured(f"solidstack_asgi(connection_class=...): {connection_class!r} is not a "
                                       "solidstack.cable.Connection subclass")
        cable = CableApp(classes, connection_class=connection)
    dashboard = None
    if dashboard_prefix is not None:
        from solidstack.dashboard import dashboard_app

        options = dict(dashboard_options or {})
        if "authorize" in options:
            raise ImproperlyConfigured("solidstack_asgi(): pass authorize as dashboard_authorize")
        dashboard = dashboard_app(authorize=dashboard_authorize, **options)
    return SolidstackASGI(app, cable=cable, cable_path=cable_prefix, dashboard=dashboard,
                          dashboard_path=dashboard_prefix)
