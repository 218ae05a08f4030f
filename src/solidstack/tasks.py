"""App-level tasks behind the CLI: migrate every database, install the config files."""

from __future__ import annotations

import re
import shutil
import stat
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .config import App, DatabaseConfig
from .db import DatabaseError, applied_versions, connect, migrate
from .db.migrate import folder_migrations, merge, package_migrations
from .parts import PARTS


@dataclass(frozen=True)
class MigrationResult:
    entry: str
    location: str
    applied: list[str]


def _migrate_entry(config: DatabaseConfig, packages: list[str]) -> MigrationResult:
    db = connect(config)
    sources = [package_migrations(package, db.dialect) for package in packages]
    sources += [folder_migrations(folder, db.dialect) for folder in config.migrations_paths]
    applied = migrate(db, merge(*sources))
    return MigrationResult(config.name, db.location, applied)


def migrate_all(app: App) -> list[MigrationResult]:
    """Migrate the primary database (from the app's ``db/migrate``) and each part's database.

    Parts that share one database entry are migrated together into it.
    """
    return [_migrate_entry(config, packages) for config, packages in _entries(app).values()]


def _entries(app: App, *, primary: bool = True,
             chosen: dict[str, DatabaseConfig] | None = None) -> dict[str, tuple[DatabaseConfig, list[str]]]:
    """Each database entry to migrate, with the packages whose tables it holds (shared entries once).

    ``chosen`` gives a part's entry instead of the one its config file names (``jobs -c other_queue.yml``)."""
    by_entry: dict[str, tuple[DatabaseConfig, list[str]]] = {}
    main = app.database("primary")
    if primary and ("primary" in app.databases or any(folder.is_dir() for folder in main.migrations_paths)):
        by_entry["primary"] = (main, [])
    for part in PARTS:
        config = (chosen or {}).get(part.name) or part.database_config(app)
        if config is None:
            continue
        by_entry.setdefault(config.name, (config, []))[1].append(part.package)
    return by_entry


@dataclass(frozen=True)
class DatabaseStatus:
    """What ``solidstack jobs check`` found for one database entry: ``problem`` is None when all is well."""

    entry: str
    location: str
    applied: int
    problem: str | None


def check_databases(app: App, chosen: dict[str, DatabaseConfig] | None = None) -> list[DatabaseStatus]:
    """Open each part's database as the running processes will, and check it is migrated; creates nothing.

    An unsupported adapter, a missing file, a file that is not a database, a lock held too long or a pending
    migration is reported as that entry's problem, with what to do. ``chosen``: as for :func:`_entries`.
    """
    statuses = []
    for config, packages in _entries(app, primary=False, chosen=chosen).values():
        try:
            db = connect(config)
        except DatabaseError as exc:
            statuses.append(DatabaseStatus(config.name, config.database, 0, str(exc)))
            continue
        location = str(getattr(db, "path", config.database))
        if db.dialect == "sqlite" and not Path(location).exists():
            statuses.append(DatabaseStatus(config.name, location, 0, f"the {config.name} database {location} does "
                                           "not exist: run `solidstack db migrate`"))
            continue
        try:
            applied = applied_versions(db)
        except DatabaseError as exc:
            statuses.append(DatabaseStatus(config.name, location, 0, str(exc)))
            continue
        sources = [package_migrations(package, db.dialect) for package in packages]
        sources += [folder_migrations(folder) for folder in config.migrations_paths]
        pending = [m.version for m in merge(*sources) if m.version not in applied]
        problem = None
        if pending:
            problem = (f"the {config.name} database {location} is not migrated: {len(pending)} migration(s) "
                       f"pending ({', '.join(pending)}): run `solidstack db migrate`")
        statuses.append(DatabaseStatus(config.name, location, len(applied), problem))
    return statuses


#: What Python writes beside a package's files once it is installed (pip compiles ``config/environment.py``
#: into ``templates/config/__pycache__``); never part of the templates.
_NOT_TEMPLATES = ("__pycache__",)
_NOT_TEMPLATE_SUFFIXES = (".pyc", ".pyo")


def _copy_tree(source, target: Path, written: list[Path], skipped: list[Path]) -> None:  # type: ignore[no-untyped-def]
    for entry in source.iterdir():
        if entry.name in _NOT_TEMPLATES or entry.name.endswith(_NOT_TEMPLATE_SUFFIXES):
            continue
        destination = target / entry.name
        if entry.is_dir():
            _copy_tree(entry, destination, written, skipped)
            continue
        if destination.exists():
            skipped.append(destination)
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        with resources.as_file(entry) as path:
            shutil.copyfile(path, destination)
        if destination.parent.name == "bin":
            destination.chmod(destination.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        written.append(destination)


#: ``solidstack install --database NAME``: the engines a ``config/database.yml`` can be written for.
DATABASES = ("sqlite3", "postgresql")


def install(root: Path, database: str = "sqlite3") -> tuple[list[Path], list[Path]]:
    """Write the seed's files into an app folder; never overwrite one that exists.

    ``database``: ``sqlite3`` (the seed's files) or ``postgresql`` (a ``config/database.yml`` with four
    entries on one server, host, user and password from ``DB_HOST``, ``DB_USERNAME``, ``DB_PASSWORD``).
    Returns the files written and the files left as they were.
    """
    if database not in DATABASES:
        raise ValueError(f"--database must be one of {', '.join(DATABASES)}, got {database!r}")
    written: list[Path] = []
    skipped: list[Path] = []
    dialect = "sqlite"
    if database == "postgresql":
        dialect = "postgresql"
        target = root / "config" / "database.yml"
        if target.exists():
            skipped.append(target)
        else:
            app_name = re.sub(r"\W+", "_", root.resolve().name).strip("_").lower() or "app"
            template = resources.files("solidstack").joinpath("templates_database", "postgresql.yml")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(template.read_text(encoding="utf-8").replace("APP_NAME", app_name))
            written.append(target)
    _copy_tree(resources.files("solidstack").joinpath("templates"), root, written, skipped)
    for part in PARTS:
        folder = root / "db" / f"{part.name}_migrate"
        sql = resources.files(part.package).joinpath("sql")
        migrations = sql.joinpath(dialect, "migrations")
        if not migrations.is_dir():
            migrations = sql.joinpath("sqlite", "migrations")
        folder.mkdir(parents=True, exist_ok=True)
        _copy_tree(migrations, folder, written, skipped)
    return written, skipped
