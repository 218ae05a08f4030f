"""Named SQL queries read from ``.sql`` files, one file set per dialect.

A query file holds blocks that start with ``-- name: query_name``; everything up to the next such line is the
query. Placeholders are written ``:name`` (or ``?`` for a statement bound from a sequence); a driver whose library
wants another style converts them once here.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)
_NAMED_PARAM = re.compile(r"(?<![:\w]):(\w+)")
# A ``?`` placeholder; PostgreSQL's jsonb ``?`` operators are not used in these files (jsonb_exists is).
_POSITIONAL = re.compile(r"\?")


def parse_queries(text: str) -> dict[str, str]:
    """Split the text of a query file into ``{name: sql}``."""
    queries: dict[str, str] = {}
    parts = _NAME.split(text)
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        queries[name] = body.strip().rstrip(";").strip()
    return queries


@cache
def to_pyformat(sql: str) -> str:
    """``:name`` placeholders as ``%(name)s`` and ``?`` as ``%s`` (psycopg's style); a literal ``%`` is doubled.

    A ``::type`` cast is left alone (the colon before the name is excluded). Whole-line ``--`` comments are
    dropped first: psycopg would read a placeholder inside one.
    """
    sql = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return _POSITIONAL.sub("%s", _NAMED_PARAM.sub(r"%(\1)s", sql.replace("%", "%%")))


@cache
def load_queries(package: str, dialect: str, paramstyle: str = "named") -> dict[str, str]:
    """The named queries of ``package`` (e.g. ``solidstack.queue``) for ``dialect``."""
    text = resources.files(package).joinpath("sql", dialect, "queries.sql").read_text(encoding="utf-8")
    queries = parse_queries(text)
    if paramstyle == "pyformat":
        queries = {name: to_pyformat(sql) for name, sql in queries.items()}
    return queries
