"""Which registered processes are dead: the judgment behind pruning (decision 0006).

A process row says where its process runs: ``hostname``, ``pid``, and in its metadata a *liveness identity*, the
machine's boot id and the inode of the process's PID namespace. Two processes may look up each other's pid only
when both identities are equal: then they share one boot of one kernel and one PID namespace, and a missing pid
means a dead process. Two containers that share a hostname (host networking, or an explicit ``hostname:``) and a
database have different PID namespaces, and a pid of one means nothing in the other; a process from before
identities were recorded has none. Any of those is judged by its heartbeat alone.

The row also records when its process started (``/proc/<pid>/stat``, clock ticks since boot): a pid that now
names another process (reused) is a dead process, and a zombie is dead too.

A process whose heartbeat is stale but whose supervisor is alive (its own row fresh) is left to that supervisor,
which can see and kill it (``ForkSupervisor`` does: TERM, then KILL, then its claims go back). A stale process
with no live supervisor whose pid speaks for it and still lives (stopped, or hung in a C call) is killed before
it is pruned: its jobs must not run elsewhere while it could still resume them (unless a fresh row shares its
pid: in async mode roles are threads of one process, and a stale one is pruned as before). Pruning never
cascades from a supervisor to its supervised processes: each row is judged on its own, as Solid Queue does
(``deregister(pruned: true)``).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
from collections.abc import Iterable
from functools import cache
from typing import Any

log = logging.getLogger("solidstack.queue")

#: The metadata key that holds a process's liveness identity.
IDENTITY_KEY = "liveness"
#: The metadata key that holds when the process started (clock ticks since boot; None where /proc cannot tell).
START_KEY = "pid_start"
#: Overrides the hostname a process row records (and compares with): several "machines" simulated on one host,
#: or a container whose kernel hostname says nothing useful. A row whose hostname differs from ours is judged by
#: its heartbeat alone, as a process on another machine.
HOSTNAME_VAR = "SOLIDSTACK_HOSTNAME"


def hostname() -> str:
    """The hostname this process records in its rows: ``SOLIDSTACK_HOSTNAME`` when set, else the kernel's."""
    return os.environ.get(HOSTNAME_VAR, "").strip() or socket.gethostname()


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


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks since boot) of ``pid``; None if it is gone or /proc cannot say."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            fields = file.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0].decode(), int(fields[19])


def start_time(pid: int) -> int | None:
    """When ``pid`` started, for the process row (None where /proc cannot tell)."""
    stat = _stat(pid)
    return stat[1] if stat else None


def _metadata(row: dict[str, Any]) -> dict[str, Any]:
    try:
        metadata = json.loads(row.get("metadata") or "{}")
    except ValueError:
        return {}
    return metadata if isinstance(metadata, dict) else {}


def row_identity(row: dict[str, Any]) -> str | None:
    """The liveness identity a process row recorded (None: none recorded, or unreadable metadata)."""
    value = _metadata(row).get(IDENTITY_KEY)
    return value if isinstance(value, str) else None


def pid_speaks_for(row: dict[str, Any]) -> bool:
    """Whether this process may judge ``row`` by its pid: same hostname and the same liveness identity."""
    return row.get("hostname") == hostname() and row_identity(row) == identity()


def alive_here(row: dict[str, Any]) -> bool:
    """Whether the process of ``row`` (whose pid speaks for it) is alive: its pid, not reused, not a zombie."""
    if not pid_alive(row["pid"]):
        return False
    recorded = _metadata(row).get(START_KEY)
    if not isinstance(recorded, int):
        return True  # no start time to tell a reused pid by
    stat = _stat(row["pid"])
    if stat is None:
        return not os.path.isdir("/proc/self")  # gone meanwhile (or no /proc: trust the pid)
    state, started = stat
    return started == recorded and state != "Z"


def _kill(row: dict[str, Any]) -> bool:
    """Send SIGKILL to the hung process of ``row``; False if it is not ours to kill.

    No waiting here (a pruner that waited for each would itself stop heartbeating): the next round finds it
    gone and prunes it then.
    """
    try:
        os.kill(row["pid"], signal.SIGKILL)
    except ProcessLookupError:
        pass
    except PermissionError:
        return False
    return True


def stopped(pid: int) -> bool:
    """Whether ``pid`` is stopped (SIGSTOP, a debugger): hung, whatever its heartbeat says."""
    stat = _stat(pid)
    return stat is not None and stat[0] in ("T", "t")


def dead_processes(rows: Iterable[dict[str, Any]], now: float, alive_threshold: float,
                   exclude: Iterable[int] = (), *, trust_heartbeats: bool = True) -> list[tuple[dict[str, Any], str]]:
    """The rows of ``rows`` (all registered processes) whose process is dead, each with why.

    Dead: its pid speaks for it (see :func:`pid_speaks_for`) and its process is gone, or its heartbeat is older
    than ``alive_threshold`` and no live supervisor answers for it. Such a process that is still alive here is
    killed instead, and pruned by the round that finds it gone. ``exclude``: ids never judged (the caller's
    own and its children, which it watches itself). ``trust_heartbeats=False``: the caller could not write its
    own heartbeat, so a stale heartbeat may only mean a database held by someone else; then only pids and
    stopped processes (the likely holder) count.
    """
    rows = list(rows)
    excluded = set(exclude)
    cutoff = now - alive_threshold
    fresh = {row["id"] for row in rows if row["last_heartbeat_at"] >= cutoff}
    # Pids that another, fresh row of this machine speaks for: an async-mode process, whose roles are threads
    # with a row each. One stale row there is a thread, not a hung process: never kill that pid.
    working = {row["pid"] for row in rows if row["id"] in fresh and pid_speaks_for(row)}
    dead = []
    for row in rows:
        if row["id"] in excluded:
            continue
        local = pid_speaks_for(row)
        if local and not alive_here(row):
            dead.append((row, "its process is gone"))
        elif row["last_heartbeat_at"] < cutoff and row.get("supervisor_id") not in fresh:
            silent = f"no heartbeat for {now - row['last_heartbeat_at']:.0f} s"
            if not trust_heartbeats and not (local and stopped(row["pid"])):
                continue
            if not local or row["pid"] == os.getpid() or row["pid"] in working:
                dead.append((row, silent))
            elif _kill(row):
                log.warning("process %s (pid %s) is hung (%s) and has no live supervisor: killed it; its jobs go "
                            "back once it is gone", row["name"], row["pid"], silent)
            else:
                log.warning("process %s (pid %s) is hung (%s) but not ours to kill; pruning it by its heartbeat",
                            row["name"], row["pid"], silent)
                dead.append((row, silent))
    return dead
