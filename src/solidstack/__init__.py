"""solidstack: background jobs, a cache and pub/sub for Python web apps, on the database you already have."""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version

from .config import App, ConfigError, configure, current_app

try:  # the version lives in pyproject.toml only; an installed package's metadata carries it
    __version__ = version("solidstack")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

# Parts register a function that drops what they cached for the current app (called by ``configure``).
_resetters: list[Callable[[], None]] = []


def _on_reset(fn: Callable[[], None]) -> Callable[[], None]:
    _resetters.append(fn)
    return fn


def _reset_parts() -> None:
    for fn in _resetters:
        fn()


__all__ = ["App", "ConfigError", "__version__", "configure", "current_app"]
