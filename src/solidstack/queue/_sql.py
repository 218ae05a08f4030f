"""The queue's named SQL: ``queries.sql`` (jobs and processes) and ``controls.sql`` (concurrency, pauses,
recurring tasks, retention), one pair per dialect, loaded together."""

from __future__ import annotations

from functools import cache
from importlib import resources

from solidstack.db import Database, load_queries
from solidstack.db.queries import parse_queries, to_pyformat


@cache
def _controls(dialect: str, paramstyle: str, file: str = "controls.sql") -> dict[str, str]:
    text = resources.files("solidstack.queue").joinpath("sql", dialect, file).read_text(encoding="utf-8")
    queries = parse_queries(text)
    if paramstyle == "pyformat":
        queries = {name: to_pyformat(sql) for name, sql in queries.items()}
    return queries


def control_queries(db: Database) -> dict[str, str]:
    """The control queries for ``db``'s dialect."""
    return _controls(db.dialect, db.paramstyle)


def feature_queries(db: Database) -> dict[str, str]:
    """The opt-in features' queries (``features.sql``: batches, unique jobs, rate limits) for ``db``'s dialect."""
    return _controls(db.dialect, db.paramstyle, "features.sql")


def all_queries(db: Database) -> dict[str, str]:
    """Both files' queries for ``db``'s dialect (a name defined twice is an error)."""
    base = load_queries("solidstack.queue", db.dialect, db.paramstyle)
    controls = _controls(db.dialect, db.paramstyle)
    clash = set(base) & set(controls)
    if clash:
        raise ValueError(f"queries defined in both queries.sql and controls.sql: {sorted(clash)}")
    return {**base, **controls}
