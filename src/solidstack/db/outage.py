"""One log line per outage: a database that cannot be reached is said once, not once per heartbeat and poll.

A supervisor and its roles touch the database from several loops (polls, heartbeats, maintenance), each a few
times a second. While the server is down each of them fails every time; logging each failure buries the one
useful line under hundreds, with a traceback apiece. :func:`unavailable` logs the first failure of an outage as
one warning naming the database and its ``database.yml`` entry (the :class:`~.errors.DatabaseUnavailable`
message does), later ones at debug level; :func:`answered` logs, once, that it answers again. The state is per
process and per database (threads of one process share it), so each process says it once.
"""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger("solidstack.db")

_lock = threading.Lock()
#: database key -> when its outage began (``time.monotonic()``).
_down: dict[str, float] = {}


def _key(exc: BaseException) -> str:
    """Which database an error is about: its message after the reason, i.e. the entry it names, else all of it."""
    text = str(exc)
    return text.rsplit("(", 1)[-1] if text.endswith(")") else text


def unavailable(exc: BaseException, who: str = "") -> bool:
    """Note that ``exc`` (a :class:`DatabaseUnavailable`) happened; log it when it begins an outage (True)."""
    key = _key(exc)
    with _lock:
        first = key not in _down
        if first:
            _down[key] = time.monotonic()
    if first:
        log.warning("%s%s; retrying quietly until it answers", f"{who}: " if who else "", exc)
    else:
        log.debug("%s still unavailable: %s", who or "database", exc)
    return first


def answered(source: str = "") -> None:
    """The database of entry ``source`` (every database, when empty) answered again: end its outage, with one
    line."""
    if not _down:  # the common case, without the lock: nothing is down
        return
    with _lock:
        ended = [(key, since) for key, since in _down.items() if not source or key == f"{source})"]
        for key, _since in ended:
            del _down[key]
    now = time.monotonic()
    for key, since in ended:
        log.warning("the database answers again after %.1f s (%s", now - since, key)


def reset() -> None:
    """Forget every outage (tests; a forked child starts with its parent's state, which is still true)."""
    with _lock:
        _down.clear()
