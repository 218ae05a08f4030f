"""The process's pub/sub for the configured app: ``broadcast``, ``subscribe``, ``unsubscribe``.

One pub/sub object per process, built from ``config/cable.yml`` on first use, dropped by ``configure()``
and after ``fork`` (a listener thread does not survive a fork; the child builds its own).
"""

from __future__ import annotations

import atexit
import os
import threading
from typing import Any

from .. import _on_reset
from ..config import App, current_app
from ..db import connect
from .config import CableConfig, load_cable_config
from .pubsub import Callback, MemoryPubSub, PubSub, SolidCablePubSub
from .storage import CableStorage

_current: PubSub | None = None
_lock = threading.Lock()


def build_pubsub(config: CableConfig, app: App) -> PubSub:
    """A pub/sub object for ``config`` (not the process's shared one; the caller closes it)."""
    if config.adapter == "solid_cable":
        wanted_by = config.file if config.database != "cable" else None
        storage = CableStorage(connect(app.database(config.database, wanted_by=wanted_by)))
        return SolidCablePubSub(storage, polling_interval=config.polling_interval,
                                message_retention=config.message_retention, autotrim=config.autotrim,
                                trim_batch_size=config.trim_batch_size)
    return MemoryPubSub(record=config.adapter == "test")


def pubsub() -> PubSub:
    """This process's pub/sub for the current app."""
    global _current
    with _lock:
        if _current is None:
            app = current_app()
            _current = build_pubsub(load_cable_config(app), app)
        return _current


def broadcast(stream: str, message: Any) -> None:
    """Send ``message`` (a JSON value) to every subscriber of ``stream``, in every process."""
    pubsub().broadcast(stream, message)


def subscribe(stream: str, callback: Callback, *, raw: bool = False) -> None:
    """Call ``callback(message)`` in a listener thread for each message broadcast to ``stream`` from now on."""
    pubsub().subscribe(stream, callback, raw=raw)


def unsubscribe(stream: str, callback: Callback) -> None:
    """Stop calling ``callback`` for ``stream``."""
    pubsub().unsubscribe(stream, callback)


def broadcasts(stream: str) -> list[Any]:
    """What was broadcast to ``stream`` in this process (the ``test`` adapter only)."""
    current = pubsub()
    if not isinstance(current, MemoryPubSub) or not current.record:
        raise RuntimeError("broadcasts() needs the cable `test` adapter (adapter: test in config/cable.yml)")
    return current.broadcasts(stream)


@_on_reset
def reset() -> None:
    """Close and drop this process's pub/sub (``configure()`` calls this)."""
    global _current
    with _lock:
        current, _current = _current, None
    if current is not None:
        current.close()


def _forget_after_fork() -> None:
    global _current, _lock
    _current = None
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)
# Remove this process's wake-up socket on a normal exit (after kill -9, the next publisher removes it).
atexit.register(reset)
