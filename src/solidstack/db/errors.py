"""Errors raised by the database layer."""

from __future__ import annotations


class DatabaseError(Exception):
    """A database could not be opened, written or migrated; the message names the file or entry."""


class DatabaseUnavailable(DatabaseError):
    """The server cannot be reached or the connection was lost: worth retrying after a pause."""
