"""The interface every part is written against, whichever engine is underneath.

Two drivers implement it: :class:`~solidstack.db.sqlite.SQLiteDatabase` and
:class:`~solidstack.db.postgresql.PostgreSQLDatabase`. A part loads its named queries for ``db.dialect`` in
``db.paramstyle`` (``load_queries(package, db.dialect, db.paramstyle)``) and runs them through this interface
only, so its logic is written once. Rows support ``row[0]``, ``row["column"]`` and ``dict(row)`` on both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Connection(Protocol):
    """What :meth:`Database.transaction` yields: ``execute`` returns a cursor (iterate it, ``fetchall()``,
    ``fetchone()``, ``rowcount``)."""

    def execute(self, sql: str, params: Any = ...) -> Any: ...

    def executemany(self, sql: str, rows: Sequence[Any]) -> Any: ...


@runtime_checkable
class Database(Protocol):
    """A database of one ``database.yml`` entry, as the queue, the cache and cable use it."""

    #: ``"sqlite"`` or ``"postgresql"``: which ``sql/<dialect>/`` files a part loads.
    dialect: str
    #: How the loaded queries write placeholders: ``"named"`` (``:name``) or ``"pyformat"`` (``%(name)s``).
    paramstyle: str
    #: The entry's name (``queue``, ``cache`` ...).
    name: str
    #: Write transactions committed through this object in this process (benchmarks: commits per job).
    commits: int

    @property
    def label(self) -> str:
        """How errors name this database: ``queue database postgresql://host:5432/app_queue``."""
        ...

    @property
    def location(self) -> str:
        """Where it is: a file path, or a URL without its password."""
        ...

    def transaction(self) -> AbstractContextManager[Any]:
        """A write transaction; nested calls join the outer one. Yields a :class:`Connection`."""
        ...

    def in_transaction(self) -> bool: ...

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` after the outermost commit of this thread's transaction (dropped on rollback)."""
        ...

    def connection(self) -> Any:
        """A connection for reads outside a transaction (the transaction's own inside one)."""
        ...

    def query(self, sql: str, params: Any = ...) -> list[Any]: ...

    def query_one(self, sql: str, params: Any = ...) -> Any | None: ...

    def execute(self, sql: str, params: Any = ...) -> int:
        """One write statement in its own transaction (or the current one); the number of rows changed."""
        ...

    def run_script(self, conn: Any, script: str) -> None:
        """A multi-statement script inside the caller's transaction."""
        ...

    def array(self, values: Sequence[Any]) -> Any:
        """A list parameter, as this dialect's ``.sql`` files read one."""
        ...

    def insert_many(self, conn: Any, sql: str, rows: Sequence[Any]) -> list[int]:
        """Insert ``rows`` in the caller's transaction; their new ids, in order."""
        ...

    def statement(self, sql: str) -> str:
        """Literal SQL written with ``:name`` placeholders, in this driver's paramstyle."""
        ...

    def create_if_missing(self) -> bool:
        """Create the database itself (a file's folder, a server's database) when it does not exist."""
        ...

    def close(self) -> None: ...

