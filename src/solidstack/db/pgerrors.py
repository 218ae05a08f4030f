"""PostgreSQL errors a user can fix, translated in one place into one line that names the entry and what to do.

libpq reports a failed connection as text without a SQLSTATE (wrong host or port, a server that is down, a
wrong password or role, a missing database): :func:`connect_failure` reads which one it is.
"""

from __future__ import annotations

import psycopg
from psycopg import errors as pgerrors

from .errors import DatabaseError, DatabaseUnavailable


def translate(exc: BaseException, *, label: str, source: str, user: str) -> BaseException:
    """A :class:`DatabaseError` for ``exc`` naming the database (``label``) and its entry (``source``);
    ``exc`` itself when it is not something a user can fix or wait out (a bug shows as it is)."""
    if isinstance(exc, DatabaseError) or not isinstance(exc, psycopg.Error):
        return exc
    where = f" ({source})" if source else ""
    reason = first_line(exc)
    failure = connect_failure(exc)
    if isinstance(exc, pgerrors.UndefinedTable):
        return DatabaseError(f"the {label} is not migrated ({reason}): run `solidstack db migrate`{where}")
    if isinstance(exc, pgerrors.InsufficientPrivilege):
        return DatabaseError(
            f"the role {user!r} lacks a right on the {label} ({reason}): grant it (GRANT ... TO {user}) "
            f"or use the role that ran `solidstack db migrate`{where}")
    if failure == "no database":
        return DatabaseError(
            f"the {label} does not exist: run `solidstack db migrate` (it creates it when the role may), "
            f"or check `database:` in {source or 'its database.yml entry'}")
    if failure == "login":
        return DatabaseError(
            f"the server refused the login to the {label} ({reason}): check `username:` and `password:`{where}")
    if isinstance(exc, psycopg.OperationalError):
        if failure == "unreachable":
            return DatabaseUnavailable(
                f"cannot connect to the {label}: {reason} (is PostgreSQL running there? check `host:` "
                f"and `port:`){where}")
        return DatabaseUnavailable(f"lost the connection to the {label}: {reason}{where}")
    return exc


def connect_failure(exc: BaseException) -> str | None:
    """What kind of connection failure ``exc`` is: libpq reports them as text, without a SQLSTATE."""
    if isinstance(exc, pgerrors.InvalidCatalogName):
        return "no database"
    if isinstance(exc, pgerrors.InvalidPassword | pgerrors.InvalidAuthorizationSpecification):
        return "login"
    if not isinstance(exc, psycopg.OperationalError) or exc.sqlstate:
        return None
    text = str(exc)
    if "FATAL:" in text and "database" in text and "does not exist" in text:
        return "no database"
    if "password authentication failed" in text or ("role" in text and "does not exist" in text) or \
            "no pg_hba.conf entry" in text or "no password supplied" in text:
        return "login"
    if text.startswith("connection failed") or "could not translate host name" in text or \
            "timeout expired" in text or "Connection refused" in text:
        return "unreachable"
    return None


def first_line(exc: BaseException) -> str:
    """The useful line of a libpq message (which repeats the host and spreads a hint over more lines)."""
    text = str(exc).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    line = lines[0]
    if "failed: " in line:
        line = line.rsplit("failed: ", 1)[1]
    return line.removeprefix("FATAL:").strip()
