"""Read Rails-format YAML config files: ERB env lookups, anchors and merges, environment sections.

``<%= ENV.fetch("X", default) %>``, ``<%= ENV.fetch("X") { default } %>`` and ``<%= ENV["X"] %>`` are replaced
before parsing, as Rails' ERB pass does; any other ERB tag is an error naming the file and line. YAML is read
with PyYAML's safe loader, which supports ``&anchor``, ``*alias`` and ``<<:`` merges.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .durations import parse_duration
from .errors import ConfigError

ENV_VAR = "SOLIDSTACK_ENV"
ENVIRONMENTS = ("development", "test", "production")

_ERB = re.compile(r"<%=?(.*?)-?%>", re.DOTALL)
_LITERAL = r"""(?:"[^"]*"|'[^']*'|-?\d+(?:\.\d+)?|nil|true|false)"""
_ENV_FETCH = re.compile(
    rf"""^\s*ENV\.fetch\(\s*(["'])(\w+)\1\s*(?:,\s*({_LITERAL})\s*)?\)\s*(?:\{{\s*({_LITERAL})\s*\}})?"""
    r"""\s*(\.to_i|\.to_f|\.to_s)?\s*$"""
)
_ENV_INDEX = re.compile(r"""^\s*ENV\[\s*(["'])(\w+)\1\s*\]\s*(\.to_i|\.to_f|\.to_s)?\s*$""")
# ActiveSupport numeric helpers as Rails templates use them: `256.megabytes`, `60.days.to_i`.
_NUMERIC = re.compile(r"^\s*(\d+(?:\.\d+)?)\.(\w+?)s?(?:\.to_i)?\s*$")
_NUMERIC_UNITS = {
    "byte": 1, "kilobyte": 1024, "megabyte": 1024**2, "gigabyte": 1024**3, "terabyte": 1024**4,
    "second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800,
}


def current_env() -> str:
    """The environment named by ``SOLIDSTACK_ENV`` (``development`` when unset)."""
    return os.environ.get(ENV_VAR) or "development"


def _literal(text: str) -> str:
    if text in ("nil",):
        return ""
    if text[:1] in "\"'":
        return text[1:-1]
    return text


def render_erb(text: str, file: str | Path, env: str | None = None) -> str:
    """Replace what Rails config files put in ERB: ENV lookups, ``Rails.env``, ``256.megabytes``.

    Any other ERB is rejected, naming the file and line.
    """

    def replace(match: re.Match[str]) -> str:
        code = match.group(1).strip()
        line = text.count("\n", 0, match.start()) + 1
        fetch = _ENV_FETCH.match(code)
        if fetch:
            name, default, block = fetch.group(2), fetch.group(3), fetch.group(4)
            if name in os.environ:
                return os.environ[name]
            fallback = default if default is not None else block
            if fallback is None:
                raise ConfigError(f"line {line}: environment variable {name} is not set", file=file)
            return _literal(fallback)
        index = _ENV_INDEX.match(code)
        if index:
            return os.environ.get(index.group(2), "")
        if code in ("Rails.env", "Rails.env.to_s"):
            return env or current_env()
        numeric = _NUMERIC.match(code)
        if numeric and numeric.group(2) in _NUMERIC_UNITS:
            value = float(numeric.group(1)) * _NUMERIC_UNITS[numeric.group(2)]
            return str(int(value)) if value == int(value) else str(value)
        raise ConfigError(
            f"line {line}: unsupported ERB {match.group(0)!r} "
            '(supported: ENV.fetch("X", default), ENV.fetch("X") { default }, ENV["X"], Rails.env, '
            "256.megabytes, 60.days.to_i)",
            file=file,
        )

    return _ERB.sub(replace, text)


def read_yaml(path: Path, env: str | None = None) -> Any:
    """Parse a config file after the ERB pass; errors name the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", file=path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc}", file=path) from exc
    rendered = render_erb(text, path, env)
    try:
        return yaml.safe_load(rendered)
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", file=path) from None


def env_section(path: Path, env: str, *, required: bool = False) -> dict[str, Any] | None:
    """The section for ``env`` of a config file.

    As Solid Queue does, a file whose top level has no environment names is used whole. A file that has
    environment sections but none for ``env`` gives ``None`` (the part uses its defaults) unless ``required``.
    """
    data = read_yaml(path, env)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping at the top level, got {type(data).__name__}", file=path)
    if env in data:
        section = data[env]
        if section is None:
            return {}
        if not isinstance(section, dict):
            raise ConfigError(f"expected a mapping, got {section!r}", file=path, env=env)
        return section
    if any(name in data for name in ENVIRONMENTS):
        if required:
            raise ConfigError(f"no section for the {env!r} environment", file=path, env=env)
        return None
    return data


T = TypeVar("T")


class Section:
    """Typed reads from one mapping of a config file; unknown keys are reported with the allowed ones."""

    def __init__(self, data: Mapping[str, Any], *, file: str | Path | None, env: str | None,
                 prefix: str = "") -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(f"expected a mapping, got {data!r}", file=file, env=env, key=prefix or None)
        self.data = dict(data)
        self.file = file
        self.env = env
        self.prefix = prefix
        self._seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def error(self, name: str | None, message: str) -> ConfigError:
        return ConfigError(message, file=self.file, env=self.env,
                           key=self.key(name) if name else (self.prefix or None))

    def child(self, name: str, data: Any) -> Section:
        return Section(data, file=self.file, env=self.env, prefix=self.key(name))

    def has(self, name: str) -> bool:
        return name in self.data

    def raw(self, name: str, default: Any = None) -> Any:
        self._seen.add(name)
        return self.data.get(name, default)

    def get(self, name: str, convert: Callable[[Any], T], default: T) -> T:
        self._seen.add(name)
        if name not in self.data or self.data[name] is None:
            return default
        try:
            return convert(self.data[name])
        except (TypeError, ValueError) as exc:
            raise self.error(name, str(exc)) from None

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self._seen)
        if unknown:
            allowed = ", ".join(sorted(self._seen))
            raise self.error(unknown[0], f"unknown key (known keys here: {allowed})")


# -- converters ---------------------------------------------------------------------------------------------


#: The widest whole number a config key takes: SQLite's (and PostgreSQL's bigint) 64-bit integer.
MAX_INTEGER = 2**63 - 1

#: The longest wait a config key may set (polling intervals, heartbeats, shutdown and busy timeouts): one day.
#: The parts hand these to poll(), thread waits and SQLite's busy handler, whose millisecond counters overflow
#: past 24.8 days (a SQLite busy timeout of 2**31 ms silently becomes no wait at all).
MAX_WAIT = 86400.0


def integer(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected a whole number, got {value!r}")
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if not isinstance(value, int):
        raise ValueError(f"expected a whole number, got {value!r}")
    if not -MAX_INTEGER - 1 <= value <= MAX_INTEGER:
        raise ValueError(f"expected a whole number of at most {MAX_INTEGER:,} in size, got {value}")
    return value


def positive_int(value: Any) -> int:
    number = integer(value)
    if number < 1:
        raise ValueError(f"expected a number of at least 1, got {number}")
    return number


def count(maximum: int) -> Callable[[Any], int]:
    """A converter for a count from 1 to ``maximum`` (threads, processes, batch sizes)."""

    def convert(value: Any) -> int:
        number = positive_int(value)
        if number > maximum:
            raise ValueError(f"expected at most {maximum:,}, got {number:,}")
        return number

    return convert


def duration(value: Any) -> float:
    """Seconds, zero or more, finite, at most 100 years (``durations.MAX_DURATION``)."""
    return parse_duration(value)


def positive_duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"expected a duration above zero, got {value!r}")
    return seconds


def _bounded_wait(value: Any, seconds: float) -> float:
    if seconds > MAX_WAIT:
        raise ValueError(f"expected a wait of at most 1 day (86400 seconds), got {value!r}")
    return seconds


def wait(value: Any) -> float:
    """A duration the code waits for, zero or more: at most :data:`MAX_WAIT` (``shutdown_timeout``)."""
    return _bounded_wait(value, parse_duration(value))


def positive_wait(value: Any) -> float:
    """A duration the code waits for, above zero: at most :data:`MAX_WAIT` (polling intervals, timeouts)."""
    return _bounded_wait(value, positive_duration(value))


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
        return value.lower() in ("true", "yes", "on", "1")
    raise ValueError(f"expected true or false, got {value!r}")


def string(value: Any) -> str:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"expected a string, got {value!r}")


def part_section(app: Any, filename: str, file: str | Path | None = None) -> tuple[Path, dict[str, Any] | None]:
    """The path of a part's config file (``file`` or the app's ``config/<filename>``) and its section for the
    app's environment (``None`` when the file does not exist; a ``file`` given explicitly must exist)."""
    given = getattr(app, "sections", {}).get(filename) if not file else None
    if given is not None:
        return Path(given[0]), given[1]
    path = Path(file) if file else app.config_file(filename)
    if file and not path.exists():
        raise ConfigError("file not found", file=path)
    return path, (env_section(path, app.env) if path.exists() else None)


C = TypeVar("C")


def env_override(config: C, variable: str, field: str, convert: Callable[[str], Any]) -> C:
    """``config`` with ``field`` replaced by the converted value of environment ``variable``, when it is set."""
    value = os.environ.get(variable)
    if not value:
        return config
    try:
        return dataclasses.replace(config, **{field: convert(value)})  # type: ignore[type-var]
    except ValueError as exc:
        raise ConfigError(str(exc), key=variable) from None
