"""The app solidstack serves: its root folder, its environment, and its databases."""

from __future__ import annotations

import os
import threading
from functools import cached_property
from pathlib import Path
from typing import Any

from .database import DatabaseConfig, default_entry, load_databases
from .errors import ConfigError
from .loader import current_env

ROOT_VAR = "SOLIDSTACK_ROOT"


class App:
    """An app folder (with ``config/``, ``db/``, ``storage/``) in one environment."""

    def __init__(self, root: str | os.PathLike[str] | None = None, env: str | None = None, *,
                 databases: dict[str, DatabaseConfig] | None = None,
                 sections: dict[str, tuple[str, dict[str, Any] | None]] | None = None) -> None:
        self.root = Path(root or os.environ.get(ROOT_VAR) or os.getcwd()).resolve()
        self.env = env or current_env()
        if databases is not None:
            # Entries given by a host framework (Django's DATABASES) instead of config/database.yml.
            self.__dict__["databases"] = dict(databases)
        #: Config file sections given by a host framework instead of the files (``{"queue.yml": (label,
        #: section)}``, the label naming where they came from in errors), e.g. Django's ``SOLIDSTACK`` setting.
        self.sections = dict(sections or {})

    def __repr__(self) -> str:
        return f"App(root={str(self.root)!r}, env={self.env!r})"

    def config_file(self, name: str) -> Path:
        return self.root / "config" / name

    @cached_property
    def databases(self) -> dict[str, DatabaseConfig]:
        """Entries of ``config/database.yml`` for this environment."""
        return load_databases(self.root, self.env)

    def database(self, name: str, *, wanted_by: str | None = None) -> DatabaseConfig:
        """The entry ``name``; without a ``database.yml`` at all, the embedded default file.

        When ``database.yml`` exists, a name it lacks is an error if another config file asked for it
        (``wanted_by``), and the embedded default otherwise.
        """
        if name in self.databases:
            return self.databases[name]
        if self.databases and wanted_by:
            raise ConfigError(
                f"names database {name!r}, which config/database.yml does not define for {self.env!r} "
                f"(defined: {', '.join(sorted(self.databases))})",
                file=wanted_by, env=self.env, key="connects_to",
            )
        return default_entry(self.root, self.env, name)


_current: App | None = None
_lock = threading.Lock()


def current_app() -> App:
    """The configured app, or one for the working folder and ``SOLIDSTACK_ENV``."""
    global _current
    with _lock:
        if _current is None:
            _current = App()
        return _current


def configure(root: str | os.PathLike[str] | None = None, env: str | None = None, *,
              databases: dict[str, DatabaseConfig] | None = None,
              sections: dict[str, tuple[str, dict[str, Any] | None]] | None = None) -> App:
    """Point solidstack at an app folder and environment (also for child processes).

    ``databases`` replaces ``config/database.yml`` and ``sections`` the files it names (a framework adapter
    passes what its settings say).
    """
    global _current
    app = App(root, env, databases=databases, sections=sections)
    os.environ[ROOT_VAR] = str(app.root)
    os.environ["SOLIDSTACK_ENV"] = app.env
    with _lock:
        _current = app
    from .. import _reset_parts

    _reset_parts()
    return app
