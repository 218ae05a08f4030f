"""What one socket may ask of the server: how many subscriptions it holds, how fast it sends commands.

Action Cable has no such bounds (one socket made 100,000 subscriptions: +226 MB in the server, and other
clients' latency went from 18 to 178 ms). A subscription beyond ``max_subscriptions`` is answered with
``reject_subscription``; a socket that sends frames faster than its :class:`CommandBudget` allows is sent
``disconnect`` (reason ``too_many_commands``, no reconnect) and closed. See decision 0202.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

#: The reason of the ``disconnect`` frame sent to a socket that spent its command budget.
TOO_MANY_COMMANDS = "too_many_commands"


@dataclass(frozen=True)
class ConnectionLimits:
    """Per-socket bounds (``cable.yml``: ``max_subscriptions_per_connection``, ``max_commands_per_second``,
    ``max_commands_burst``)."""

    #: Subscriptions one socket may hold at once; a Turbo page has one per ``<turbo-cable-stream-source>``.
    max_subscriptions: int = 100
    #: Frames per second a socket may send, on average.
    commands_per_second: float = 50.0
    #: Frames a socket may send at once above that rate (a page subscribing to everything when it loads).
    burst: int = 200

    def __post_init__(self) -> None:
        if self.max_subscriptions < 1 or self.burst < 1:
            raise ValueError("max_subscriptions and burst must be at least 1")
        if not (math.isfinite(self.commands_per_second) and self.commands_per_second > 0):
            raise ValueError(f"commands_per_second must be a finite number above 0, got {self.commands_per_second}")


class CommandBudget:
    """A token bucket: ``burst`` frames at once, refilled at ``rate`` per second. I/O-free; pass the clock."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.updated = now

    def spend(self, now: float) -> bool:
        """Take one frame's token; ``False`` when the socket has none left (it is over its rate)."""
        if now > self.updated:
            self.tokens = min(float(self.burst), self.tokens + (now - self.updated) * self.rate)
            self.updated = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


# -- converters for cable.yml (bounded: an absurd value is a typo, not a wish) ----------------------------------

_MAX_RATE = 1_000_000


def rate(value: Any) -> float:
    """A finite number of commands per second above 0, at most 1,000,000."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number of commands per second, got {value!r}")
    if not (math.isfinite(value) and 0 < value <= _MAX_RATE):
        raise ValueError(f"expected a number above 0 and at most {_MAX_RATE:,}, got {value!r}")
    return float(value)
