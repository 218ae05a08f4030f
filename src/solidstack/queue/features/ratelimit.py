"""Rate limits: at most ``to`` runs start per ``per`` seconds per key; the others wait their turn.

``@limits_rate(to=10, per=1.0, key=lambda job: job.args[0])`` on a job class. The window slides: a run may start
when fewer than ``to`` runs of its key started in the last ``per`` seconds (a log of start times per key, pruned
as it goes). A run over the limit is not failed and not counted as a run: it goes back to scheduled for the
moment the oldest start in the window leaves it, and takes its turn then.

The decision is made in the transaction that claims the job (:class:`ClaimLimiter`, the storage's ``on_claim``):
a job's start is its claim, handed to a thread at once (the worker hands claimed rows to idle threads within a
millisecond), and a job over the limit goes back to scheduled in that same transaction, before any thread sees
it. SQLite's single writer, or on PostgreSQL the key's row in ``solidstack_rate_limits`` locked by an upsert (keys
in sorted order), makes the count and the insert one step across every process; the start is recorded at the
clock read once the key is locked. No transaction of its own: a start costs one statement in the claim's
(decision 0050). The first rate limited job a process meets, claimed before the limiter was installed, takes
:func:`acquire`'s own transaction. The key, limit and period ride in the job's row (its arguments' ``meta``), so a
worker needs no class attribute and a key function runs once, at enqueue.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from solidstack.queue._sql import feature_queries
from solidstack.queue.features import hooks
from solidstack.queue.features.concurrency import call_key

if TYPE_CHECKING:
    from solidstack.queue.job import Job
    from solidstack.queue.storage import JobRow, QueueStorage

log = logging.getLogger("solidstack.queue")

J = TypeVar("J", bound="type[Job]")
#: How often a start clears its key's starts that left the window.
PRUNE_ONE_IN = 1 / 16
#: How many distinct meta texts a claim limiter keeps parsed (see ClaimLimiter._rated).
KNOWN_METAS = 256


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
        key = f"{name}/{call_key(job, limit.key, RateLimitKeyError, 'rate limit key')}"
    else:
        key = limit.key if limit.key is not None else name
    return [key, limit.to, limit.per]


def acquire(storage: QueueStorage, key: str, to: int, per: float, now: float,
            clock: Callable[[], float] | None = None) -> float | None:
    """Record a start of ``key`` at ``now`` if fewer than ``to`` started in the last ``per`` seconds (None);
    else start nothing and return when the next slot frees. With ``clock``, ``now`` is read again once the key
    is locked: a start waiting for the lock must not be recorded at the time it began to wait (it would leave the
    window early, and let one more start in)."""
    sql = feature_queries(storage.db)
    with storage.db.transaction() as conn:
        conn.execute(sql["rate_lock"], {"key": key, "now": now})  # PostgreSQL: the key's lock, to the commit
        if clock is not None:
            now = clock()
        if random.random() < PRUNE_ONE_IN:
            conn.execute(sql["rate_prune"], {"key": key, "to": to})  # starts never read again
        if conn.execute(sql["rate_try_start"], {"key": key, "now": now, "cutoff": now - per, "to": to}).fetchone():
            return None
        full = conn.execute(sql["rate_full_at"], {"key": key, "cutoff": now - per, "to": to}).fetchone()
        if full is None:  # cannot happen under the key's lock; a start refused is never lost
            return now
    # `to` starts within the window: the oldest of those leaves it first.
    return float(full[0]) + per


class ClaimLimiter:
    """The storage's ``on_claim`` once a rate limited job ran in this process: in the claim's transaction, each
    claimed row with a rate limit takes a start (one statement) or goes back to scheduled for when a slot frees.
    Rows without one cost a substring test. The ids admitted are kept for :meth:`admitted` (the worker's run
    then takes no start of its own)."""

    def __init__(self, storage: QueueStorage, clock: Callable[[], float] = time.time) -> None:
        self.storage = storage
        self.clock = clock
        self.sql = feature_queries(storage.db)
        self._lock_keys = storage.db.dialect != "sqlite"  # SQLite: the write transaction is the only writer
        #: PostgreSQL: the one-statement cycle admits the claimed rows itself (``rate_admit_in_cycle``, decision
        #: 0064); ``after_claim`` then only reschedules the rows it refused.
        self.in_cycle = "rate_admit_in_cycle" in self.sql
        self._admitted: set[int] = set()
        self._guard = threading.Lock()
        #: Meta texts parsed by :meth:`_rated`, with their meta and limit (``hooks._meta``'s result: not mutated).
        self._known: dict[str, tuple[dict[str, Any] | None, tuple[str, int, float] | None]] = {}

    def admitted(self, job_id: int) -> bool:
        """True (once) when the claim admitted ``job_id``."""
        try:
            self._admitted.remove(job_id)  # one C call: atomic under the GIL, no lock needed
        except KeyError:
            return False
        return True

    def _rated(self, rows: list[JobRow]) -> list[tuple[str, int, float, JobRow]]:
        rated: list[tuple[str, int, float, JobRow]] = []
        known = self._known
        for row in rows:
            arguments = row.arguments
            if '"rate":' not in arguments:
                continue
            # The jobs of a class (or key) carry the same meta text: parsed once, not once a row (decision 0072).
            # Only a meta without a trace context (those differ job by job) is kept, and only while there are
            # few: the cache is emptied when it reaches KNOWN_METAS.
            at = arguments.rfind(',"meta":')
            tail = arguments[at + 8:-1] if at >= 0 else ""
            hit = known.get(tail)
            if hit is None:
                cache = True
                try:
                    meta = json.loads(tail)  # the meta's own text (hooks._meta): same text, same meta
                except ValueError:
                    meta, cache = hooks._meta(arguments), False  # a "meta" nested in the arguments: a full parse
                if not isinstance(meta, dict):
                    meta, cache = None, False
                rate = meta.get("rate") if meta else None
                limit = (str(rate[0]), int(rate[1]), float(rate[2])) if rate else None
                if cache and meta is not None and "trace" not in meta:
                    if len(known) >= KNOWN_METAS:
                        known.clear()
                    known[tail] = (meta, limit)
            else:
                meta, limit = hit
            if meta is not None:
                hooks.parsed_meta[row.id] = (arguments, meta)  # the run takes it: one parse a row
            if limit is not None:
                rated.append((*limit, row))
        return rated

    def __call__(self, conn: Any, rows: list[JobRow], process_id: int | None) -> list[JobRow]:
        """In the claim's transaction (SQLite, and PostgreSQL's claims that take one)."""
        rated = self._rated(rows)
        if not rated:
            return rows
        refused = self._admit(conn, rated, process_id)
        return [row for row in rows if row.id not in refused] if refused else rows

    def after_claim(self, rows: list[JobRow], process_id: int | None,
                    refused: set[int] | None = None) -> list[JobRow]:
        """After PostgreSQL's one-statement cycle claimed ``rows`` (committed), before any thread sees them. The
        statement admitted their rate limited rows itself (decision 0064) and named the ones it ``refused``:
        those go back to scheduled for when a slot frees, in a transaction of their own. Rows without a rate
        limit cost a substring test each and no statement."""
        if not self.in_cycle:  # not reached (PostgreSQL has the statement); kept for a dialect without it
            rated = self._rated(rows)
            if not rated:
                return rows
            with self.storage.db.transaction() as conn:
                refused = self._admit(conn, rated, process_id)
            return [row for row in rows if row.id not in refused] if refused else rows
        if not refused:
            # All admitted by the statement: nothing to parse here (the run parses its row's meta once).
            self._admitted.update([row.id for row in rows if '"rate":' in row.arguments])
            return rows
        rated = self._rated(rows)
        self._admitted.update([row.id for *_, row in rated if row.id not in refused])
        # Refused by the statement: over the limit, or a start number taken by a concurrent claim (another
        # thread's cycle read the same last start). Decided again under the key's lock, as a claim in a
        # transaction does: those with a free slot start, the others go back to scheduled.
        with self.storage.db.transaction() as conn:
            refused = self._admit(conn, [item for item in rated if item[3].id in refused], process_id)
        return [row for row in rows if row.id not in refused] if refused else rows

    def _admit(self, conn: Any, rated: list[tuple[str, int, float, JobRow]], process_id: int | None) -> set[int]:
        """In ``conn``'s transaction, each key's rows take their starts in one statement (``rate_admit``), keys in
        sorted order (PostgreSQL: the key's row locked first, keys in one order: no lock cycle between claims);
        the rows left over go back to scheduled for when the next slot frees. Returns the ids refused."""
        sql, refused = self.sql, set()
        admitted: list[int] = []
        for key, to, per, group in _groups(rated):
            if self._lock_keys:
                conn.execute(sql["rate_lock"], {"key": key, "now": self.clock()})
            now = self.clock()  # after the lock: a start is never recorded before it could be counted
            if random.random() < PRUNE_ONE_IN * len(group):
                conn.execute(sql["rate_prune"], {"key": key, "to": to})  # starts never read again
            took = conn.execute(sql["rate_admit"], {"key": key, "now": now, "cutoff": now - per, "to": to,
                                                    "k": len(group), "ns": _series(len(group))}).rowcount
            admitted += [row.id for row in group[:took]]
            if took < len(group):
                refused |= self._refuse(conn, key, to, per, group[took:], process_id, now)
        with self._guard:
            self._admitted.update(admitted)
        return refused

    def _refuse(self, conn: Any, key: str, to: int, per: float, rows: list[JobRow], process_id: int | None,
                now: float) -> set[int]:
        """``rows`` over the limit of ``key``: back to scheduled for when its oldest start in the window leaves
        it, their run count unchanged (waiting is not a run)."""
        full = conn.execute(self.sql["rate_full_at"], {"key": key, "cutoff": now - per, "to": to}).fetchone()
        run_at = (float(full[0]) + per) if full is not None else now
        for row in rows:
            hooks.parsed_meta.pop(row.id, None)  # not run now: the claim that runs it parses it again
            self.storage.retry_later(row.id, process_id, row.executions, run_at, now)
            log.info("%s (job %d) over its rate limit %s; runs at %.3f", row.class_name, row.id, key, run_at)
        return {row.id for row in rows}


_SERIES: dict[int, str] = {}


def _series(k: int) -> str:
    """``[1, ..., k]`` as JSON (SQLite's ``rate_admit`` numbers its starts from it)."""
    text = _SERIES.get(k)
    if text is None:
        text = _SERIES[k] = "[" + ",".join(map(str, range(1, k + 1))) + "]"
    return text


def _groups(rated: list[tuple[str, int, float, JobRow]]) -> list[tuple[str, int, float, list[JobRow]]]:
    """The rows by key and limit, keys in sorted order."""
    if not rated:
        return []
    first = rated[0][:3]
    if all(item[:3] == first for item in rated):  # one key and limit, the usual claim: no sort
        return [(*first, [item[3] for item in rated])]
    rated.sort(key=lambda item: item[:3])
    groups: list[tuple[str, int, float, list[JobRow]]] = []
    for key, to, per, row in rated:
        if groups and groups[-1][:3] == (key, to, per):
            groups[-1][3].append(row)
        else:
            groups.append((key, to, per, [row]))
    return groups
