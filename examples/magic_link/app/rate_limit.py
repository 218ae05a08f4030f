"""Rate limits kept in the cache, as Rails 8's ``rate_limit to:, within:, by:`` keeps them in ``Rails.cache``.

Each limit is a counter per key (an email, an IP address) that the cache creates with ``expires_in=within``:
a fixed window that starts with the first request. The cache is shared by every process of the app (it is a
database), so the limit holds across web workers. If the cache fails, ``increment`` returns ``None`` and the
request is let through: a cache outage must not lock everyone out (it is logged by the cache).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from solidstack.cache import cache


@dataclass(frozen=True)
class Limit:
    name: str
    to: int
    within: float

    def hit(self, key: str) -> bool:
        """Count one request for ``key``; ``True`` while it is within the limit."""
        count = cache.increment(f"rate-limit:{self.name}:{key}", 1, expires_in=self.within)
        return count is None or count <= self.to

    @property
    def minutes(self) -> int:
        return max(1, round(self.within / 60))


def _limit(name: str, variable: str, to: int, within: float) -> Limit:
    # "5" or "5/900" (requests / seconds) from the environment, so a deployment can tune it.
    value = os.environ.get(variable, "")
    if value:
        count, _, seconds = value.partition("/")
        to, within = int(count), float(seconds or within)
    return Limit(name, to, within)


def per_email() -> Limit:
    """Sign-in links one address may be sent (default 3 per 10 minutes): nobody's inbox gets flooded."""
    return _limit("email", "RATE_LIMIT_PER_EMAIL", 3, 600.0)


def per_ip() -> Limit:
    """Link requests one client address may make (default 20 per 10 minutes)."""
    return _limit("ip", "RATE_LIMIT_PER_IP", 20, 600.0)
