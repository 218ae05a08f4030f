"""Rails-format config files: the seed's files load unchanged; bad input names file, environment and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from solidstack.config import App, ConfigError, parse_duration
from solidstack.config.loader import env_section, render_erb
from solidstack.queue.config import DispatcherConfig, QueueConfig, WorkerConfig, load_queue_config


def write(root: Path, name: str, text: str) -> Path:
    path = root / "config" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize("env", ["development", "test", "production"])
def test_seed_queue_yml_loads_with_anchors_and_merges(app_root: Path, env: str) -> None:
    config = load_queue_config(App(app_root, env))
    assert config.workers == (WorkerConfig(queues=("*",), threads=3, processes=1, polling_interval=0.1),)
    assert config.dispatchers == (DispatcherConfig(polling_interval=1.0, batch_size=500),)
    assert config.adapter == "solid_queue"


def test_solid_queue_defaults_without_a_file(tmp_path: Path) -> None:
    config = load_queue_config(App(tmp_path, "development"))
    assert config == QueueConfig()
    assert config.process_heartbeat_interval == 60
    assert config.process_alive_threshold == 300
    assert config.shutdown_timeout == 5
    assert config.workers[0].threads == 3 and config.workers[0].polling_interval == 0.1
    assert config.dispatchers[0].batch_size == 500 and config.dispatchers[0].polling_interval == 1


def test_environment_chosen_by_variable(app_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(app_root, "queue.yml", "development:\n  workers: [{threads: 1}]\nproduction:\n  workers: [{threads: 7}]\n")
    monkeypatch.setenv("SOLIDSTACK_ENV", "production")
    assert load_queue_config(App(app_root)).workers[0].threads == 7
    monkeypatch.delenv("SOLIDSTACK_ENV")
    assert load_queue_config(App(app_root)).workers[0].threads == 1


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(0.1, 0.1), (5, 5.0), ("0.1.seconds", 0.1), ("1.second", 1.0), ("5.minutes", 300.0), ("1.day", 86400.0),
     ("2.weeks", 1209600.0), ("1.hour", 3600.0), ("30s", 30.0), ("2", 2.0)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["soon", "1.fortnight", -1, True, [1]])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_erb_env_lookups(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("JOB_THREADS", "9")
    monkeypatch.delenv("MISSING_X", raising=False)
    text = ('a: <%= ENV.fetch("JOB_THREADS", 1) %>\nb: <%= ENV.fetch("MISSING_X", 4) %>\n'
            'c: <%= ENV.fetch("MISSING_X") { 5 } %>\nd: "<%= ENV["MISSING_X"] %>"\ne: <%= Rails.env %>\n'
            "f: <%= 256.megabytes %>\ng: <%= 60.days.to_i %>\n")
    assert render_erb(text, "x.yml", "test") == "a: 9\nb: 4\nc: 5\nd: \"\"\ne: test\nf: 268435456\ng: 5184000\n"


def test_erb_missing_variable_and_unknown_tag_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"x\.yml: line 2: environment variable NOPE_NOT_SET is not set"):
        render_erb('a: 1\nb: <%= ENV.fetch("NOPE_NOT_SET") %>\n', "x.yml")
    with pytest.raises(ConfigError, match="unsupported ERB"):
        render_erb("a: <%= system('rm -rf /') %>", "x.yml")


def test_unknown_key_names_file_env_and_key(app_root: Path) -> None:
    path = write(app_root, "queue.yml", "test:\n  workers:\n    - queues: '*'\n      thread: 3\n")
    with pytest.raises(ConfigError) as info:
        load_queue_config(App(app_root, "test"))
    message = str(info.value)
    assert str(path) in message and "[test]" in message and "workers[0].thread" in message
    assert "unknown key" in message and "threads" in message


@pytest.mark.parametrize(
    ("yaml_text", "key", "reason"),
    [
        ("test:\n  workers: [{threads: many}]\n", "workers[0].threads", "whole number"),
        ("test:\n  workers: [{threads: 0}]\n", "workers[0].threads", "at least 1"),
        ("test:\n  workers: [{queues: 'a*b'}]\n", "workers[0].queues", "misplaced|'\\*' may only"),
        ("test:\n  workers: [{queues: '*foo'}]\n", "workers[0].queues", "'\\*' may only"),
        ("test:\n  dispatchers: [{polling_interval: soon}]\n", "dispatchers[0].polling_interval", "duration"),
        ("test:\n  workers: 3\n", "workers", "list"),
        ("test:\n  adapter: sidekiq\n", "adapter", "unknown queue adapter"),
    ],
)
def test_bad_values_are_reported_with_their_key(app_root: Path, yaml_text: str, key: str, reason: str) -> None:
    write(app_root, "queue.yml", yaml_text)
    with pytest.raises(ConfigError, match=reason) as info:
        load_queue_config(App(app_root, "test"))
    assert info.value.key == key and info.value.env == "test"


def test_broken_yaml_names_the_file(app_root: Path) -> None:
    path = write(app_root, "queue.yml", "test:\n  workers: [\n")
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        load_queue_config(App(app_root, "test"))
    assert info.value.file == str(path)


def test_seed_cable_and_recurring_files_parse(app_root: Path) -> None:
    cable = env_section(app_root / "config" / "cable.yml", "development")
    assert cable is not None and cable["connects_to"]["polling_interval"] == "0.1.seconds"
    assert env_section(app_root / "config" / "cable.yml", "test") == {"adapter": "test"}
    recurring = env_section(app_root / "config" / "recurring.yml", "production")
    assert recurring == {"magic_link_cleanup": {"class": "MagicLinkCleanupJob", "schedule": "every hour"}}
    assert env_section(app_root / "config" / "recurring.yml", "development") is None


def test_database_yml_entries(app_root: Path) -> None:
    app = App(app_root, "production")
    assert set(app.databases) == {"primary", "queue", "cache", "cable"}
    queue = app.database("queue")
    assert queue.database == str(app_root / "storage" / "production_queue.sqlite3")
    assert queue.migrations_paths == (app_root / "db" / "queue_migrate",)
    assert queue.timeout == 5.0


def test_without_database_yml_each_part_gets_its_own_file(tmp_path: Path) -> None:
    app = App(tmp_path, "development")
    assert app.database("queue").database == str(tmp_path / "storage" / "development_queue.sqlite3")
    assert app.database("primary").database == str(tmp_path / "storage" / "development.sqlite3")


def test_connects_to_an_entry_that_is_missing(app_root: Path) -> None:
    write(app_root, "queue.yml", "test:\n  connects_to: {database: {writing: jobs}}\n")
    from solidstack.queue.config import database_config

    with pytest.raises(ConfigError, match="names database 'jobs'"):
        database_config(App(app_root, "test"))


def test_single_database_section_is_primary(tmp_path: Path) -> None:
    write(tmp_path, "database.yml", "development:\n  adapter: sqlite3\n  database: storage/dev.sqlite3\n")
    app = App(tmp_path, "development")
    assert set(app.databases) == {"primary"}
    assert app.database("queue").database.endswith("development_queue.sqlite3")


def test_database_yml_unknown_key_and_adapter(tmp_path: Path) -> None:
    write(tmp_path, "database.yml", "development:\n  queue:\n    adapter: sqlite3\n    databse: x.sqlite3\n")
    with pytest.raises(ConfigError, match=r"\[development\] queue.databse: unknown key"):
        _ = App(tmp_path, "development").databases


def test_the_scheduler_section_of_queue_yml(app_root: Path) -> None:
    from solidstack.queue.config import SchedulerConfig

    assert load_queue_config(App(app_root, "development")).scheduler == SchedulerConfig(False, 5.0)
    write(app_root, "queue.yml", "development:\n  scheduler:\n    dynamic_tasks_enabled: true\n"
                                 "    polling_interval: 1.second\n")
    assert load_queue_config(App(app_root, "development")).scheduler == SchedulerConfig(True, 1.0)
    write(app_root, "queue.yml", "development:\n  scheduler:\n    dynamic_tasks: true\n")
    with pytest.raises(ConfigError, match=r"scheduler\.dynamic_tasks"):
        load_queue_config(App(app_root, "development"))
    write(app_root, "queue.yml", "development:\n  scheduler: every hour\n")
    with pytest.raises(ConfigError, match=r"scheduler.*expected a mapping"):
        load_queue_config(App(app_root, "development"))


def test_postgresql_entries_as_rails_writes_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from solidstack.db import connect

    monkeypatch.setenv("DB_HOST", "db.internal")
    write(tmp_path, "database.yml", """
default: &default
  adapter: postgresql
  host: <%= ENV.fetch("DB_HOST", "127.0.0.1") %>
  port: <%= ENV.fetch("DB_PORT", 5432) %>
  username: app
  pool: <%= ENV.fetch("RAILS_MAX_THREADS") { 5 } %>
production:
  queue:
    <<: *default
    database: app_queue
    listen: false
  cache:
    url: postgres://app:secret@db2.internal:6432/app_cache
""")
    databases = App(tmp_path, "production").databases
    queue = connect(databases["queue"])
    assert queue.dialect == "postgresql" and queue.listen is False  # type: ignore[attr-defined]
    assert queue.label == "queue database postgresql://app@db.internal:5432/app_queue"
    cache = connect(databases["cache"])  # the adapter follows the URL's scheme; the password is never shown
    assert cache.label == "cache database postgresql://app@db2.internal:6432/app_cache"
    # An adapter solidstack does not support is a configuration error, found when the file is read.
    with (tmp_path / "config" / "database.yml").open("a") as file:
        file.write("  cable:\n    <<: *default\n    adapter: postgis\n    database: app_cable\n")
    with pytest.raises(ConfigError, match=r"database.yml \[production\] cable.adapter: unsupported adapter "
                                          r"'postgis' \(solidstack supports sqlite3 and postgresql\)"):
        App(tmp_path, "production").databases  # noqa: B018


@pytest.mark.parametrize(("entry", "message"), [
    ("adapter: postgresql\n    listen: nope\n    database: x", r"queue.listen: expected true or false"),
    ("adapter: postgresql\n    pool: 0\n    database: x", r"queue.pool: .*at least 1"),
    ("adapter: postgresql", r"queue.database: a postgresql entry needs `database:` \(or `url:`\)"),
])
def test_bad_postgresql_entries_name_the_key(tmp_path: Path, entry: str, message: str) -> None:
    write(tmp_path, "database.yml", f"production:\n  queue:\n    {entry}\n")
    with pytest.raises(ConfigError, match=message):
        _ = App(tmp_path, "production").databases


def test_install_for_postgresql_writes_four_entries_on_one_server(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from solidstack.tasks import install

    root = tmp_path / "Shop-App"
    written, _ = install(root, "postgresql")
    assert root / "config" / "database.yml" in written
    monkeypatch.setenv("DB_HOST", "db.internal")
    monkeypatch.setenv("DB_PASSWORD", "s3cret")
    databases = App(root, "production").databases
    assert set(databases) == {"primary", "queue", "cache", "cable"}
    for name, entry in databases.items():
        assert entry.adapter == "postgresql"
        assert entry.options["host"] == "db.internal" and entry.options["password"] == "s3cret"
        assert entry.database == ("shop_app_production" if name == "primary" else f"shop_app_production_{name}")
    queue_migrations = sorted(p.name for p in (root / "db" / "queue_migrate").iterdir())
    assert queue_migrations[0] == "0001_create_queue_tables.sql"
    assert "BIGSERIAL" in (root / "db" / "queue_migrate" / queue_migrations[0]).read_text()
    assert install(root, "postgresql")[0] == []  # nothing overwritten
