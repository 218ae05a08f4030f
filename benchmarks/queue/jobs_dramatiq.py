"""The Dramatiq benchmark actor on Redis."""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from record import record

dramatiq.set_broker(RedisBroker(host="127.0.0.1", port=6379))


@dramatiq.actor(max_retries=0)
def noop(sent_ns: int) -> None:
    record(sent_ns)
