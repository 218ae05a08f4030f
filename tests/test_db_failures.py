"""SQLite failures a user meets in production, reported clearly and never acknowledged as written (issue 11).

Item 8: a database file deleted or replaced under a running writer. Item 9: a file that is not a database, a
full disk. Item 11: the WAL left at its largest size after a burst. Item 12: a foreign writer holding the lock.
Real files, real processes, a real tmpfs when the tests run as root.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest

import solidstack
from solidstack.config import App
from solidstack.db import DatabaseError, SQLiteDatabase, migrate, package_migrations
from solidstack.db import sqlite_checkpoint as checkpointer
from solidstack.queue import Job, queue_storage
from solidstack.tasks import migrate_all
from waiting import wait_for

HERE = Path(__file__).parent
SEED_CONFIG = Path(str(resources.files("solidstack").joinpath("templates", "config")))


class DfJob(Job):
    def perform(self, n: int) -> None:
        pass


def make_app(root: Path, *, timeout_ms: int = 5000) -> App:
    shutil.copytree(SEED_CONFIG, root / "config")
    database_yml = root / "config" / "database.yml"
    database_yml.write_text(database_yml.read_text().replace("timeout: 5000", f"timeout: {timeout_ms}"))
    app = solidstack.configure(root, "test")
    migrate_all(app)
    return app


def queue_path(root: Path) -> Path:
    return root / "storage" / "test_queue.sqlite3"


# -- item 9: not a database, disk full --------------------------------------------------------------------


def test_a_file_that_is_not_a_database_is_named(tmp_path: Path) -> None:
    path = tmp_path / "queue.sqlite3"
    path.write_bytes(os.urandom(8192))
    db = SQLiteDatabase(path, name="queue")
    with pytest.raises(DatabaseError, match=r"queue database .*queue\.sqlite3 is not a SQLite database") as info:
        db.query("SELECT 1")
    assert "file is not a database" in str(info.value)
    with pytest.raises(DatabaseError, match="is not a SQLite database"):
        migrate(db, package_migrations("solidstack.queue", "sqlite"))


def test_an_enqueue_into_a_garbage_queue_file_names_it(tmp_path: Path) -> None:
    root = tmp_path / "app"
    make_app(root)
    solidstack.configure(root, "test")  # drop the connections to the good file
    for suffix in ("", "-wal", "-shm"):
        Path(f"{queue_path(root)}{suffix}").unlink(missing_ok=True)
    queue_path(root).write_bytes(b"this is a text file, not SQLite\n" * 200)
    with pytest.raises(DatabaseError, match=r"test_queue\.sqlite3 is not a SQLite database"):
        DfJob.perform_later(1)


def test_the_cli_reports_a_garbage_file_in_one_line(tmp_path: Path) -> None:
    root = tmp_path / "app"
    shutil.copytree(SEED_CONFIG, root / "config")
    queue_path(root).parent.mkdir(parents=True)
    queue_path(root).write_bytes(os.urandom(4096))
    result = subprocess.run([sys.executable, "-m", "solidstack.cli", "--root", str(root), "-e", "test", "db",
                             "migrate"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "test_queue.sqlite3 is not a SQLite database" in result.stderr


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs (needs root)."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        solidstack.db.close_all()
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill_until_error(db: SQLiteDatabase) -> tuple[int, DatabaseError]:
    for written in range(10_000):
        try:
            db.execute("INSERT INTO t VALUES (randomblob(2000))")
        except DatabaseError as exc:
            return written, exc
    raise AssertionError("the disk never filled")


def test_a_full_disk_is_named_and_loses_nothing_acknowledged(tiny_disk: Path) -> None:
    db = SQLiteDatabase(tiny_disk / "queue.sqlite3", name="queue")
    db.execute("CREATE TABLE t (x BLOB)")
    written, error = fill_until_error(db)
    assert written > 10
    message = str(error)
    assert "queue database" in message and str(tiny_disk / "queue.sqlite3") in message
    assert "disk is full" in message and "rolled back" in message
    db.close()
    reader = sqlite3.connect(tiny_disk / "queue.sqlite3")
    assert reader.execute("SELECT COUNT(*) FROM t").fetchone()[0] == written
    reader.close()


def test_a_full_database_max_page_count_is_named(tmp_path: Path) -> None:
    db = SQLiteDatabase(tmp_path / "cache.sqlite3", name="cache")
    db.execute("CREATE TABLE t (x BLOB)")
    db.connection().execute("PRAGMA max_page_count = 30")
    written, error = fill_until_error(db)
    assert "cache database" in str(error) and "disk is full" in str(error)
    assert db.query_one("SELECT COUNT(*) FROM t")[0] == written


# -- item 12: a foreign writer holds the lock -------------------------------------------------------------

HOLD_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
"""


def test_an_enqueue_behind_a_foreign_writer_waits_the_timeout_then_says_so(tmp_path: Path) -> None:
    root = tmp_path / "app"
    make_app(root, timeout_ms=1000)
    DfJob.perform_later(0)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(queue_path(root))], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        with pytest.raises(DatabaseError) as info:
            DfJob.perform_later(1)
        waited = time.monotonic() - started
    finally:
        holder.communicate("", timeout=30)
    message = str(info.value)
    assert "queue database" in message and "test_queue.sqlite3" in message
    assert "another process has held its write lock" in message
    assert 0.9 <= waited < 3.0, waited  # the timeout of database.yml (1 s) in all; it was 9 x that
    DfJob.perform_later(2)  # the lock is free again: writes go on
    assert queue_storage().counts()["ready"] == 2


# -- item 8: the file deleted or replaced under a running writer ------------------------------------------


class Writer:
    """The writer process of tests/_db_writer_proc.py."""

    def __init__(self, root: Path) -> None:
        env = {**os.environ, "SOLIDSTACK_ENV": "test", "PYTHONPATH": str(HERE)}
        self.proc = subprocess.Popen([sys.executable, str(HERE / "_db_writer_proc.py"), str(root)], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.read() == "ready"

    def read(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def enqueue(self, n: int) -> tuple[bool, str]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"enqueue {n}\n")
        self.proc.stdin.flush()
        status, _, rest = self.read().partition(" ")
        assert status in ("ok", "error"), (status, rest)
        return status == "ok", rest.partition(" ")[2]

    def close(self) -> None:
        self.proc.communicate("", timeout=30)


def job_ids(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {row[0] for row in conn.execute("SELECT active_job_id FROM solidstack_jobs")}
    finally:
        conn.close()


def move_away(path: Path, to: Path | None) -> None:
    """Rename (or delete, when ``to`` is None) a database with its -wal and -shm, as a careless restore does."""
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        if not source.exists():
            continue
        if to is None:
            source.unlink()
        else:
            source.rename(f"{to}{suffix}")


def test_a_replaced_database_file_refuses_the_next_write_and_loses_nothing(tmp_path: Path) -> None:
    root = tmp_path / "app"
    make_app(root)
    path = queue_path(root)
    fresh = tmp_path / "fresh.sqlite3"
    fresh_db = SQLiteDatabase(fresh)
    migrate(fresh_db, package_migrations("solidstack.queue", "sqlite"))
    fresh_db.close()
    writer = Writer(root)
    try:
        before = [writer.enqueue(n) for n in range(5)]
        assert all(ok for ok, _ in before)
        move_away(path, tmp_path / "old.sqlite3")
        fresh.rename(path)  # a backup restored over the live file
        ok, detail = writer.enqueue(5)
        assert not ok, "the write went to the old file and was acknowledged"
        assert "DatabaseError" in detail and "replaced" in detail and str(path) in detail
        after = [writer.enqueue(n) for n in range(6, 10)]  # the writer goes on, on the new file
    finally:
        writer.close()
    assert {job_id for _, job_id in before} <= job_ids(tmp_path / "old.sqlite3")
    acknowledged_after = {job_id for ok, job_id in after if ok}
    assert len(acknowledged_after) == 4
    assert acknowledged_after <= job_ids(path), "acknowledged jobs are missing from the database file"


def test_a_deleted_database_file_refuses_every_write_after(tmp_path: Path) -> None:
    root = tmp_path / "app"
    make_app(root)
    path = queue_path(root)
    writer = Writer(root)
    try:
        assert all(writer.enqueue(n)[0] for n in range(5))
        move_away(path, None)
        results = [writer.enqueue(n) for n in range(5, 60)]
    finally:
        writer.close()
    acknowledged = [detail for ok, detail in results if ok]
    assert not acknowledged, f"{len(acknowledged)} of 55 enqueues acknowledged into a deleted file"
    assert "deleted" in results[0][1] and str(path) in results[0][1]
    assert "not migrated" in results[1][1]  # the path now holds an empty file: still loud


def test_writer_threads_racing_a_replacement_lose_nothing(tmp_path: Path) -> None:
    import threading

    path = tmp_path / "q.sqlite3"
    db = SQLiteDatabase(path, name="queue")
    db.execute("CREATE TABLE t (n INTEGER PRIMARY KEY)")
    fresh = SQLiteDatabase(tmp_path / "fresh.sqlite3")
    fresh.execute("CREATE TABLE t (n INTEGER PRIMARY KEY)")
    fresh.close()
    replaced_at = [float("inf")]
    acknowledged: list[tuple[float, int]] = []
    errors: list[str] = []
    stop = threading.Event()

    def write(first: int) -> None:
        n = first
        while not stop.is_set():
            started = time.monotonic()
            try:
                db.execute("INSERT INTO t VALUES (?)", (n,))
                acknowledged.append((started, n))
            except DatabaseError as exc:
                errors.append(str(exc))
            n += 4

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    try:
        assert wait_for(lambda: len(acknowledged) > 200, timeout=20)
        move_away(path, tmp_path / "old.sqlite3")
        (tmp_path / "fresh.sqlite3").rename(path)
        replaced_at[0] = time.monotonic()
        assert wait_for(lambda: sum(1 for t, _ in acknowledged if t > replaced_at[0]) > 200, timeout=20)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=20)
    in_new = {row[0] for row in sqlite3.connect(path).execute("SELECT n FROM t")}
    late = [n for started, n in acknowledged if started > replaced_at[0]]
    assert late and set(late) <= in_new, f"{len(set(late) - in_new)} acknowledged writes lost"
    # Each thread's connection says so. A thread that reopened in the instant between the two renames found no
    # file (an empty one is created, then replaced in turn): it may be told "deleted", "not migrated", or a
    # disk I/O error from SQLite about the WAL of that empty file. Every one names the database.
    assert any("replaced" in e or "deleted" in e for e in errors), errors
    assert all(f"queue database {path}" in e for e in errors), errors


# -- item 11: the WAL is truncated once a burst of writes is over ----------------------------------------


def test_the_wal_is_truncated_after_a_burst(tmp_path: Path) -> None:
    db = SQLiteDatabase(tmp_path / "w.sqlite3")
    db.execute("CREATE TABLE t (x BLOB)")
    for _ in range(300):  # ~12 MB of WAL, below SQLite's own automatic checkpoint
        with db.transaction() as conn:
            conn.executemany("INSERT INTO t VALUES (randomblob(4000))", [()] * 10)
    wal = tmp_path / "w.sqlite3-wal"
    assert wal.stat().st_size > 4 * checkpointer.WAL_IDLE_LIMIT
    # One round checkpoints what was written; the next, with no writes, truncates.
    assert wait_for(lambda: wal.stat().st_size <= checkpointer.WAL_IDLE_LIMIT,
                    timeout=10 * checkpointer.CHECKPOINT_INTERVAL, interval=0.05), wal.stat().st_size
    assert db.query_one("SELECT COUNT(*) FROM t")[0] == 3000


def test_the_wal_stays_bounded_under_steady_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checkpointer, "WAL_SIZE_LIMIT", 2 * 2**20)
    db = SQLiteDatabase(tmp_path / "s.sqlite3")
    db.execute("CREATE TABLE t (x BLOB)")
    wal = tmp_path / "s.sqlite3-wal"
    sizes = []
    deadline = time.monotonic() + 6 * checkpointer.CHECKPOINT_INTERVAL
    while time.monotonic() < deadline:  # writes never stop: the idle rule never applies
        with db.transaction() as conn:
            conn.executemany("INSERT INTO t VALUES (randomblob(4000))", [()] * 5)
        sizes.append(wal.stat().st_size)
        time.sleep(0.002)
    # Between rounds the WAL grows by what a second of writes adds; each round cuts it back.
    assert min(sizes[len(sizes) // 2:]) < 2 * 2**20, (max(sizes), min(sizes[len(sizes) // 2:]))


def test_the_checkpointer_never_brings_a_deleted_database_back(tmp_path: Path) -> None:
    db = SQLiteDatabase(tmp_path / "gone.sqlite3")
    db.execute("CREATE TABLE t (x BLOB)")
    db.execute("INSERT INTO t VALUES (randomblob(100000))")  # leaves the checkpointer work for its next round
    move_away(db.path, None)
    time.sleep(2.5 * checkpointer.CHECKPOINT_INTERVAL)
    assert not db.path.exists(), "an empty database file was created where the deleted one was"
