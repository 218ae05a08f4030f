"""Named SQL queries read from ``.sql`` files, one file set per dialect.

A query file holds blocks that start with ``-- name: query_name``; everything up to the next such line is the
query. Placeholders are written ``:name``; a driver whose library wants another style converts them once here.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)
_NAMED_PARAM = re.compile(r"(?<![:\w]):(\w+)")


def parse_queries(text: str) -> dict[str, str]:
    """Split the text of a query file into ``{name: sql}``."""
    queries: dict[str, str] = {}
    parts = _NAME.split(text)
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        queries[name] = body.strip().rstrip(";").strip()
    return queries


def to_pyformat(sql: str) -> str:
    """``:name`` placeholders as ``%(name)s`` (psycopg's style); a literal ``%`` is doubled."""
    return _NAMED_PARAM.sub(r"%(\1)s", sql.replace("%", "%%"))


@cache
def load_queries(package: str, dialect: str, paramstyle: str = "named") -> dict[str, str]:
    """The named queries of ``package`` (e.g. ``solidstack.queue``) for ``dialect``."""
    text = resources.files(package).joinpath("sql", dialect, "queries.sql").read_text(encoding="utf-8")
    queries = parse_queries(text)
    if paramstyle == "pyformat":
        queries = {name: to_pyformat(sql) for name, sql in queries.items()}
    return queries
