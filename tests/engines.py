"""The engines the contract suites run on: a fresh SQLite file, or a fresh PostgreSQL database per test.

PostgreSQL tests use the server at ``SOLIDSTACK_TEST_PG_URL`` (default ``postgresql://postgres@127.0.0.1:5432``,
without a database name): each test creates a database with a random name and drops it after. Where no server
answers they skip, with the reason, unless ``CI`` is set or ``SOLIDSTACK_REQUIRE_POSTGRES=1``: then they fail.

Reuse from any test folder (``tests/conftest.py`` adds this folder to ``sys.path``)::

    from engines import ENGINES, fresh_database      # or the fixtures of tests/conftest.py:
    def test_x(engine_db): ...                        # a Database, parametrized over both engines
    def test_y(engine_config): ...                    # a DatabaseConfig entry, for connect() and the CLI
    def test_z(engine_storage): ...                   # the queue's storage, migrated, on both engines
    with postgres_database() as url: ...              # a fresh database of its own, dropped after
    cluster = ThrowawayCluster()                      # a server of its own, to restart (never the shared one)
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


class ThrowawayCluster:
    """A PostgreSQL server of its own (initdb + pg_ctl in a temp dir, on a free loopback port), for tests that
    restart the server: the shared one is never restarted. Trust auth; the superuser is ``postgres``."""

    BIN = Path("/usr/lib/postgresql")

    def __init__(self) -> None:
        import shutil
        import socket
        import tempfile

        versions = sorted((p for p in self.BIN.glob("*/bin/initdb")), key=lambda p: int(p.parts[-3]))
        if not versions:
            pytest.skip("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb) to start a cluster")
        self.bin = versions[-1].parent
        self.dir = Path(tempfile.mkdtemp(prefix="solidstack-pg-"))
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self._as_postgres = os.geteuid() == 0  # initdb refuses to run as root
        if self._as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run("initdb", "-D", str(self.dir / "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self.start()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}"

    def _run(self, tool: str, *args: str) -> None:
        import subprocess

        cmd = [str(self.bin / tool), *args]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def _pg_ctl(self, action: str) -> None:
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-l", str(self.dir / "server.log"), "-w", "-t", "60",
                  "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1", "-m", "fast", action)

    def start(self) -> None:
        self._pg_ctl("start")

    def restart(self) -> None:
        self._pg_ctl("restart")

    def halt(self) -> None:
        """Stop the server and keep its data (``start()`` brings it back): an outage."""
        self._pg_ctl("stop")

    def stop(self) -> None:
        import shutil

        with contextlib.suppress(Exception):
            self._pg_ctl("stop")
        shutil.rmtree(self.dir, ignore_errors=True)


class Pgbouncer:
    """Debian's pgbouncer in transaction mode on a free loopback port, in front of the test server (skipped
    where it is not installed). Run as ``postgres`` when the tests run as root: it refuses root."""

    def __init__(self, server_port: int = 5432) -> None:
        import shutil
        import socket
        import subprocess
        import tempfile
        import time

        binary = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None)
        if binary is None:
            if postgres_required():
                pytest.fail("pgbouncer is required here (CI): apt-get install pgbouncer")
            pytest.skip("pgbouncer is not installed (apt-get install pgbouncer)")
        self.dir = Path(tempfile.mkdtemp(prefix="solidstack-pgbouncer-"))
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        (self.dir / "userlist.txt").write_text('"postgres" ""\n')
        (self.dir / "pgbouncer.ini").write_text(
            f"[databases]\n* = host=127.0.0.1 port={server_port}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\nauth_type = trust\nauth_file = {self.dir}/userlist.txt\n"
            f"pool_mode = transaction\nunix_socket_dir =\nlogfile = {self.dir}/pgbouncer.log\n"
            f"pidfile = {self.dir}/pgbouncer.pid\nmax_client_conn = 500\ndefault_pool_size = 10\n"
            "ignore_startup_parameters = extra_float_digits,options\n")
        cmd = [binary, str(self.dir / "pgbouncer.ini")]
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            for name in ("userlist.txt", "pgbouncer.ini"):
                shutil.chown(self.dir / name, "postgres", "postgres")
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"pgbouncer did not start; see {self.dir}/pgbouncer.log")

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def log(self) -> str:
        """pgbouncer's log (logins, pooler errors)."""
        path = self.dir / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        import shutil

        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except Exception:
                self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
