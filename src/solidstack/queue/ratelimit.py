"""Rate limits: at most ``to`` runs start per ``per`` seconds per key; the others wait their turn.

``@limits_rate(to=10, per=1.0, key=lambda job: job.args[0])`` on a job class. The window slides: a run may start
when fewer than ``to`` runs of its key started in the last ``per`` seconds (a log of start times per key, pruned
as it goes). A run over the limit is not failed and not counted as a run: it goes back to scheduled for the
moment the oldest start in the window leaves it, and takes its turn then.

The decision is made by the worker as it is about to perform the job, in one transaction per start: SQLite's
single writer, or on PostgreSQL the key's row in ``solidstack_rate_limits`` locked by an upsert, makes the count
and the insert one step across every process. The key, limit and period ride in the job's row (its arguments'
``meta``), so a worker needs no class attribute and a key function runs once, at enqueue.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from . import hooks

if TYPE_CHECKING:
    from .job import Job
    from .storage import QueueStorage

J = TypeVar("J", bound="type[Job]")
#: How often a start clears its key's starts that left the window.
PRUNE_ONE_IN = 1 / 16


class RateLimitKeyError(ValueError):
    """A job's rate limit key function raised or returned None; the job was not enqueued."""


@dataclass(frozen=True)
class RateLimit:
    """What ``limits_rate`` set on a job class."""

    to: int
    per: float
    key: Callable[[Any], Any] | str | None


def limits_rate(to: int, per: float | timedelta = 1.0, *, key: Callable[[Any], Any] | str | None = None
                ) -> Callable[[J], J]:
    """Class decorator: at most ``to`` runs of this class start per ``per`` seconds (or ``timedelta``), per
    ``key`` (a function of the job, e.g. ``lambda job: job.kwargs["token"]``, or a fixed string shared by
    several classes; default: the class). Jobs over the limit are rescheduled, not failed."""

    def decorate(cls: J) -> J:
        name = cls.name()
        if not isinstance(to, int) or isinstance(to, bool) or to < 1:
            raise ValueError(f"{name}: limits_rate to= must be a whole number of at least 1, got {to!r}")
        seconds = per.total_seconds() if isinstance(per, timedelta) else per
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
            raise ValueError(f"{name}: limits_rate per= must be a positive number of seconds, got {per!r}")
        if key is not None and not (callable(key) or isinstance(key, str)):
            raise TypeError(f"{name}: limits_rate key= must be a function of the job or a string, got {key!r}")
        cls._rate_limit = RateLimit(to, float(seconds), key)  # type: ignore[attr-defined]
        hooks.use_features()
        return cls

    return decorate


def rate_of(job: Job) -> list[Any] | None:
    """``[key, to, per]`` for ``job`` (stored in its row), or None when its class has no rate limit."""
    limit: RateLimit | None = getattr(type(job), "_rate_limit", None)
    if limit is None:
        return None
    name = type(job).name()
    if callable(limit.key):
        try:
            value = limit.key(job)
        except Exception as exc:
            raise RateLimitKeyError(f"{name}: its rate limit key raised {type(exc).__name__}: {exc}; "
                                    "the job was not enqueued") from exc
        if value is None:
            raise RateLimitKeyError(f"{name}: its rate limit key returned None; the job was not enqueued")
        key = f"{name}/{value}"
    else:
        key = limit.key if limit.key is not None else name
    return [key, limit.to, limit.per]


def acquire(storage: QueueStorage, key: str, to: int, per: float, now: float,
            clock: Callable[[], float] | None = None) -> float | None:
    """Record a start of ``key`` at ``now`` if fewer than ``to`` started in the last ``per`` seconds (None);
    else start nothing and return when the next slot frees. With ``clock``, ``now`` is read again once the key
    is locked: a start waiting for the lock must not be recorded at the time it began to wait (it would leave the
    window early, and let one more start in)."""
    from ._sql import feature_queries

    sql = feature_queries(storage.db)
    # Not durable (PostgreSQL: no wait for the WAL flush), as claims: a server crash may lose the last starts'
    # records, letting as many extra starts in once; every start waiting on the disk cost more than the job.
    with storage.db.transaction(durable=False) as conn:
        conn.execute(sql["rate_lock"], {"key": key, "now": now})  # PostgreSQL: the key's lock, to the commit
        if clock is not None:
            now = clock()
        full = conn.execute(sql["rate_full_at"], {"key": key, "cutoff": now - per, "offset": to - 1}).fetchone()
        if random.random() < PRUNE_ONE_IN:
            # Starts before the window only take room (the look above skips them): cleared now and then.
            conn.execute(sql["rate_prune"], {"key": key, "cutoff": now - per})
        if full is None:
            conn.execute(sql["rate_start"], {"key": key, "now": now})
            return None
    # `to` starts within the window: the oldest of those leaves it first.
    return float(full[0]) + per
