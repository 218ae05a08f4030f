"""config/cable.yml: the seed's file loads unchanged; errors name file, environment and key."""

from __future__ import annotations

from pathlib import Path

import pytest

import solidstack
from solidstack.cable import database_config, load_cable_config
from solidstack.cable.config import parse_cable_config
from solidstack.config import App, ConfigError
from solidstack.db import applied_versions, connect
from solidstack.parts import PARTS
from solidstack.tasks import install, migrate_all

SEED = Path(solidstack.__file__).parent / "templates" / "config" / "cable.yml"


def seeded(tmp_path: Path) -> Path:
    (tmp_path / "config").mkdir(parents=True, exist_ok=True)
    (tmp_path / "config" / "cable.yml").write_text(SEED.read_text())
    return tmp_path


def test_the_seed_file_loads_in_every_environment(tmp_path: Path) -> None:
    root = seeded(tmp_path)
    development = load_cable_config(App(root, "development"))
    assert (development.adapter, development.database) == ("solid_cable", "cable")
    assert development.polling_interval == pytest.approx(0.1)
    assert development.message_retention == 86400
    production = load_cable_config(App(root, "production"))
    assert production.polling_interval == 1.0
    test = load_cable_config(App(root, "test"))
    assert test.adapter == "test" and not test.uses_database


def test_settings_at_the_top_level_and_the_other_keys() -> None:
    config = parse_cable_config({
        "adapter": "solid_cable", "polling_interval": "0.5.seconds", "message_retention": "2.days",
        "connects_to": {"database": {"writing": "realtime"}, "polling_interval": 3},
        "autotrim": False, "trim_batch_size": 500, "silence_polling": False,
        "allowed_request_origins": ["https://a.example", "/https://.*\\.b\\.example/"],
    }, file="cable.yml", env="production")
    assert config.polling_interval == 0.5  # the top level wins over the nested quirk
    assert config.message_retention == 2 * 86400
    assert config.database == "realtime"
    assert (config.autotrim, config.trim_batch_size, config.silence_polling) == (False, 500, False)
    assert config.allowed_request_origins == ("https://a.example", "/https://.*\\.b\\.example/")


def test_connection_limits_default_and_from_the_file() -> None:
    from solidstack.cable.limits import ConnectionLimits

    assert parse_cable_config({}, file="cable.yml", env="test").limits == ConnectionLimits(100, 50.0, 200)
    config = parse_cable_config({"max_subscriptions_per_connection": 5, "max_commands_per_second": 2.5,
                                 "max_commands_burst": 10}, file="cable.yml", env="test")
    assert config.limits == ConnectionLimits(max_subscriptions=5, commands_per_second=2.5, burst=10)


@pytest.mark.parametrize(("data", "key", "reason"), [
    ({"adapter": "redis"}, "adapter", "unknown cable adapter"),
    ({"polling_interval": "soon"}, "polling_interval", "expected a duration"),
    ({"connects_to": {"database": {"writing": "cable"}, "polling_interval": 0}}, "connects_to.polling_interval",
     "above zero"),
    ({"connects_to": {"database": {"writing": "cable"}, "pool": 5}}, "connects_to.pool", "unknown key"),
    ({"trim_batch_size": 0}, "trim_batch_size", "at least 1"),
    ({"allowed_request_origins": "/(/"}, "allowed_request_origins", "invalid origin pattern"),
    ({"polling_intervall": 1}, "polling_intervall", "unknown key"),
    ({"max_subscriptions_per_connection": 0}, "max_subscriptions_per_connection", "at least 1"),
    ({"max_subscriptions_per_connection": 10**20}, "max_subscriptions_per_connection", "at most"),
    ({"max_commands_per_second": float("nan")}, "max_commands_per_second", "above 0"),
    ({"max_commands_per_second": float("inf")}, "max_commands_per_second", "above 0"),
    ({"max_commands_per_second": "fast"}, "max_commands_per_second", "commands per second"),
    ({"max_commands_burst": True}, "max_commands_burst", "whole number"),
])
def test_bad_values_name_the_file_environment_and_key(data: dict, key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_cable_config(data, file="config/cable.yml", env="development")
    assert (info.value.file, info.value.env, info.value.key) == ("config/cable.yml", "development", key)
    assert reason in info.value.reason


def test_database_config_and_migrate(tmp_path: Path) -> None:
    root = seeded(tmp_path)
    assert database_config(App(root, "test")) is None
    assert "cable" in [part.name for part in PARTS]
    app = App(root, "development")
    entry = database_config(app)
    assert entry is not None and entry.database.endswith("storage/development_cable.sqlite3")
    migrate_all(app)
    assert "0001_create_cable_messages" in applied_versions(connect(entry))
    again = [version for result in migrate_all(app) for version in result.applied]
    assert "0001_create_cable_messages" not in again  # a second run applies nothing new


def test_install_writes_the_cable_migrations(tmp_path: Path) -> None:
    written, _ = install(tmp_path)
    assert tmp_path / "db" / "cable_migrate" / "0001_create_cable_messages.sql" in written
    assert (tmp_path / "config" / "cable.yml").read_text() == SEED.read_text()


def test_a_missing_table_is_reported_with_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from solidstack.cable import build_pubsub
    from solidstack.db import DatabaseError

    root = seeded(tmp_path)
    (root / "storage").mkdir()
    app = App(root, "development")
    pubsub = build_pubsub(load_cable_config(app), app)
    try:
        with pytest.raises(DatabaseError, match="solidstack db migrate"):
            pubsub.broadcast("s", 1)
    finally:
        pubsub.close()
