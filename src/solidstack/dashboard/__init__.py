"""The jobs dashboard: an ASGI app (Starlette + Jinja2, the ``web`` extra) showing one or more queue databases.

Mount it in any ASGI app (``Mount("/jobs", dashboard_app())``) or run it alone (``solidstack dashboard``). It
reads and acts only through the queue's public API (:mod:`solidstack.queue.inspect`,
:mod:`solidstack.queue.actions`, :class:`solidstack.queue.Queue`): no SQL of its own.
"""

from __future__ import annotations

from .access import Access
from .app import dashboard_app
from .formatting import DEFAULT_REDACT

__all__ = ["DEFAULT_REDACT", "Access", "dashboard_app"]
