"""The jobs dashboard at ``/jobs``, for the people who run this app.

Who may open it (``authorize``): in development, anyone on this machine (a loopback client); otherwise a
signed-in user whose email is listed in ``DASHBOARD_ADMINS`` (comma-separated).
"""

from __future__ import annotations

import ipaddress
import os

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp

from solidstack import current_app
from solidstack.dashboard import dashboard_app


def _loopback(conn: HTTPConnection) -> bool:
    try:
        return conn.client is not None and ipaddress.ip_address(conn.client.host).is_loopback
    except ValueError:
        return False


def dashboard_access(conn: HTTPConnection) -> bool:
    if current_app().env == "development" and _loopback(conn):
        return True
    admins = {e.strip().lower() for e in os.environ.get("DASHBOARD_ADMINS", "").split(",") if e.strip()}
    email = conn.scope.get("state", {}).get("email")  # set by web.CurrentSession from the session's row
    return email is not None and email in admins


def dashboard() -> ASGIApp:
    return dashboard_app(authorize=dashboard_access, title="magic link")
