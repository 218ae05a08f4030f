"""Configuration: Rails-format YAML files, environments, databases."""

from __future__ import annotations

from .app import App, configure, current_app
from .database import DatabaseConfig, load_databases
from .durations import parse_duration
from .errors import ConfigError
from .loader import Section, current_env, env_section, read_yaml

__all__ = [
    "App",
    "ConfigError",
    "DatabaseConfig",
    "Section",
    "configure",
    "current_app",
    "current_env",
    "env_section",
    "load_databases",
    "parse_duration",
    "read_yaml",
]
