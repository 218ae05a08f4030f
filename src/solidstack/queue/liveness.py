"""Which registered processes are dead: the judgment behind pruning (decision 0006).

A process row says where its process runs: ``hostname``, ``pid``, and in its metadata a *liveness identity*, the
machine's boot id and the inode of the process's PID namespace. Two processes may look up each other's pid only
when both identities are equal: then they share one boot of one kernel and one PID namespace, and a missing pid
means a dead process. Two containers that share a hostname (host networking, or an explicit ``hostname:``) and a
database have different PID namespaces, and a pid of one means nothing in the other; a process from before
identities were recorded has none. Any of those is judged by its heartbeat alone.

A process whose heartbeat is stale but whose supervisor is alive (its own row fresh) is left to that supervisor,
which can see and kill it (``ForkSupervisor`` does: TERM, then KILL, then its claims go back); only the
supervisor knows for certain when it is gone. Pruning never cascades from a supervisor to its supervised
processes: each row is judged on its own, as Solid Queue does (``deregister(pruned: true)``).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable
from functools import cache
from typing import Any

#: The metadata key that holds a process's liveness identity.
IDENTITY_KEY = "liveness"


@cache
def identity() -> str:
    """``<boot id>/<pid namespace inode>`` of this process ("" where /proc cannot tell: no PID namespaces there).

    Cached per process: a fork stays in its parent's namespace and boot.
    """
    try:
        with open("/proc/sys/kernel/random/boot_id") as file:
            boot_id = file.read().strip()
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return ""
    return f"{boot_id}/{namespace}"


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` names a process in this PID namespace (a zombie counts as alive until reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def row_identity(row: dict[str, Any]) -> str | None:
    """The liveness identity a process row recorded (None: none recorded, or unreadable metadata)."""
    try:
        metadata = json.loads(row.get("metadata") or "{}")
    except ValueError:
        return None
    value = metadata.get(IDENTITY_KEY) if isinstance(metadata, dict) else None
    return value if isinstance(value, str) else None


def pid_speaks_for(row: dict[str, Any]) -> bool:
    """Whether this process may judge ``row`` by its pid: same hostname and the same liveness identity."""
    return row.get("hostname") == socket.gethostname() and row_identity(row) == identity()


def dead_processes(rows: Iterable[dict[str, Any]], now: float, alive_threshold: float,
                   exclude: Iterable[int] = ()) -> list[tuple[dict[str, Any], str]]:
    """The rows of ``rows`` (all registered processes) whose process is dead, each with why.

    Dead: its pid is gone where the pid speaks for it (see :func:`pid_speaks_for`), or its heartbeat is older
    than ``alive_threshold`` and no live supervisor answers for it. ``exclude``: ids never judged (the caller's
    own and its children, which it watches itself).
    """
    rows = list(rows)
    excluded = set(exclude)
    cutoff = now - alive_threshold
    fresh = {row["id"] for row in rows if row["last_heartbeat_at"] >= cutoff}
    dead = []
    for row in rows:
        if row["id"] in excluded:
            continue
        if pid_speaks_for(row) and not pid_alive(row["pid"]):
            dead.append((row, "its pid is gone"))
        elif row["last_heartbeat_at"] < cutoff and row.get("supervisor_id") not in fresh:
            dead.append((row, f"no heartbeat for {now - row['last_heartbeat_at']:.0f} s"))
    return dead
