"""The jobs dashboard: an ASGI app (Starlette + Jinja2, the ``web`` extra) showing one or more queue databases.

Mount it in any ASGI app (``Mount("/jobs", dashboard_app())``) or run it alone (``solidstack dashboard``). It
reads and acts only through the queue's public API (:mod:`solidstack.queue.admin.inspect`,
:mod:`solidstack.queue.admin.actions`, :class:`solidstack.queue.Queue`): no SQL of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .access import Access
    from .app import dashboard_app
    from .formatting import DEFAULT_REDACT

# Imported when asked for: the `solidstack` command registers `solidstack dashboard` by importing this package,
# and must not load Starlette, Jinja2 and prometheus_client for `bin/jobs` (start-up time of every process).
_LAZY = {"Access": "access", "dashboard_app": "app", "DEFAULT_REDACT": "formatting"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(name)


__all__ = ["DEFAULT_REDACT", "Access", "dashboard_app"]
