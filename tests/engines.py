"""The engines the contract suites run on: a fresh SQLite file, or a fresh PostgreSQL database per test.

PostgreSQL tests use the server at ``SOLIDSTACK_TEST_PG_URL`` (default ``postgresql://postgres@127.0.0.1:5432``,
without a database name): each test creates a database with a random name and drops it after. Where no server
answers they skip, with the reason, unless ``CI`` is set or ``SOLIDSTACK_REQUIRE_POSTGRES=1``: then they fail.

Reuse from any test folder (``tests/conftest.py`` adds this folder to ``sys.path``)::

    from engines import ENGINES, fresh_database      # or the fixtures of tests/conftest.py:
    def test_x(engine_db): ...                        # a Database, parametrized over both engines
    def test_y(engine_config): ...                    # a DatabaseConfig entry, for connect() and the CLI
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from solidstack.config.database import DatabaseConfig

ENGINES = ["sqlite", "postgresql"]
URL_VAR = "SOLIDSTACK_TEST_PG_URL"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432"


def server_url() -> str:
    """The test server's URL, without a database name."""
    return os.environ.get(URL_VAR, DEFAULT_URL).rstrip("/")


def postgres_required() -> bool:
    return bool(os.environ.get("CI")) or os.environ.get("SOLIDSTACK_REQUIRE_POSTGRES") == "1"


@cache
def _unavailable() -> str | None:
    """Why PostgreSQL tests cannot run here (None when they can)."""
    try:
        import psycopg
        import psycopg_pool  # noqa: F401
    except ImportError as exc:
        return f"psycopg 3 and psycopg_pool are not installed ({exc}): pip install -e '.[postgres]'"
    try:
        psycopg.connect(f"{server_url()}/postgres", connect_timeout=3).close()
    except psycopg.Error as exc:
        return f"no PostgreSQL server answers at {server_url()} ({str(exc).strip().splitlines()[0]}); set {URL_VAR}"
    return None


def require_postgres() -> None:
    """Skip the calling test when no server answers, or fail it when PostgreSQL is mandatory (CI)."""
    reason = _unavailable()
    if reason is None:
        return
    if postgres_required():
        pytest.fail(f"PostgreSQL is required here (CI or SOLIDSTACK_REQUIRE_POSTGRES=1): {reason}")
    pytest.skip(reason)


def admin_execute(sql: str) -> None:
    """Run one statement on the server's maintenance database (CREATE/DROP DATABASE)."""
    import psycopg

    with psycopg.connect(f"{server_url()}/postgres", autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


def random_database_name(prefix: str = "sstest") -> str:
    return f"{prefix}_{secrets.token_hex(6)}"


def drop_database(name: str) -> None:
    with contextlib.suppress(Exception):
        admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def postgres_database(*, create: bool = True) -> Iterator[str]:
    """A database with a random name on the test server (created unless ``create=False``), dropped after.

    Yields its URL.
    """
    require_postgres()
    name = random_database_name()
    if create:
        admin_execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server_url()}/{name}"
    finally:
        drop_database(name)


def database_config(engine: str, tmp_path: Path, url: str = "", *, name: str = "queue",
                    **options: Any) -> DatabaseConfig:
    """A ``database.yml`` entry for ``engine``: a SQLite file in ``tmp_path``, or the PostgreSQL ``url``."""
    if engine == "sqlite":
        return DatabaseConfig(name=name, adapter="sqlite3", database=str(tmp_path / f"{name}.sqlite3"),
                              source=f"test {name} entry")
    return DatabaseConfig(name=name, adapter="postgresql", database="", source=f"test {name} entry",
                          options={"url": url, **options})


@contextlib.contextmanager
def fresh_config(engine: str, tmp_path: Path, *, name: str = "queue", **options: Any) -> Iterator[DatabaseConfig]:
    """A config entry on a fresh, empty database of ``engine`` (a PostgreSQL one is dropped after)."""
    if engine == "sqlite":
        yield database_config(engine, tmp_path, name=name)
        return
    with postgres_database() as url:
        yield database_config(engine, tmp_path, url, name=name, **options)


@contextlib.contextmanager
def fresh_database(engine: str, tmp_path: Path, *, name: str = "queue", **options: Any) -> Iterator[Any]:
    """An open :class:`~solidstack.db.Database` on a fresh, empty database of ``engine``; closed after."""
    from solidstack.db.postgresql import PostgreSQLDatabase
    from solidstack.db.sqlite import SQLiteDatabase

    with fresh_config(engine, tmp_path, name=name, **options) as config:
        if engine == "sqlite":
            db: Any = SQLiteDatabase(config.database, name=name)
        else:
            db = PostgreSQLDatabase(config.options["url"], name=name, source=config.source,
                                    listen=options.get("listen", True))
        try:
            yield db
        finally:
            db.close()


def pg_url_parts(url: str) -> dict[str, str]:
    """``host``, ``port``, ``username``, ``database`` of a URL (for writing a database.yml in a test)."""
    from psycopg.conninfo import conninfo_to_dict

    parts = conninfo_to_dict(url)
    return {"host": str(parts.get("host", "127.0.0.1")), "port": str(parts.get("port", 5432)),
            "username": str(parts.get("user", "")), "database": str(parts.get("dbname", ""))}


POSTGRES_DATABASE_YML = """
test:
  queue:
    adapter: postgresql
    host: {host}
    port: {port}
    username: {username}
    database: {database}
    migrations_paths: db/queue_migrate
{extra}
  cache:
    adapter: sqlite3
    database: storage/test_cache.sqlite3
  cable:
    adapter: sqlite3
    database: storage/test_cable.sqlite3
"""


def postgres_database_yml(url: str, **extra: object) -> str:
    """A database.yml whose queue entry is the PostgreSQL database at ``url`` (cache and cable stay on SQLite:
    their PostgreSQL SQL is another change)."""
    lines = "".join(f"    {key}: {str(value).lower() if isinstance(value, bool) else value}\n"
                    for key, value in extra.items())
    return POSTGRES_DATABASE_YML.format(**pg_url_parts(url), extra=lines.rstrip("\n"))
