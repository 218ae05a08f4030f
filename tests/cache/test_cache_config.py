"""config/cache.yml: the seed's file loads unchanged; stores per environment; errors name file, env and key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import solidstack
from solidstack.cache import CacheConfig, DatabaseStore, MemoryStore, NullStore, build_store, load_cache_config
from solidstack.cache.config import database_config
from solidstack.config import App, ConfigError
from solidstack.tasks import install, migrate_all

SEED_CACHE_YML = Path(str(__import__("importlib").resources.files("solidstack").joinpath(
    "templates", "config", "cache.yml")))


def _app(tmp_path: Path, text: str | None = None, env: str = "development") -> App:
    (tmp_path / "config").mkdir(exist_ok=True)
    if text is None:
        shutil.copyfile(SEED_CACHE_YML, tmp_path / "config" / "cache.yml")
    else:
        (tmp_path / "config" / "cache.yml").write_text(text)
    return App(tmp_path, env)


@pytest.mark.parametrize("env", ["development", "test", "production"])
def test_seed_cache_yml_loads_verbatim(tmp_path: Path, env: str) -> None:
    assert "max_size: <%= 256.megabytes %>" in SEED_CACHE_YML.read_text()
    config = load_cache_config(_app(tmp_path, env=env))
    assert config.store == "database"
    assert config.max_size == 256 * 1024 * 1024
    assert config.namespace == env
    assert config.max_age == 14 * 86400  # commented out in the seed: Solid Cache's default
    assert config.database == "cache"


def test_seed_app_gets_a_working_cache_after_install_and_migrate(tmp_path: Path) -> None:
    install(tmp_path)
    assert (tmp_path / "db" / "cache_migrate" / "0001_create_cache_entries.sql").exists()
    app = solidstack.configure(tmp_path, "production")
    results = {result.entry: result for result in migrate_all(app)}
    assert results["cache"].applied == ["0001_create_cache_entries"]
    assert results["cache"].location.endswith("storage/production_cache.sqlite3")
    from solidstack.cache import cache

    cache.write("test", "value")
    assert cache.read("test") == "value"
    assert cache.normalize_key("test") == b"production:test"


def test_store_options_and_other_keys(tmp_path: Path) -> None:
    config = load_cache_config(_app(tmp_path, """
production:
  store: database
  connects_to:
    database:
      writing: primary
  size_estimate_samples: 500
  store_options:
    max_age: 1.day
    max_entries: 1000
    max_size: 1048576
    namespace: app
    expires_in: 5.minutes
    expiry_batch_size: 20
    expiry_method: inline
    compress: false
    busy_timeout: 0.25
""", env="production"))
    assert config == CacheConfig(store="database", database="primary", max_age=86400.0, max_entries=1000,
                                 max_size=1048576, namespace="app", expires_in=300.0, expiry_batch_size=20,
                                 expiry_method="inline", size_estimate_samples=500, compress_threshold=None,
                                 busy_timeout=0.25)


def test_store_per_environment(tmp_path: Path) -> None:
    text = "development:\n  store: memory_store\ntest:\n  store: null\nproduction:\n  database: cache\n"
    dev, test, prod = (_app(tmp_path, text, env) for env in ("development", "test", "production"))
    assert isinstance(build_store(load_cache_config(dev), dev), MemoryStore)
    assert isinstance(build_store(load_cache_config(test), test), NullStore)
    store = build_store(load_cache_config(prod), prod)
    assert isinstance(store, DatabaseStore)
    assert store.db.path == tmp_path / "storage" / "production_cache.sqlite3"
    store.close()
    assert database_config(dev) is None and database_config(test) is None
    assert database_config(prod).name == "cache"  # type: ignore[union-attr]


def test_store_override_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOLIDSTACK_CACHE_STORE", "null")
    assert load_cache_config(_app(tmp_path)).store == "null"
    monkeypatch.setenv("SOLIDSTACK_CACHE_STORE", "redis")
    with pytest.raises(ConfigError, match=r"SOLIDSTACK_CACHE_STORE.*unknown cache store 'redis'"):
        load_cache_config(_app(tmp_path))


@pytest.mark.parametrize(("text", "message"), [
    ("development:\n  store_options:\n    max_size: lots\n", r"\[development\] store_options.max_size: expected"),
    ("development:\n  store_options:\n    maxsize: 1\n", r"store_options.maxsize: unknown key"),
    ("development:\n  stor: memory\n", r"\[development\] stor: unknown key"),
    ("development:\n  store: redis\n", r"store: unknown cache store 'redis'"),
    ("development:\n  store_options:\n    serializer: marshal\n", r"serializer: unknown serializer"),
    ("development:\n  store_options:\n    serializer: pickle\n", r"store_options.serializer: .*needs a secret"),
    ("development:\n  encrypt: true\n", r"encrypt: encryption needs a key"),
    ("development:\n  databases: [a, b]\n", r"databases: sharding"),
    ("development:\n  database: cache\n  connects_to: {database: {writing: other}}\n", r"connects_to: names"),
])
def test_errors_name_file_env_and_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as error:
        load_cache_config(_app(tmp_path, text))
    assert str(tmp_path / "config" / "cache.yml") in str(error.value)


def test_secrets_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("cryptography")
    monkeypatch.setenv("SECRET_KEY_BASE", "base secret")
    monkeypatch.setenv("SOLIDSTACK_CACHE_ENCRYPTION_KEY", "an encryption key")
    app = _app(tmp_path, "development:\n  encrypt: true\n  store_options:\n    serializer: pickle\n")
    config = load_cache_config(app)
    assert config.secret == "base secret" and config.encryption_key == "an encryption key"
    assert "base secret" not in repr(config) and "an encryption key" not in repr(config)
    store = build_store(config, app)
    assert store.codec.encrypted and store.codec.serializer == "pickle"
    store.close()


def test_a_database_name_missing_from_database_yml_is_an_error(tmp_path: Path) -> None:
    app = _app(tmp_path, "development:\n  database: elsewhere\n")
    (tmp_path / "config" / "database.yml").write_text(
        "development:\n  primary:\n    adapter: sqlite3\n    database: storage/dev.sqlite3\n")
    with pytest.raises(ConfigError, match="elsewhere"):
        database_config(app)
