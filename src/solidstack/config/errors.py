"""Configuration errors that name the file, the environment and the key."""

from __future__ import annotations

from pathlib import Path


class ConfigError(Exception):
    """A configuration file is missing, broken, or has a key with a wrong value."""

    def __init__(self, message: str, *, file: str | Path | None = None, env: str | None = None,
                 key: str | None = None) -> None:
        self.file = str(file) if file is not None else None
        self.env = env
        self.key = key
        self.reason = message
        where = []
        if self.file:
            where.append(self.file)
        if env:
            where.append(f"[{env}]")
        if key:
            where.append(key)
        super().__init__(f"{' '.join(where)}: {message}" if where else message)
