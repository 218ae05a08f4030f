"""Rows, cursors and connections as the parts see them on PostgreSQL (see :mod:`.postgresql`).

A part's storage code is written once for both engines: a row answers ``row[0]``, ``row["column"]``,
``dict(row)`` and tuple unpacking, as ``sqlite3.Row`` does; ``conn.execute`` returns a cursor to iterate or
fetch from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg


class Row:
    """A result row: ``row[0]``, ``row["column"]``, ``dict(row)``, tuple unpacking and ``==`` with a tuple."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: Sequence[Any], index: dict[str, int]) -> None:
        self._values = values
        self._index = index

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, str):
            return self._values[self._index[key]]
        return self._values[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def keys(self) -> list[str]:
        return list(self._index)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Row):
            return tuple(self._values) == tuple(other._values)
        return tuple(self._values) == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Row({dict(zip(self._index, self._values, strict=False))!r})"


#: Column indexes by the raw column names of a result (ASCII names only): built once per statement shape.
_indexes: dict[tuple[bytes, ...], dict[str, int]] = {}
_INDEXES_MAX = 512


def row_factory(cursor: Any) -> Callable[[Sequence[Any]], Row]:
    """psycopg row factory for :class:`Row`: the column index is built once per shape of result, from the raw
    names (``cursor.description`` makes a ``Column`` object per column at each call: 20 µs for a 12-column
    claim, twice a statement; decision 0075)."""
    result = cursor.pgresult
    if result is None:
        return lambda values: Row(values, {})
    names = tuple(result.fname(i) for i in range(result.nfields))
    index = _indexes.get(names)
    if index is None:
        index = {column.name: i for i, column in enumerate(cursor.description or ())}
        if all(name.isascii() for name in names):  # the same in every client encoding
            if len(_indexes) >= _INDEXES_MAX:
                _indexes.clear()
            _indexes[names] = index
    return lambda values: Row(values, index)


def has_rows(cursor: Any) -> bool:
    """Whether the statement ``cursor`` ran returned rows to fetch (as ``cursor.description``, for free)."""
    result = cursor.pgresult
    return result is not None and result.status == psycopg.pq.ExecStatus.TUPLES_OK


class Connection:
    """The connection a transaction yields: ``execute`` returns a psycopg cursor of :class:`Row`."""

    __slots__ = ("raw",)

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Any = None) -> Any:
        return self.raw.execute(sql, params or None)

    def executemany(self, sql: str, rows: Sequence[Any]) -> None:
        with self.raw.cursor() as cursor:
            cursor.executemany(sql, rows)


class Result:
    """A read's rows, fetched before its connection went back to the pool."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[Row], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def __iter__(self) -> Iterator[Row]:
        return iter(self._rows)

    def fetchall(self) -> list[Row]:
        return self._rows

    def fetchone(self) -> Row | None:
        return self._rows[0] if self._rows else None


class Reader:
    """What :meth:`PostgreSQLDatabase.connection` returns outside a transaction: each statement on a pooled
    connection in autocommit, its rows fetched at once."""

    __slots__ = ("db",)

    def __init__(self, db: Any) -> None:
        self.db = db

    def execute(self, sql: str, params: Any = None) -> Result:
        # Sent once: a write through here (the cache's, cable's broadcast) must not run twice (decision 0065).
        return self.db._autocommit(sql, params, resend=False)

    def executemany(self, sql: str, rows: Sequence[Any]) -> None:
        with self.db.transaction() as conn:
            conn.executemany(sql, rows)
