"""Wake-ups, whichever engine: a writer announces a change, idle listeners wake at once; polling is the floor.

:func:`wakeups` gives a topic's :class:`Wakeups` on one database. ``announce()`` is called inside the writing
transaction; ``listener()`` gives what an idle role waits on (``wait(timeout) -> bool``, ``wake()``,
``close()``), or ``None`` when this database has no wake-ups (the role then polls only).

- SQLite (one machine): a datagram to every listener's Unix socket after the commit (:mod:`.wakeup`).
- PostgreSQL (any number of machines): ``NOTIFY`` inside the transaction, delivered by the server at commit and
  never on rollback, once per transaction; one ``LISTEN`` connection per process (:mod:`.pglisten`). Off with
  ``listen: false`` in the ``database.yml`` entry.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from .base import Database

log = logging.getLogger("solidstack.db")


class Waiter(Protocol):
    """What an idle role sleeps on."""

    def wait(self, timeout: float) -> bool: ...

    def wake(self) -> None: ...

    def close(self) -> None: ...


class Wakeups:
    """A topic's wake-ups on one database (see the module's docstring)."""

    def __init__(self, db: Database, topic: str) -> None:
        self.db = db
        self.topic = topic
        self._folder: Any = None
        self.channel = ""
        if db.dialect == "sqlite":
            from .wakeup import wakeup_dir

            self._folder = wakeup_dir(db.path, topic)  # type: ignore[attr-defined]
        elif db.dialect == "postgresql" and getattr(db, "listen", False):
            self.channel = f"solidstack_{topic}"

    @property
    def enabled(self) -> bool:
        return self._folder is not None or bool(self.channel)

    def announce(self) -> None:
        """Wake the listeners once the current transaction commits (best effort: a lost wake-up costs at most
        one polling interval)."""
        if self.channel:
            self.db.notify(self.channel)  # type: ignore[attr-defined]
        elif self._folder is not None:
            self.db.after_commit(self._send)

    def _send(self) -> None:
        from .wakeup import notify

        notify(self._folder)

    def listener(self) -> Waiter | None:
        """A new waiter on this topic (None: no wake-ups here, poll only). Raises ``OSError`` when the SQLite
        socket cannot be bound."""
        if self.channel:
            from .pglisten import Listener

            return Listener.of(self.db).subscribe(self.channel)  # type: ignore[arg-type]
        if self._folder is not None:
            from .wakeup import WakeupSocket

            return WakeupSocket(self._folder)
        return None
