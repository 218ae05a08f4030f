"""Durations and counts in every config file: non-finite and absurd values are refused, naming file, env, key.

Issue 11 item 7: `polling_interval: .nan` spun a worker at 100% CPU, `shutdown_timeout: .inf` crashed it at stop,
`threads: 99999999999999999999` was accepted.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from solidstack.cable.config import load_cable_config
from solidstack.cache.config import load_cache_config
from solidstack.config import App, ConfigError, parse_duration
from solidstack.config.database import load_databases
from solidstack.queue.config import load_queue_config
from solidstack.queue.recurring import load_recurring_tasks

NON_FINITE = [".nan", "nan", ".inf", "-.inf", "1e999", "'1e999'", "'inf'", "'NaN'", "'infinity'"]


def write(root: Path, name: str, text: str) -> Path:
    path = root / "config" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf"), "nan", "inf", "1e999", "NaN.seconds",
                                 "9" * 400 + ".days", "99999999999999999999.years", 10**400])
def test_parse_duration_refuses_non_finite_and_absurd(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


@pytest.mark.parametrize("value", NON_FINITE)
@pytest.mark.parametrize(
    ("yaml_template", "key"),
    [
        ("test:\n  workers: [{polling_interval: %s}]\n", "workers[0].polling_interval"),
        ("test:\n  dispatchers: [{polling_interval: %s}]\n", "dispatchers[0].polling_interval"),
        ("test:\n  dispatchers: [{concurrency_maintenance_interval: %s}]\n",
         "dispatchers[0].concurrency_maintenance_interval"),
        ("test:\n  shutdown_timeout: %s\n", "shutdown_timeout"),
        ("test:\n  process_heartbeat_interval: %s\n", "process_heartbeat_interval"),
        ("test:\n  process_alive_threshold: %s\n", "process_alive_threshold"),
        ("test:\n  clear_finished_jobs_after: %s\n", "clear_finished_jobs_after"),
        ("test:\n  scheduler: {polling_interval: %s}\n", "scheduler.polling_interval"),
    ],
)
def test_queue_yml_refuses_non_finite_durations(app_root: Path, yaml_template: str, key: str, value: str) -> None:
    path = write(app_root, "queue.yml", yaml_template % value)
    with pytest.raises(ConfigError) as info:
        load_queue_config(App(app_root, "test"))
    assert (info.value.file, info.value.env, info.value.key) == (str(path), "test", key)


@pytest.mark.parametrize(
    ("yaml_text", "key"),
    [
        ("test:\n  workers: [{threads: 99999999999999999999}]\n", "workers[0].threads"),
        ("test:\n  workers: [{threads: 100000}]\n", "workers[0].threads"),
        ("test:\n  workers: [{processes: 99999999999999999999}]\n", "workers[0].processes"),
        ("test:\n  workers: [{processes: 5000}]\n", "workers[0].processes"),
        ("test:\n  dispatchers: [{batch_size: 99999999999999999999}]\n", "dispatchers[0].batch_size"),
        ("test:\n  dispatchers: [{batch_size: 100001}]\n", "dispatchers[0].batch_size"),
        ("test:\n  max_process_deaths: 99999999999999999999\n", "max_process_deaths"),
        ("test:\n  workers: [{threads: '99999999999999999999'}]\n", "workers[0].threads"),
        ("test:\n  workers: [{polling_interval: 2.days}]\n", "workers[0].polling_interval"),
        ("test:\n  shutdown_timeout: 1000000000\n", "shutdown_timeout"),
    ],
)
def test_queue_yml_refuses_absurd_counts_and_waits(app_root: Path, yaml_text: str, key: str) -> None:
    path = write(app_root, "queue.yml", yaml_text)
    with pytest.raises(ConfigError, match="at most") as info:
        load_queue_config(App(app_root, "test"))
    assert (info.value.file, info.value.env, info.value.key) == (str(path), "test", key)


def test_sane_large_values_still_load(app_root: Path) -> None:
    write(app_root, "queue.yml", "test:\n  workers: [{threads: 100, processes: 16, polling_interval: 1.hour}]\n"
          "  dispatchers: [{batch_size: 10000}]\n  shutdown_timeout: 1.hour\n"
          "  clear_finished_jobs_after: 10.years\n")
    config = load_queue_config(App(app_root, "test"))
    assert config.workers[0].threads == 100 and config.dispatchers[0].batch_size == 10000
    assert config.shutdown_timeout == 3600


@pytest.mark.parametrize(
    ("yaml_text", "key"),
    [
        ("test:\n  store_options: {max_age: .inf}\n", "store_options.max_age"),
        ("test:\n  store_options: {max_age: .nan}\n", "store_options.max_age"),
        ("test:\n  store_options: {expires_in: 1e999}\n", "store_options.expires_in"),
        ("test:\n  store_options: {busy_timeout: .nan}\n", "store_options.busy_timeout"),
        ("test:\n  store_options: {max_entries: 99999999999999999999}\n", "store_options.max_entries"),
        ("test:\n  store_options: {max_size: 99999999999999999999}\n", "store_options.max_size"),
        ("test:\n  store_options: {expiry_batch_size: 99999999999999999999}\n", "store_options.expiry_batch_size"),
        ("test:\n  size_estimate_samples: 99999999999999999999\n", "size_estimate_samples"),
    ],
)
def test_cache_yml_refuses_non_finite_and_absurd(app_root: Path, yaml_text: str, key: str) -> None:
    path = write(app_root, "cache.yml", yaml_text)
    with pytest.raises(ConfigError) as info:
        load_cache_config(App(app_root, "test"))
    assert (info.value.file, info.value.env, info.value.key) == (str(path), "test", key)


@pytest.mark.parametrize(
    ("yaml_text", "key"),
    [
        ("test:\n  adapter: solid_cable\n  polling_interval: .nan\n", "polling_interval"),
        ("test:\n  adapter: solid_cable\n  message_retention: .inf\n", "message_retention"),
        ("test:\n  adapter: solid_cable\n  connects_to: {database: {writing: cable}, polling_interval: nan}\n",
         "connects_to.polling_interval"),
        ("test:\n  adapter: solid_cable\n  trim_batch_size: 99999999999999999999\n", "trim_batch_size"),
    ],
)
def test_cable_yml_refuses_non_finite_and_absurd(app_root: Path, yaml_text: str, key: str) -> None:
    path = write(app_root, "cable.yml", yaml_text)
    with pytest.raises(ConfigError) as info:
        load_cable_config(App(app_root, "test"))
    assert (info.value.file, info.value.env, info.value.key) == (str(path), "test", key)


@pytest.mark.parametrize("value", [".nan", ".inf", "1e999", "99999999999999999999"])
def test_database_yml_refuses_non_finite_and_absurd_timeouts(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, "database.yml", f"test:\n  queue:\n    adapter: sqlite3\n    database: q.db\n"
                 f"    timeout: {value}\n")
    with pytest.raises(ConfigError) as info:
        load_databases(tmp_path, "test")
    assert (info.value.file, info.value.env, info.value.key) == (str(path), "test", "queue.timeout")


def test_recurring_yml_refuses_an_absurd_priority(app_root: Path) -> None:
    path = write(app_root, "recurring.yml", "test:\n  task:\n    command: os:getcwd\n    schedule: every hour\n"
                 "    priority: 99999999999999999999\n")
    with pytest.raises(ConfigError) as info:
        load_recurring_tasks(App(app_root, "test"))
    assert (info.value.file, info.value.env) == (str(path), "test")
    assert info.value.key is not None and "priority" in info.value.key
