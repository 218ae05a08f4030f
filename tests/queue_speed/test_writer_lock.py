"""The writer lock: write transactions queue on a flock of ``<database>-writer.lock`` (see db/sqlite.py)."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from solidstack.db import SQLiteDatabase

COUNTER = r"""
import sys
from solidstack.db import SQLiteDatabase
db = SQLiteDatabase(sys.argv[1])
for _ in range(int(sys.argv[2])):
    with db.transaction() as conn:
        (value,) = conn.execute("SELECT v FROM counter").fetchone()
        conn.execute("UPDATE counter SET v = ?", (value + 1,))
"""


def make(path: Path) -> SQLiteDatabase:
    db = SQLiteDatabase(path)
    with db.transaction() as conn:
        conn.execute("CREATE TABLE counter (v INTEGER)")
        conn.execute("INSERT INTO counter VALUES (0)")
    return db


def test_a_writer_waits_for_the_lock_holder(tmp_path: Path) -> None:
    db = make(tmp_path / "w.sqlite3")
    assert db.lock_path is not None and db.lock_path.exists()
    fd = os.open(db.lock_path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as another writer would hold it
        done = threading.Event()

        def write() -> None:
            with db.transaction() as conn:
                conn.execute("UPDATE counter SET v = v + 1")
            done.set()

        thread = threading.Thread(target=write, daemon=True)
        thread.start()
        assert not done.wait(0.3)  # queued behind the holder, not failing
        fcntl.flock(fd, fcntl.LOCK_UN)
        assert done.wait(10)
        thread.join(10)
    finally:
        os.close(fd)
    assert db.query_one("SELECT v FROM counter")[0] == 1


def test_nested_transactions_and_reads_do_not_take_it_twice(tmp_path: Path) -> None:
    db = make(tmp_path / "n.sqlite3")
    with db.transaction() as conn:
        with db.transaction():
            conn.execute("UPDATE counter SET v = v + 1")
        assert db.query_one("SELECT v FROM counter")[0] == 1
    assert db.query_one("SELECT v FROM counter")[0] == 1


@pytest.mark.parametrize("lock", ["on", "off"])
def test_writers_in_several_processes_lose_no_update(tmp_path: Path, lock: str) -> None:
    path = tmp_path / f"c-{lock}.sqlite3"
    db = make(path)
    env = {**os.environ, "SOLIDSTACK_SQLITE_WRITE_LOCK": lock}
    procs = [subprocess.Popen([sys.executable, "-c", COUNTER, str(path), "300"], env=env) for _ in range(3)]
    for proc in procs:
        assert proc.wait(60) == 0
    assert db.query_one("SELECT v FROM counter")[0] == 900


def test_the_lock_can_be_switched_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOLIDSTACK_SQLITE_WRITE_LOCK", "off")
    db = make(tmp_path / "off.sqlite3")
    assert db.lock_path is None
    assert not (tmp_path / "off.sqlite3-writer.lock").exists()


def test_a_read_only_folder_falls_back_to_sqlite_alone(tmp_path: Path) -> None:
    db = make(tmp_path / "ro.sqlite3")
    lock = db.lock_path
    assert lock is not None
    # A database object whose lock file cannot be created (a folder it may not write to) still writes.
    other = SQLiteDatabase(tmp_path / "ro.sqlite3")
    other.lock_path = tmp_path / "missing-folder" / "x.lock"
    with other.transaction() as conn:
        conn.execute("UPDATE counter SET v = v + 1")
    assert other.lock_path is None
    assert db.query_one("SELECT v FROM counter")[0] == 1
