"""The SQLite layer and migrations, on real files."""

from __future__ import annotations

import multiprocessing
import os
import re
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import solidstack
from solidstack.config import App
from solidstack.db import DatabaseError, SQLiteDatabase, applied_versions, migrate, package_migrations
from solidstack.db.migrate import Migration
from solidstack.db.sqlite import split_statements
from solidstack.tasks import install, migrate_all
from waiting import wait_for


def test_pragmas_and_one_connection_per_thread(tmp_path: Path) -> None:
    db = SQLiteDatabase(tmp_path / "a.sqlite3")
    conn = db.connection()
    assert db.connection() is conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    other: list[object] = []
    thread = threading.Thread(target=lambda: other.append(db.connection()))
    thread.start()
    thread.join()
    assert other[0] is not conn


def _closed(conn: sqlite3.Connection) -> bool:
    try:
        conn.execute("SELECT 1")
    except sqlite3.ProgrammingError:
        return True
    return False


def test_a_threads_connection_is_closed_when_the_thread_ends(tmp_path: Path) -> None:
    db = SQLiteDatabase(tmp_path / "a.sqlite3")
    seen: list[sqlite3.Connection] = []
    thread = threading.Thread(target=lambda: seen.append(db.connection()))
    thread.start()
    thread.join()
    assert wait_for(lambda: _closed(seen[0]), timeout=5)
    assert not _closed(db.connection())  # this thread's own is untouched


def test_no_query_file_uses_numbered_placeholders() -> None:
    # Python 3.12 deprecates `?1` bound from a sequence and 3.14 refuses it; named (:name) and plain `?` stay.
    root = Path(solidstack.__file__).parent
    offenders = [f"{path.relative_to(root)}:{number}" for path in root.rglob("*.sql")
                 for number, line in enumerate(path.read_text().splitlines(), 1)
                 if re.search(r"\?\d", line.split("--")[0])]
    assert offenders == []


def test_transaction_commits_rolls_back_and_nests(tmp_path: Path) -> None:
    db = SQLiteDatabase(tmp_path / "a.sqlite3")
    db.execute("CREATE TABLE t (x INTEGER)")
    with db.transaction() as conn:
        conn.execute("INSERT INTO t VALUES (1)")
        with db.transaction() as inner:
            inner.execute("INSERT INTO t VALUES (2)")
    with pytest.raises(RuntimeError), db.transaction() as conn:
        conn.execute("INSERT INTO t VALUES (3)")
        raise RuntimeError("undo")
    assert [r[0] for r in db.query("SELECT x FROM t ORDER BY x")] == [1, 2]
    assert not db.connection().in_transaction


def _child_uses_db(path: str, queue: multiprocessing.Queue) -> None:
    from solidstack.db.sqlite import _all_databases

    db = next(d for d in _all_databases if str(d.path) == path)
    conn = db.connection()
    db.execute("INSERT INTO t VALUES (?)", (os.getpid(),))
    queue.put(id(conn))


def test_connection_is_reopened_after_fork(tmp_path: Path) -> None:
    db = SQLiteDatabase(tmp_path / "a.sqlite3")
    db.execute("CREATE TABLE t (x INTEGER)")
    parent_conn = db.connection()
    ctx = multiprocessing.get_context("fork")
    results: multiprocessing.Queue = ctx.Queue()
    child = ctx.Process(target=_child_uses_db, args=(str(db.path), results))
    child.start()
    child.join(10)
    if child.exitcode is None:
        child.kill()  # never leave a hung child behind: pytest would wait for it at exit
        child.join(5)
    assert child.exitcode == 0
    assert results.get(timeout=5) != id(parent_conn)
    assert db.query_one("SELECT COUNT(*) FROM t")[0] == 1
    assert db.connection() is parent_conn  # the parent's own connection is untouched


# In a fresh interpreter, so that no thread left by another test is inside SQLite at a fork.
FORK_WHILE_CHECKPOINTING = """
import os, sys, time
from pathlib import Path
import solidstack.db.sqlite as sqlite
import solidstack.db.sqlite_checkpoint as checkpointer
checkpointer.CHECKPOINT_INTERVAL = 0.0005  # the checkpointer opens and closes connections all the time
root = Path(sys.argv[1])
dbs = [sqlite.SQLiteDatabase(root / f"{i}.sqlite3") for i in range(20)]
for db in dbs:
    db.execute("CREATE TABLE t (x INTEGER)")
hung = 0
for _ in range(int(sys.argv[2])):
    for db in dbs:  # each commit leaves the checkpointer work to do
        db.execute("INSERT INTO t VALUES (1)")
    pid = os.fork()
    if pid == 0:
        dbs[0].execute("INSERT INTO t VALUES (2)")
        os._exit(0)
    deadline = time.monotonic() + 5.0  # a child that writes one row; a hung one never ends
    while not os.waitpid(pid, os.WNOHANG)[0]:
        if time.monotonic() > deadline:
            hung += 1
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            break
        time.sleep(0.001)
print(hung, dbs[0].query_one("SELECT COUNT(*) FROM t WHERE x = 2")[0])
"""


def test_fork_never_copies_a_background_thread_inside_sqlite(tmp_path: Path) -> None:
    # A fork taken while the checkpointer held one of SQLite's process-wide mutexes left the child blocked for
    # good in its first connect (16 of 300 forks hung before the fork guard).
    forks = 200
    done = subprocess.run([sys.executable, "-c", FORK_WHILE_CHECKPOINTING, str(tmp_path), str(forks)],
                          capture_output=True, text=True, timeout=100)
    assert done.returncode == 0, done.stderr
    hung, written = map(int, done.stdout.split())
    assert (hung, written) == (0, forks)


def test_a_fork_waits_for_a_background_section_and_holds_new_ones_back() -> None:
    from solidstack.db.forkguard import ForkGuard

    guard = ForkGuard()
    inside, leave, order = threading.Event(), threading.Event(), []

    def background() -> None:
        with guard.section():
            inside.set()
            leave.wait(5)
            order.append("section ended")

    thread = threading.Thread(target=background)
    thread.start()
    assert inside.wait(5)
    threading.Timer(0.2, leave.set).start()
    guard.before_fork()  # returns only once the section has ended
    order.append("forked")

    def late_section() -> None:
        with guard.section():
            order.append("late section")

    late = threading.Thread(target=late_section)
    late.start()
    late.join(0.2)
    assert late.is_alive()  # held back while the fork is under way
    guard.after_fork_in_parent()
    late.join(5)
    thread.join(5)
    assert order == ["section ended", "forked", "late section"]


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    db = SQLiteDatabase(tmp_path / "nope" / "a.sqlite3", name="queue")
    with pytest.raises(DatabaseError, match=r"queue database .*nope.* does not exist"):
        db.connection()


def test_read_only_database_is_a_clear_error_and_keeps_data(tmp_path: Path) -> None:
    # Root ignores file modes, so open the file read-only through SQLite itself.
    path = tmp_path / "a.sqlite3"
    writable = SQLiteDatabase(path)
    writable.execute("CREATE TABLE t (x INTEGER)")
    writable.execute("INSERT INTO t VALUES (1)")
    writable.close()
    import sqlite3

    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    db = SQLiteDatabase(path)
    db._local.conn, db._local.generation, db._local.depth = conn, db._generation, 0
    with pytest.raises(DatabaseError, match="read-only"):
        db.execute("INSERT INTO t VALUES (2)")
    assert conn.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 1


def test_split_statements_handles_semicolons_in_strings_and_comments() -> None:
    script = "-- a comment; here\nCREATE TABLE a (x TEXT DEFAULT ';');\nINSERT INTO a VALUES ('x;y');\n-- end\n"
    assert split_statements(script) == [
        "-- a comment; here\nCREATE TABLE a (x TEXT DEFAULT ';');",
        "INSERT INTO a VALUES ('x;y');",
    ]


def test_migrations_are_tracked_and_idempotent(tmp_path: Path) -> None:
    db = SQLiteDatabase(tmp_path / "q.sqlite3")
    migrations = package_migrations("solidstack.queue", "sqlite")
    assert migrate(db, migrations) == [m.version for m in migrations]
    assert migrate(db, migrations) == []
    assert applied_versions(db) == {m.version for m in migrations}


def test_failed_migration_names_the_file_and_applies_nothing(tmp_path: Path) -> None:
    db = SQLiteDatabase(tmp_path / "q.sqlite3")
    bad = Migration("0001_bad", "CREATE TABLE ok (x INTEGER);\nCREATE TABLE broken (;\n", "db/migrate/0001_bad.sql")
    with pytest.raises(DatabaseError, match=r"0001_bad\.sql"):
        migrate(db, [bad])
    assert db.query_one("SELECT 1 FROM sqlite_master WHERE name = 'ok'") is None
    assert applied_versions(db) == set()


def test_concurrent_migrations_apply_each_once(app_root: Path) -> None:
    code = ("from solidstack.config import App; from solidstack.tasks import migrate_all; "
            f"migrate_all(App({str(app_root)!r}, 'test'))")
    children = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True) for _ in range(4)]
    for child in children:
        _out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
    db = SQLiteDatabase(app_root / "storage" / "test_queue.sqlite3")
    assert db.query_one("SELECT COUNT(*) FROM solidstack_schema_migrations")[0] == len(
        package_migrations("solidstack.queue", "sqlite"))


def test_install_writes_seed_files_and_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "queue.yml").write_text("mine: true\n")
    written, skipped = install(tmp_path)
    names = {str(p.relative_to(tmp_path)) for p in written}
    assert {"config/cable.yml", "config/cache.yml", "config/recurring.yml", "config/database.yml", "bin/jobs",
            "config/environment.py"} <= names
    assert any(name.startswith("db/queue_migrate/0001_") for name in names)
    assert (tmp_path / "config" / "queue.yml").read_text() == "mine: true\n"
    assert tmp_path / "config" / "queue.yml" in skipped
    assert os.access(tmp_path / "bin" / "jobs", os.X_OK)
    again, skipped_again = install(tmp_path)
    assert again == [] and len(skipped_again) == len(written) + 1


def test_migrate_all_includes_primary_from_the_apps_folder(app_root: Path) -> None:
    (app_root / "db" / "migrate").mkdir(parents=True)
    (app_root / "db" / "migrate" / "0001_create_magic_links.sql").write_text(
        "CREATE TABLE magic_links (id INTEGER PRIMARY KEY, token TEXT);\n")
    results = {r.entry: r for r in migrate_all(App(app_root, "test"))}
    assert results["primary"].applied == ["0001_create_magic_links"]
    assert results["queue"].applied
    assert {r.entry: r.applied for r in migrate_all(App(app_root, "test"))}["primary"] == []


def test_app_migrations_folder_copy_is_the_same_migration(app_root: Path) -> None:
    install(app_root)
    (app_root / "db" / "queue_migrate" / "0500_app_index.sql").write_text(
        "CREATE INDEX app_idx ON solidstack_jobs (created_at);\n")
    results = {r.entry: r for r in migrate_all(App(app_root, "test"))}
    assert results["queue"].applied[-1] == "0500_app_index"
    assert results["queue"].applied.count("0001_create_queue_tables") == 1


def test_the_checkpointer_moves_the_wal_into_the_database_off_the_writers_path(tmp_path: Path) -> None:
    import time

    from solidstack.db import sqlite_checkpoint as sqlite_db

    db = SQLiteDatabase(tmp_path / "c.sqlite3")
    db.execute("CREATE TABLE t (x BLOB)")
    for _ in range(500):  # 2 MiB: far below the automatic checkpoint's threshold
        db.execute("INSERT INTO t VALUES (randomblob(4096))")
    assert (tmp_path / "c.sqlite3").stat().st_size < 1_000_000, "written into the WAL, not the file yet"
    deadline = time.monotonic() + 10 * sqlite_db.CHECKPOINT_INTERVAL
    while (tmp_path / "c.sqlite3").stat().st_size < 2_000_000 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (tmp_path / "c.sqlite3").stat().st_size >= 2_000_000


@pytest.mark.parametrize("package", ["solidstack.queue", "solidstack.cache", "solidstack.cable"])
def test_replaying_the_migrations_gives_the_checked_in_schema(package: str) -> None:
    from solidstack.db.schema import dump_schema, schema_file

    assert dump_schema(package) == schema_file(package).read_text(), (
        f"{schema_file(package)} is stale: run `python -m solidstack.db.schema {package}`")


@pytest.mark.parametrize("package", ["solidstack.queue", "solidstack.cache", "solidstack.cable"])
def test_replaying_the_postgresql_migrations_gives_the_checked_in_schema(package: str) -> None:
    from engines import require_postgres, server_url
    from solidstack.db.schema import dialects, dump_schema, schema_file

    if "postgresql" not in dialects(package):
        pytest.skip(f"{package} has no PostgreSQL migrations")
    require_postgres()
    assert dump_schema(package, "postgresql", server_url=server_url()) == \
        schema_file(package, "postgresql").read_text(), (
        f"{schema_file(package, 'postgresql')} is stale: run `python -m solidstack.db.schema {package}`")


def test_an_apps_migration_written_per_dialect_runs_its_own_dialects_file(tmp_path: Path) -> None:
    """Decision 0040: ``NNNN_title.postgresql.sql`` replaces ``NNNN_title.sql`` on PostgreSQL (same version);
    a file for another dialect is left out; without a dialect every file stands alone (as before)."""
    from solidstack.db.migrate import folder_migrations

    (tmp_path / "0001_a.sql").write_text("-- plain")
    (tmp_path / "0001_a.postgresql.sql").write_text("-- pg")
    (tmp_path / "0002_b.sqlite.sql").write_text("-- sqlite only")
    (tmp_path / "0003_c.sql").write_text("-- both")
    on_pg = folder_migrations(tmp_path, "postgresql")
    assert [(m.version, m.sql) for m in on_pg] == [("0001_a", "-- pg"), ("0003_c", "-- both")]
    on_sqlite = folder_migrations(tmp_path, "sqlite")
    assert [(m.version, m.sql) for m in on_sqlite] == [("0001_a", "-- plain"), ("0002_b", "-- sqlite only"),
                                                      ("0003_c", "-- both")]
