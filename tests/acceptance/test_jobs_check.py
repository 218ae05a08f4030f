"""`solidstack jobs check` refuses what `solidstack jobs` would refuse, and opens every database (issue 11 item 10).

It said "ok" for `adapter: mysql2` and for databases never migrated, which `jobs` then refused or crashed on.
The real CLI, as a subprocess.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

DATABASE_YML = """\
test:
  queue:
    adapter: {adapter}
    database: storage/test_queue.sqlite3
  cache:
    adapter: sqlite3
    database: storage/test_cache.sqlite3
  cable:
    adapter: sqlite3
    database: storage/test_cable.sqlite3
"""


def run(jobs_app, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "solidstack", "jobs", *args], cwd=jobs_app.root,
                          env=jobs_app.env(), capture_output=True, text=True, timeout=60)


def test_check_opens_each_database_and_says_ok_when_all_are_migrated(jobs_app) -> None:
    result = run(jobs_app, "check")
    assert result.returncode == 0, result.stderr
    for part in ("queue", "cache"):  # cable's test adapter keeps no database
        assert f"{part} database: {jobs_app.root / 'storage' / f'test_{part}.sqlite3'}: migrated" in result.stdout
    assert result.stdout.strip().endswith("ok")


def test_an_unsupported_adapter_fails_check_as_it_fails_jobs(jobs_app) -> None:
    (jobs_app.root / "config" / "database.yml").write_text(DATABASE_YML.format(adapter="mysql2"))
    check = run(jobs_app, "check")
    assert check.returncode == 2, check.stdout  # a configuration error (decision 0800)
    assert "adapter 'mysql2'" in check.stderr and "database.yml [test] queue.adapter" in check.stderr
    assert "ok" not in check.stdout.split()
    started = jobs_app.start()
    code, output = started.wait(timeout=30), jobs_app.output(started)
    assert code == 2 and "adapter 'mysql2'" in output  # the same reason from `jobs`


def test_databases_never_migrated_fail_check_and_are_not_created(jobs_app) -> None:
    storage = jobs_app.root / "storage"
    for path in storage.iterdir():
        path.unlink()
    check = run(jobs_app, "check")
    assert check.returncode == 1, check.stdout
    for part in ("queue", "cache"):
        assert f"the {part} database {storage / f'test_{part}.sqlite3'} does not exist" in check.stderr
    assert "solidstack db migrate" in check.stderr
    assert list(storage.iterdir()) == []


def test_a_pending_migration_fails_check(jobs_app) -> None:
    folder = jobs_app.root / "db" / "queue_migrate"
    (folder / "0900_app_index.sql").write_text("CREATE INDEX app_idx ON solidstack_jobs (class_name);\n")
    check = run(jobs_app, "check")
    assert check.returncode == 1
    assert "the queue database" in check.stderr and "not migrated" in check.stderr
    assert "0900_app_index" in check.stderr


@pytest.mark.parametrize("part", ["queue", "cache"])
def test_a_file_that_is_not_a_database_fails_check(jobs_app, part: str) -> None:
    path: Path = jobs_app.root / "storage" / f"test_{part}.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.write_bytes(b"not a database\n" * 500)
    check = run(jobs_app, "check")
    assert check.returncode == 1
    assert f"{path} is not a SQLite database" in check.stderr
    assert "Traceback" not in check.stderr
