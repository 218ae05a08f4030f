"""The dispatcher: moves scheduled jobs that are due to ready, in batches."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from solidstack.queue import events
from solidstack.queue.config import DispatcherConfig
from solidstack.queue.features.hooks import maintain as maintain_features
from solidstack.queue.storage import QueueStorage

log = logging.getLogger("solidstack.queue")


class Dispatcher:
    """Each poll moves up to ``batch_size`` due jobs; it sleeps until the next one is due, at most one interval."""

    kind = "Dispatcher"

    def __init__(self, storage: QueueStorage, config: DispatcherConfig | None = None, *,
                 name: str | None = None) -> None:
        self.storage = storage
        self.config = config or DispatcherConfig()
        self.name = name or f"dispatcher-{secrets.token_hex(5)}"
        self.process_id: int | None = None
        self._last_maintenance = float("-inf")

    @property
    def title(self) -> str:
        return f"dispatching every {self.config.polling_interval:g} s"

    def metadata(self) -> dict[str, Any]:
        return {"polling_interval": self.config.polling_interval, "batch_size": self.config.batch_size}

    def poll(self, now: float) -> float:
        if self.config.concurrency_maintenance and \
                now - self._last_maintenance >= self.config.concurrency_maintenance_interval:
            # Slots held by jobs whose process died expire; blocked jobs waiting on them are released.
            self._last_maintenance = now
            self.storage.gate.maintain(now, self.config.batch_size)
            # Batched jobs failed by process deaths are counted; lapsed unique keys go (hooks.py).
            maintain_features(self.storage, now, self.config.batch_size)
        moved = self.storage.dispatch_due(now, self.config.batch_size)
        if moved:
            log.info("dispatched %d scheduled job(s)", moved)
            events.instrument("dispatch", jobs=moved)
        if moved >= self.config.batch_size:
            return 0.0
        next_at = self.storage.next_scheduled_at()
        if next_at is None:
            return self.config.polling_interval
        return max(0.0, min(self.config.polling_interval, next_at - now))

    def shutdown(self, timeout: float) -> None:
        """Nothing in hand: a dispatch is one transaction."""
