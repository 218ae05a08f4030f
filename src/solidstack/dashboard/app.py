"""The dashboard as an ASGI app: ``dashboard_app(...)``, mountable anywhere (``Mount("/jobs", dashboard_app())``).

Every request passes :class:`~.access.Access` first (pages, actions, assets, the cable socket and, unless
``metrics_public``, ``/metrics``); every POST carries the CSRF token. Pages are in :mod:`.views`, actions in
:mod:`.posts`, live updates in :mod:`.live`, the Prometheus endpoint in :mod:`.metrics`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import HTTPConnection
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Receive, Scope, Send

from . import formatting, live, posts, views
from .access import Access, Authorize
from .formatting import DEFAULT_REDACT
from .sources import StorageSource, queue_databases

log = logging.getLogger("solidstack.dashboard")
HERE = Path(__file__).resolve().parent


class Dashboard:
    """The dashboard's settings and parts, shared by its handlers (``request.app.state.dashboard``)."""

    def __init__(self, *, databases: dict[str, Any], access: Access, redact: tuple[str, ...], cache: Any,
                 cable: Any, page_size: int, title: str, metrics_public: bool,
                 process_alive_threshold: float) -> None:
        self.databases = databases
        self.access = access
        self.redact = redact
        self.cache = cache
        self.cable = cable
        self.page_size = page_size
        self.title = title
        self.metrics_public = metrics_public
        self.process_alive_threshold = process_alive_threshold
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        env = self.templates.env
        env.autoescape = True  # every template, whatever its name: arguments and errors are never markup
        env.filters.update(duration=formatting.duration, when=formatting.when, relative=formatting.relative)
        env.globals["arguments_text"] = lambda job, **kw: formatting.arguments_text(
            job.arguments, job.class_name, self.redact, **kw)
        self.live = live.LiveUpdates(self)


class _Guard:
    """Refuses what :class:`Access` refuses, before any route runs (HTTP: the page; WebSocket: close 1008)."""

    def __init__(self, app: Starlette, dashboard: Dashboard) -> None:
        self.app = app
        self.dashboard = dashboard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        # Mounted in another app, links are still the dashboard's own: its routes' names, under the mount's path.
        scope = {**scope, "router": self.app.router, "app_root_path": scope.get("root_path", "")}
        conn = HTTPConnection(scope)
        if scope["type"] == "http" and self.dashboard.metrics_public and conn.url.path.endswith("/metrics"):
            await self.app(scope, receive, send)
            return
        verdict = await self.dashboard.access.check(conn)
        if verdict.allowed:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
        else:
            response = PlainTextResponse(verdict.message + "\n", verdict.status, headers=verdict.headers)
            await response(scope, receive, send)


def dashboard_app(queues: StorageSource | Mapping[str, StorageSource] | None = None, *,
                  authorize: Authorize | None = None, username: str | None = None, password: str | None = None,
                  allow_unauthenticated: bool = False, redact: tuple[str, ...] | list[str] = DEFAULT_REDACT,
                  cache: Any = None, cable: Any = None, page_size: int = 50, count_cap: int = 10_000,
                  title: str = "solidstack", metrics_public: bool = False,
                  process_alive_threshold: float = 300.0) -> ASGIApp:
    """The jobs dashboard as an ASGI app.

    ``queues``: the queue database to show (a ``QueueStorage`` or a function returning one), or several as
    ``{"name": storage}`` (a menu chooses); default, the current app's. Access: ``authorize(request) -> bool``
    (may be async), or HTTP basic ``username``/``password`` (default from ``SOLIDSTACK_DASHBOARD_USERNAME`` /
    ``_PASSWORD``); with neither it answers 403 saying how to configure it, unless ``allow_unauthenticated``.
    ``redact``: argument-name words whose values are hidden. ``cache``/``cable``: the cache store and cable
    pub/sub whose stats to show (default the app's). Counts stop at ``count_cap`` and say so.
    """
    dashboard = Dashboard(
        databases=queue_databases(queues, count_cap=count_cap),
        access=Access(authorize=authorize, username=username, password=password,
                      allow_unauthenticated=allow_unauthenticated),
        redact=tuple(redact), cache=cache, cable=cable, page_size=page_size, title=title,
        metrics_public=metrics_public, process_alive_threshold=process_alive_threshold)
    from .metrics import metrics

    routes = [
        Route("/", views.root, name="root"),
        Route("/metrics", metrics, name="metrics"),
        WebSocketRoute("/cable", dashboard.live.cable, name="cable"),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
        Route("/{db}/", views.queues_page, name="queues"),
        Route("/{db}/jobs/{state}", views.jobs_page, name="jobs"),
        Route("/{db}/job/{job_id:int}", views.job_page, name="job"),
        Route("/{db}/processes", views.processes_page, name="processes"),
        Route("/{db}/recurring", views.recurring_page, name="recurring"),
        Route("/{db}/stats", views.stats_page, name="stats"),
        Route("/{db}/queues/clear", views.clear_confirm_page, name="clear_confirm"),
        Route("/{db}/live.json", views.live_json, name="live_json"),
        Route("/{db}/queues/{action}", posts.queue_action, methods=["POST"], name="queue_action"),
        Route("/{db}/jobs/{state}/{action}", posts.job_action, methods=["POST"], name="job_action"),
        Route("/{db}/recurring/run", posts.run_recurring, methods=["POST"], name="run_recurring"),
    ]
    app = Starlette(routes=routes)
    app.state.dashboard = dashboard
    return _Guard(app, dashboard)
