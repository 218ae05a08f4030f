"""Cable's wake-ups: the shared mechanism of :mod:`solidstack.db.wakeup`, in the ``cable`` topic.

A publisher, after its commit, wakes every listener of the database at once; polling is only the fallback.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..db.wakeup import WakeupSocket, notify
from ..db.wakeup import wakeup_dir as _wakeup_dir

__all__ = ["WakeupSocket", "notify", "wakeup_dir"]

#: Kept from before the mechanism was shared: moves cable's socket folders (the shared variable does too).
_ROOT_VAR = "SOLIDSTACK_CABLE_WAKEUP_DIR"


def wakeup_dir(database: str | os.PathLike[str]) -> Path:
    """The folder of cable's wake-up sockets for a database file."""
    return _wakeup_dir(database, "cable", root_var=_ROOT_VAR)
