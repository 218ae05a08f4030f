"""The queue's named SQL, one set of files per dialect: ``queries.sql`` (jobs and processes) and
``controls.sql`` (concurrency, pauses, recurring tasks, retention), loaded together; ``features.sql``,
``outcomes.sql`` and ``inspect.sql`` each by the part that uses it (:func:`file_queries`)."""

from __future__ import annotations

from functools import cache
from importlib import resources

from solidstack.db import Database, load_queries
from solidstack.db.queries import parse_queries, to_pyformat


@cache
def _file(dialect: str, paramstyle: str, file: str) -> dict[str, str]:
    text = resources.files("solidstack.queue").joinpath("sql", dialect, file).read_text(encoding="utf-8")
    queries = parse_queries(text)
    if paramstyle == "pyformat":
        queries = {name: to_pyformat(sql) for name, sql in queries.items()}
    return queries


def file_queries(db: Database, file: str) -> dict[str, str]:
    """The named queries of ``sql/<db's dialect>/<file>``, in ``db``'s parameter style (read once a process)."""
    return _file(db.dialect, db.paramstyle, file)


def control_queries(db: Database) -> dict[str, str]:
    """The control queries for ``db``'s dialect."""
    return _file(db.dialect, db.paramstyle, "controls.sql")


def feature_queries(db: Database) -> dict[str, str]:
    """The opt-in features' queries (``features.sql``: batches, unique jobs, rate limits) for ``db``'s dialect."""
    return _file(db.dialect, db.paramstyle, "features.sql")


def all_queries(db: Database) -> dict[str, str]:
    """Both files' queries for ``db``'s dialect (a name defined twice is an error)."""
    base = load_queries("solidstack.queue", db.dialect, db.paramstyle)
    controls = _file(db.dialect, db.paramstyle, "controls.sql")
    clash = set(base) & set(controls)
    if clash:
        raise ValueError(f"queries defined in both queries.sql and controls.sql: {sorted(clash)}")
    return {**base, **controls}
