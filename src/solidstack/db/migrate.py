"""Numbered ``.sql`` migrations, tracked in each database, applied idempotently.

A part (``queue``, ``cache``, ``cable``) ships its migrations as ``sql/<dialect>/migrations/NNNN_title.sql``
in its package. An app may add its own in the entry's ``migrations_paths`` folder (``db/queue_migrate/`` ...,
``db/migrate/`` for the primary database). A migration's version is its file name without ``.sql``; a file in
the app's folder with the same name as a packaged one is the same migration (``solidstack install`` copies them
there so they can be read) and is applied once. Each migration runs in its own write transaction together with
the row that records it, so two processes migrating at once apply each migration exactly once (SQLite: its
write lock; PostgreSQL: an advisory lock held by the transaction).

An app's migration may be written once per dialect (decision 0040): ``NNNN_title.postgresql.sql`` (or
``.sqlite.sql``) beside ``NNNN_title.sql`` is the same migration, version ``NNNN_title``, and is what runs on that
dialect; the plain file runs on the others. SQLite's and PostgreSQL's DDL differ where it matters (an
auto-numbered key, ``REAL`` is single precision on PostgreSQL), so "portable" SQL would be wrong on one of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from .base import Database
from .errors import DatabaseError

MIGRATIONS_TABLE = "solidstack_schema_migrations"
_FILE = re.compile(r"^(\d+)_[\w.-]+\.sql$")
#: The dialects a migration file may be written for (``NNNN_title.<dialect>.sql``).
DIALECTS = ("sqlite", "postgresql")


@dataclass(frozen=True)
class Migration:
    version: str
    sql: str
    source: str

    @property
    def number(self) -> int:
        return int(self.version.split("_", 1)[0])


def package_migrations(package: str, dialect: str) -> list[Migration]:
    """The migrations a part ships, in order."""
    folder = resources.files(package).joinpath("sql", dialect, "migrations")
    if not folder.is_dir():
        raise DatabaseError(f"{package} has no {dialect} migrations: it does not run on {dialect} (yet)")
    found = [
        Migration(entry.name[:-4], entry.read_text(encoding="utf-8"), f"{package}:{entry.name}")
        for entry in folder.iterdir()
        if _FILE.match(entry.name)
    ]
    return sorted(found, key=lambda m: (m.number, m.version))


def folder_migrations(folder: Path, dialect: str | None = None) -> list[Migration]:
    """The ``NNNN_title.sql`` files of an app's migrations folder, in order (none if it does not exist).

    With ``dialect``, ``NNNN_title.<dialect>.sql`` replaces ``NNNN_title.sql`` (same version), and files written
    for another dialect are left out.
    """
    if not folder.is_dir():
        return []
    plain: dict[str, Migration] = {}
    own: dict[str, Migration] = {}
    for path in folder.iterdir():
        if path.suffix != ".sql" or not _FILE.match(path.name):
            continue
        version, _, written_for = path.stem.rpartition(".")
        if not version or written_for not in DIALECTS:
            version, written_for = path.stem, ""
        if written_for and dialect is None:
            version, written_for = path.stem, ""  # no dialect asked: every file is a migration of its own
        migration = Migration(version, path.read_text(encoding="utf-8"), str(path))
        if not written_for:
            plain[version] = migration
        elif written_for == dialect:
            own[version] = migration
    found = {**plain, **own}
    return sorted(found.values(), key=lambda m: (m.number, m.version))


def merge(*sources: Iterable[Migration]) -> list[Migration]:
    """Migrations from several sources; the first source wins for a version present in several."""
    seen: dict[str, Migration] = {}
    for source in sources:
        for migration in source:
            seen.setdefault(migration.version, migration)
    return sorted(seen.values(), key=lambda m: (m.number, m.version))


#: PostgreSQL: migrators of one database take this transaction-level advisory lock, so that concurrent ones
#: apply each migration exactly once (a second ``CREATE TABLE IF NOT EXISTS`` at the same moment can fail).
_ADVISORY_KEY = 0x50_11D_57AC  # "solidstack"


def _lock(db: Database, conn: Any) -> None:
    if db.dialect == "postgresql":
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_ADVISORY_KEY,))


def _ensure_table(db: Database) -> None:
    with db.transaction() as conn:
        _lock(db, conn)
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} ("
            "version TEXT PRIMARY KEY NOT NULL, applied_at TEXT NOT NULL)"
        )


def applied_versions(db: Database) -> set[str]:
    """Versions already applied to ``db`` (empty for a new database)."""
    if db.dialect == "postgresql":
        row = db.query_one("SELECT to_regclass(%s) IS NOT NULL AS present", (MIGRATIONS_TABLE,))
        present = bool(row and row[0])
    else:
        present = db.query_one("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                               (MIGRATIONS_TABLE,)) is not None
    if not present:
        return set()
    return {r[0] for r in db.query(f"SELECT version FROM {MIGRATIONS_TABLE}")}


def migrate(db: Database, migrations: Iterable[Migration]) -> list[str]:
    """Apply what is not applied yet; returns the versions applied now.

    Creates the database first when it is missing (a SQLite file's folder; a PostgreSQL database, when the
    role may). Each migration runs in one transaction with the row that records it.
    """
    db.create_if_missing()
    _ensure_table(db)
    done_sql = db.statement(f"SELECT 1 FROM {MIGRATIONS_TABLE} WHERE version = :version")
    record_sql = db.statement(f"INSERT INTO {MIGRATIONS_TABLE} (version, applied_at) VALUES (:version, :at)")
    applied_now: list[str] = []
    for migration in migrations:
        with db.transaction() as conn:
            _lock(db, conn)
            if conn.execute(done_sql, {"version": migration.version}).fetchone():
                continue
            try:
                db.run_script(conn, migration.sql)
            except Exception as exc:
                raise DatabaseError(
                    f"migration {migration.source} failed on the {db.label}: {exc}"
                ) from exc
            conn.execute(record_sql, {"version": migration.version, "at": datetime.now(UTC).isoformat()})
            applied_now.append(migration.version)
    return applied_now
