"""The database interface every part is written against, on both engines: transactions, rows, ids, migrations,
and the clear errors of a PostgreSQL entry that points at the wrong place."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from engines import database_config, postgres_database, require_postgres, server_url
from solidstack.db import Database, DatabaseError, Migration, applied_versions, connect, migrate

TABLE = "CREATE TABLE t (id {pk}, v TEXT NOT NULL UNIQUE)"


def make_table(db: Database) -> None:
    pk = "INTEGER PRIMARY KEY" if db.dialect == "sqlite" else "BIGSERIAL PRIMARY KEY"
    with db.transaction() as conn:
        db.run_script(conn, TABLE.format(pk=pk))


def insert_sql(db: Database) -> str:
    sql = "INSERT INTO t (v) VALUES (?)"
    return db.statement(sql + (" RETURNING id" if db.dialect == "postgresql" else ""))


def test_rows_by_index_name_and_dict(engine_db: Database) -> None:
    make_table(engine_db)
    with engine_db.transaction() as conn:
        ids = engine_db.insert_many(conn, insert_sql(engine_db), [("a",), ("b",), ("c",)])
        single = engine_db.insert_many(conn, insert_sql(engine_db), [("d",)])
    assert ids == sorted(ids) and len(set(ids)) == 3 and single[0] > ids[-1]
    rows = engine_db.query(engine_db.statement("SELECT id, v FROM t WHERE v <> :v ORDER BY id"), {"v": "d"})
    assert [(row[0], row["v"]) for row in rows] == list(zip(ids, "abc", strict=True))
    assert dict(rows[0]) == {"id": ids[0], "v": "a"}
    (first_id, first_v), *_ = rows
    assert (first_id, first_v) == (ids[0], "a")
    assert engine_db.query_one(engine_db.statement("SELECT v FROM t WHERE id = :id"), {"id": -1}) is None
    assert engine_db.execute(engine_db.statement("UPDATE t SET v = v || 'x' WHERE id <> :id"), {"id": -1}) == 4


def test_nested_transactions_join_and_after_commit_runs_once_after_the_outer_commit(engine_db: Database) -> None:
    make_table(engine_db)
    seen: list[str] = []

    def announce() -> None:
        # Runs after the commit: another connection sees the row.
        other: list[Any] = []
        thread = threading.Thread(target=lambda: other.extend(engine_db.query("SELECT v FROM t")))
        thread.start()
        thread.join()
        seen.append(",".join(row[0] for row in other))

    commits = engine_db.commits
    with engine_db.transaction() as outer:
        outer.execute(insert_sql(engine_db), ("a",))
        with engine_db.transaction() as inner:
            assert engine_db.in_transaction()
            inner.execute(insert_sql(engine_db), ("b",))
            engine_db.after_commit(announce)
        engine_db.after_commit(announce)  # the same callback: once per transaction
        assert seen == []
    assert seen == ["a,b"]
    assert engine_db.commits == commits + 1
    assert not engine_db.in_transaction()


def test_rollback_drops_writes_and_after_commit_callbacks(engine_db: Database) -> None:
    make_table(engine_db)
    called: list[int] = []
    with pytest.raises(RuntimeError), engine_db.transaction() as conn:
        conn.execute(insert_sql(engine_db), ("a",))
        engine_db.after_commit(lambda: called.append(1))
        raise RuntimeError("boom")
    assert called == []
    assert engine_db.query("SELECT v FROM t") == []
    # The connection is usable again after the rollback.
    with engine_db.transaction() as conn:
        conn.execute(insert_sql(engine_db), ("b",))
    assert [row[0] for row in engine_db.query("SELECT v FROM t")] == ["b"]


def test_array_parameter_matches_the_dialect(engine_db: Database) -> None:
    make_table(engine_db)
    with engine_db.transaction() as conn:
        ids = engine_db.insert_many(conn, insert_sql(engine_db), [(v,) for v in "abcd"])
    where = "id IN (SELECT value FROM json_each(:ids))" if engine_db.dialect == "sqlite" else "id = ANY(:ids)"
    rows = engine_db.query(engine_db.statement(f"SELECT v FROM t WHERE {where} ORDER BY id"),
                           {"ids": engine_db.array(ids[1:3])})
    assert [row[0] for row in rows] == ["b", "c"]


def test_migrations_apply_once_even_when_run_concurrently(engine_db: Database) -> None:
    pk = "INTEGER PRIMARY KEY" if engine_db.dialect == "sqlite" else "BIGSERIAL PRIMARY KEY"
    migrations = [Migration("0001_t", TABLE.format(pk=pk), "test"),
                  Migration("0002_comment_only", "-- nothing on this engine\n", "test"),
                  Migration("0003_row", "INSERT INTO t (v) VALUES ('once');", "test")]
    errors: list[BaseException] = []
    applied: list[list[str]] = []

    def run() -> None:
        try:
            applied.append(migrate(engine_db, migrations))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(v for versions in applied for v in versions) == ["0001_t", "0002_comment_only", "0003_row"]
    assert applied_versions(engine_db) == {"0001_t", "0002_comment_only", "0003_row"}
    assert [row[0] for row in engine_db.query("SELECT v FROM t")] == ["once"]


# -- PostgreSQL entries that point at the wrong place ---------------------------------------------------------


def pg_config(tmp_path: Path, url: str, **options: Any) -> Any:
    return database_config("postgresql", tmp_path, url, **options)


def test_wrong_port_names_the_entry(tmp_path: Path) -> None:
    require_postgres()
    db = connect(pg_config(tmp_path, "postgresql://postgres@127.0.0.1:1/nothing"))
    with pytest.raises(DatabaseError, match=r"cannot connect to the queue database postgresql://postgres@127\.0\.0"
                                            r"\.1:1/nothing: .*check `host:` and `port:`.*test queue entry"):
        db.query("SELECT 1")


def test_missing_database_says_to_migrate_and_migrate_creates_it(tmp_path: Path) -> None:
    with postgres_database(create=False) as url:
        db = connect(pg_config(tmp_path, url))
        with pytest.raises(DatabaseError, match=r"does not exist: run `solidstack db migrate`.*test queue entry"):
            db.query("SELECT 1")
        assert migrate(db, [Migration("0001_t", TABLE.format(pk="BIGSERIAL PRIMARY KEY"), "test")]) == ["0001_t"]
        assert db.query("SELECT count(*) FROM t")[0][0] == 0
        db.close()


def test_unmigrated_database_says_to_migrate(tmp_path: Path) -> None:
    with postgres_database() as url:
        db = connect(pg_config(tmp_path, url))
        with pytest.raises(DatabaseError, match=r"is not migrated .*: run `solidstack db migrate`"):
            db.query("SELECT * FROM solidstack_jobs")
        with pytest.raises(DatabaseError, match=r"is not migrated"), db.transaction() as conn:
            conn.execute("SELECT * FROM solidstack_jobs")
        db.close()


def test_unknown_role_and_role_without_rights(tmp_path: Path) -> None:
    from engines import admin_execute, random_database_name

    with postgres_database() as url:
        db = connect(pg_config(tmp_path, url.replace("postgres@", "no_such_role_x@")))
        with pytest.raises(DatabaseError, match=r"refused the login .*role \"no_such_role_x\" does not exist.*"
                                                r"check `username:` and `password:`"):
            db.query("SELECT 1")
        owner = connect(pg_config(tmp_path, url, pool=2))
        with owner.transaction() as conn:
            conn.execute("CREATE TABLE private_t (id int)")
        role = random_database_name("role")
        admin_execute(f"CREATE ROLE {role} LOGIN")
        try:
            limited = connect(pg_config(tmp_path, url.replace("postgres@", f"{role}@")))
            with pytest.raises(DatabaseError, match=rf"the role '{role}' lacks a right on the queue database"):
                limited.query("SELECT * FROM private_t")
            limited.close()
            owner.close()
        finally:
            admin_execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
            admin_execute(f"DROP ROLE IF EXISTS {role}")


def test_server_url_is_reachable_for_the_suite() -> None:
    require_postgres()
    assert server_url().startswith("postgresql://")


def test_a_forked_child_opens_its_own_connections_and_leaves_the_parents_alone(engine_db: Database) -> None:
    import os

    make_table(engine_db)
    with engine_db.transaction() as conn:
        conn.execute(insert_sql(engine_db), ("parent",))
    pid = os.fork()
    if pid == 0:  # the child: write through the same object, then leave without cleanup
        code = 1
        try:
            with engine_db.transaction() as conn:
                conn.execute(insert_sql(engine_db), ("child",))
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # The parent's pooled connection still works: the child did not close it under the parent.
    with engine_db.transaction() as conn:
        conn.execute(insert_sql(engine_db), ("parent again",))
    assert sorted(row[0] for row in engine_db.query("SELECT v FROM t")) == ["child", "parent", "parent again"]


def test_pooled_connections_the_server_dropped_are_replaced_before_use(tmp_path: Path) -> None:
    """pg_terminate_backend of every pooled connection (a server restart looks the same): the next transaction
    and the next read get fresh connections instead of an error."""
    from engines import admin_execute

    with postgres_database() as url:
        db = connect(pg_config(tmp_path, url, pool=3))
        make_table(db)
        barrier = threading.Barrier(3)

        def hold() -> None:  # three connections in the pool
            with db.transaction() as conn:
                conn.execute(insert_sql(db), (f"v{threading.get_ident()}",))
                barrier.wait(10)

        threads = [threading.Thread(target=hold) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        admin_execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
                      f"'{url.rsplit('/', 1)[1]}'")
        with db.transaction() as conn:
            conn.execute(insert_sql(db), ("after",))
        assert db.query("SELECT count(*) FROM t")[0][0] == 4
        admin_execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
                      f"'{url.rsplit('/', 1)[1]}'")
        assert db.query("SELECT count(*) FROM t")[0][0] == 4
        db.close()


def test_a_write_sent_once_starts_on_a_live_connection_when_the_pooled_ones_died(tmp_path: Path) -> None:
    """``write_once`` never sends its statement twice, so it must not start on a connection that died in the
    pool: one the server closed a moment ago (within ``CHECK_IDLE_AFTER``, so no round-trip check) is seen
    closed on its socket and replaced (decision 0065)."""
    import time

    from engines import admin_execute

    with postgres_database() as url:
        db = connect(pg_config(tmp_path, url, pool=2))
        make_table(db)
        db.write_once(insert_sql(db), ("before",))
        admin_execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
                      f"'{url.rsplit('/', 1)[1]}'")
        time.sleep(0.3)  # the backends exit and close their sockets
        assert db.write_once(insert_sql(db), ("after",))[0][0] == 2
        assert sorted(row[0] for row in db.query("SELECT v FROM t")) == ["after", "before"]
        db.close()
