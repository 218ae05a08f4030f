"""Shared fixtures: an app folder in a temp dir, configured and migrated on real SQLite files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest

import solidstack
from solidstack.config import App, DatabaseConfig
from solidstack.db import Database, SQLiteDatabase, migrate, package_migrations
from solidstack.queue.storage import QueueStorage

SEED_CONFIG = Path(str(resources.files("solidstack").joinpath("templates", "config")))

# Shared helpers (waiting.py) are imported by name, also under --import-mode=importlib (which leaves sys.path alone).
sys.path.append(str(Path(__file__).parent))

from engines import ENGINES, fresh_config, fresh_database, require_postgres  # noqa: E402

# tests/django needs Django >= 6.0, so Python >= 3.12: `make test` runs it in .venv-django (decision 0700); the
# core suite, on 3.11, leaves it out.
# (By its distribution: `import django` would find the tests/django folder on sys.path.)
try:
    from importlib.metadata import version

    collect_ignore = [] if int(version("django").split(".")[0]) >= 6 else ["django"]
except Exception:
    collect_ignore = ["django"]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(("SOLIDSTACK_", "SOLID_QUEUE_")):
            monkeypatch.delenv(name)
    yield
    solidstack._reset_parts()
    solidstack.config.app._current = None


@pytest.fixture
def app_root(tmp_path: Path) -> Path:
    """An app folder holding the seed's config files: what `solidstack install` writes, but recurring.yml as the
    seed writes it (the installed one schedules solidstack's own cleanup instead of the guide's job)."""
    root = tmp_path / "app"
    shutil.copytree(SEED_CONFIG, root / "config")
    shutil.copy(Path(__file__).parent / "seed" / "recurring.yml", root / "config" / "recurring.yml")
    return root


@pytest.fixture
def app(app_root: Path, monkeypatch: pytest.MonkeyPatch) -> App:
    """The app configured as the current one (test environment) with every database migrated."""
    from solidstack.tasks import migrate_all

    monkeypatch.setenv("SOLIDSTACK_ROOT", str(app_root))
    monkeypatch.setenv("SOLIDSTACK_ENV", "test")
    configured = solidstack.configure(app_root, "test")
    migrate_all(configured)
    return configured


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """Each engine in turn: ``sqlite``, ``postgresql`` (skipped, with the reason, where no server answers)."""
    if request.param == "postgresql":
        require_postgres()
    return str(request.param)


@pytest.fixture
def engine_config(engine: str, tmp_path: Path) -> Iterator[DatabaseConfig]:
    """A ``queue`` database.yml entry on a fresh database of each engine (a PostgreSQL one dropped after)."""
    with fresh_config(engine, tmp_path) as config:
        yield config


@pytest.fixture
def engine_db(engine: str, tmp_path: Path) -> Iterator[Database]:
    """An open, empty database of each engine, closed (and dropped) after."""
    with fresh_database(engine, tmp_path) as db:
        yield db


@pytest.fixture
def engine_storage(engine: str, tmp_path: Path) -> Iterator[QueueStorage]:
    """Queue storage on a migrated, fresh database of each engine. A test module runs on both engines with
    ``storage = engine_storage_fixture`` (see tests/queue/test_storage.py)."""
    with fresh_database(engine, tmp_path) as db:
        migrate(db, package_migrations("solidstack.queue", db.dialect))
        yield QueueStorage(db)


@pytest.fixture
def storage(tmp_path: Path) -> QueueStorage:
    """Queue storage on a migrated SQLite file of its own (no app configured)."""
    db = SQLiteDatabase(tmp_path / "queue.sqlite3")
    migrate(db, package_migrations("solidstack.queue", "sqlite"))
    return QueueStorage(db)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Kill child processes a failed test left behind: at exit, ``multiprocessing`` waits for each of them, so
    one hung child would keep the run from ever ending (CI once timed out so, after its summary line)."""
    import multiprocessing

    for child in multiprocessing.active_children():
        child.kill()
        child.join(5)


@pytest.fixture(scope="session")
def docs_site(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The documentation site, built once a session with ``mkdocs build --strict``: the build's outcome and the
    folder it wrote (tests/test_docs.py checks the build, tests/test_docs_browser.py reads the pages)."""
    site = tmp_path_factory.mktemp("site")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                            cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=300,
                            env={"PATH": "/usr/bin:/bin", "HOME": str(site.parent), "NO_MKDOCS_2_WARNING": "1"})
    return result, site
