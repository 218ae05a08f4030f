"""What SQLite's failures mean for the user, as :class:`DatabaseError` naming the database (used by ``sqlite.py``).

sqlite3 reports a corrupt file, a full disk or a lock held elsewhere as a bare ``file is not a database`` or
``database or disk is full``, with no file name: in an app with four databases that says nothing about which
one, or what to do. Each failure a user can act on gets a sentence here; the rest pass through unchanged.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from .errors import DatabaseError

# Primary result codes (the low byte of sqlite_errorcode).
_IOERR, _CORRUPT, _CANTOPEN, _FULL, _NOTADB, _READONLY = 10, 11, 14, 13, 26, 8


def translate(exc: BaseException, label: str, path: Path) -> DatabaseError | None:
    """A clear error for ``exc`` raised on the database ``label`` (``None``: not one a user can fix)."""
    if not isinstance(exc, sqlite3.DatabaseError) or isinstance(exc, sqlite3.IntegrityError):
        return None
    message = str(exc)
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    if code == _READONLY or "readonly" in message:
        return DatabaseError(f"cannot write the {label}: the file is read-only")
    if message.startswith("no such table"):
        return DatabaseError(f"the {label} is not migrated ({message}): run `solidstack db migrate`")
    if code == _NOTADB or "file is not a database" in message:
        return DatabaseError(
            f"the {label} is not a SQLite database ({message}): the path in database.yml names another kind of "
            "file, or the file is damaged; restore it from a backup, or move it away and run `solidstack db "
            "migrate` to start an empty one"
        )
    if code == _CORRUPT or "malformed" in message:
        return DatabaseError(
            f"the {label} is damaged ({message}): restore it from a backup (`sqlite3 FILE .recover` may save "
            "its rows)"
        )
    if code == _FULL or "disk is full" in message:
        return DatabaseError(
            f"cannot write the {label}: the disk is full ({message}); the transaction was rolled back and "
            f"nothing of it was written. Free space on the disk holding {path.parent}"
        )
    if code == _IOERR or "disk I/O error" in message:
        return DatabaseError(f"cannot read or write the {label}: {message} (is its disk failing, full or gone?)")
    if code == _CANTOPEN or "unable to open" in message:
        return DatabaseError(f"cannot open the {label}: {message}")
    return None


def locked_error(label: str, waited: float, timeout: float) -> DatabaseError:
    """The error for a write lock that another process kept past the whole ``timeout``."""
    return DatabaseError(
        f"the {label} is locked: another process has held its write lock for {waited:.1f} s, longer than the "
        f"timeout of {timeout:g} s (the `timeout` of its database.yml entry, in milliseconds). Look for a "
        "program with an open write transaction on it (the sqlite3 shell, a backup tool, a stopped process)"
    )


def file_identity(path: Path) -> tuple[int, int] | None:
    """The (device, inode) of the file at ``path`` now; ``None`` when there is no file."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def moved_error(label: str, now: tuple[int, int] | None) -> DatabaseError:
    """The error for a database file deleted or replaced under an open connection."""
    what = "deleted" if now is None else "replaced by another file"
    return DatabaseError(
        f"the {label} was {what} while this process had it open: this write was not committed (it would have "
        "gone to the old file, which nobody reads any more). Restart the processes using it after changing or "
        "restoring a database file; this connection is reopened on the file now at that path"
    )
