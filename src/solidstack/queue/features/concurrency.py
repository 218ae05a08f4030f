"""Concurrency controls: at most ``to`` jobs with the same key run at once; the others wait in ``blocked``.

As in Solid Queue, each key has a semaphore row whose ``value`` is the number of free slots. A job takes a slot
when it becomes ready (enqueue, dispatch of a scheduled job, retry); without one it is blocked (or discarded,
with ``on_conflict="discard"``). Finishing or failing frees the slot and, in the same transaction, gives it to
the next blocked job of that key in priority order. A slot also expires after ``duration`` seconds (a process
that died with the job), after which the dispatcher's upkeep releases blocked jobs of that key.

A job carries its key, limit, duration and conflict rule in its row, so every transition here works without
importing the job's class.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from solidstack.queue import events
from solidstack.queue.rows import NewJob

if TYPE_CHECKING:
    from solidstack.queue.job import Job
    from solidstack.queue.storage import QueueStorage

log = logging.getLogger("solidstack.queue")

J = TypeVar("J", bound="type[Job]")
ON_CONFLICT = ("block", "discard")


class ConcurrencyKeyError(ValueError):
    """A job's concurrency ``key`` function raised or returned nothing usable; the job was not enqueued."""


@dataclass(frozen=True)
class ConcurrencyLimit:
    """What ``limits_concurrency`` set on a job class."""

    to: int
    key: Callable[[Any], Any] | str | None
    duration: float
    group: str | None
    on_conflict: str


def limits_concurrency(to: int = 1, key: Callable[[Any], Any] | str | None = None, duration: float = 180.0,
                       group: str | None = None, on_conflict: str = "block") -> Callable[[J], J]:
    """Class decorator: at most ``to`` jobs with the same key run at once.

    ``key`` is called with the job (``lambda job: job.args[0]``) or is a fixed string; without it, the whole
    class (or ``group``) shares one limit. Jobs of several classes with the same ``group`` share limits.
    ``duration`` (seconds) bounds how long a slot is held if its job's process dies. ``on_conflict`` is
    ``"block"`` (wait for a slot) or ``"discard"`` (drop the job; it counts as finished).
    """
    if not isinstance(to, int) or isinstance(to, bool) or to < 1:
        raise ValueError(f"limits_concurrency to= must be a whole number of at least 1, got {to!r}")
    if on_conflict not in ON_CONFLICT:
        raise ValueError(f"limits_concurrency on_conflict= must be one of {ON_CONFLICT}, got {on_conflict!r}")
    if duration <= 0:
        raise ValueError(f"limits_concurrency duration= must be above zero, got {duration!r}")

    def decorate(cls: J) -> J:
        cls._concurrency = ConcurrencyLimit(to, key, float(duration), group, on_conflict)  # type: ignore[attr-defined]
        return cls

    return decorate


def call_key(job: Job, key: Callable[[Any], Any], error: type[Exception], what: str) -> Any:
    """``key(job)``, the key function of one of ``job``'s class options (``what``: "concurrency key", "rate limit
    key", "unique_for key"); raises ``error`` naming the job when it raises or returns None, before anything is
    stored."""
    name = type(job).name()
    try:
        value = key(job)
    except Exception as exc:
        raise error(f"{name}: its {what} raised {type(exc).__name__}: {exc}; the job was not enqueued") from exc
    if value is None:
        raise error(f"{name}: its {what} returned None; the job was not enqueued")
    return value


def concurrency_of(job: Job) -> dict[str, Any] | None:
    """The key, limit, duration and conflict rule of ``job``, or ``None`` when its class sets no limit.

    Raises :class:`ConcurrencyKeyError` naming the job when its ``key`` function fails.
    """
    limit: ConcurrencyLimit | None = getattr(type(job), "_concurrency", None)
    if limit is None:
        return None
    if callable(limit.key):
        value = call_key(job, limit.key, ConcurrencyKeyError, "concurrency key")
        part = str(getattr(value, "id", value)) if not isinstance(value, str | int | float) else str(value)
    else:
        part = limit.key or ""
    prefix = limit.group or type(job).name()
    return {"key": f"{prefix}/{part}", "limit": limit.to, "duration": limit.duration,
            "on_conflict": limit.on_conflict}


class Gate:
    """The semaphore operations, run inside the caller's transaction (``conn``)."""

    def __init__(self, storage: QueueStorage) -> None:
        from solidstack.queue._sql import control_queries

        self.db = storage.db
        self.base = storage.sql
        self.sql = control_queries(storage.db)
        self._storage = storage

    def _acquire(self, conn: Any, key: str, limit: int, duration: float, now: float) -> bool:
        expires = now + duration
        inserted = conn.execute(self.sql["semaphore_insert"],
                                {"key": key, "value": limit - 1, "expires_at": expires, "now": now}).rowcount
        if inserted:
            return True
        waited: int = conn.execute(self.sql["semaphore_wait"], {"key": key, "expires_at": expires, "now": now}).rowcount
        return waited > 0

    def admit(self, conn: Any, job_ids: Sequence[int], now: float) -> list[int]:
        """Jobs about to become ready: each limited one takes a slot, or is blocked or discarded.

        Returns the ids that must still be made ready by the caller (those without a limit and those that got a
        slot are returned; the caller inserts their ready rows).
        """
        if not job_ids:
            return []
        limited = conn.execute(self.sql["limited_jobs"], {"ids": self.db.array(job_ids)}).fetchall()
        if not limited:
            return list(job_ids)
        held: set[int] = set()
        for row in limited:
            key, limit, duration = row["concurrency_key"], row["concurrency_limit"] or 1, row["concurrency_duration"]
            duration = duration or 180.0
            if self._acquire(conn, key, limit, duration, now):
                continue
            held.add(row["id"])
            if row["concurrency_on_conflict"] == "discard":
                conn.execute(self.base["mark_finished"], {"ids": self.db.array([row["id"]]), "now": now}).fetchall()
                events.instrument("discard", job_id=row["id"], reason="concurrency limit", key=key)
            else:
                conn.execute(self.sql["insert_blocked"], {
                    "job_id": row["id"], "queue_name": row["queue_name"], "priority": row["priority"],
                    "key": key, "expires_at": now + duration, "now": now})
        return [job_id for job_id in job_ids if job_id not in held]

    def release(self, conn: Any, job_ids: Sequence[int], now: float) -> list[int]:
        """Jobs that stopped running (finished, failed, retrying): free their slots, unblock the next ones.

        Returns the ids of jobs moved from blocked to ready.
        """
        if not job_ids:
            return []
        return self.release_rows(conn, conn.execute(self.sql["limited_jobs"],
                                                    {"ids": self.db.array(job_ids)}).fetchall(), now)

    def release_rows(self, conn: Any, rows: Sequence[Any], now: float) -> list[int]:
        """:meth:`release`, given the jobs' rows (``concurrency_key``, ``concurrency_limit``,
        ``concurrency_duration``) as the statement that finished them returned them; rows without a key are
        skipped."""
        unblocked: list[int] = []
        for row in rows:
            if row["concurrency_key"] is None:
                continue
            key = row["concurrency_key"]
            conn.execute(self.sql["semaphore_signal"], {"key": key, "limit": row["concurrency_limit"] or 1,
                                                        "expires_at": now + (row["concurrency_duration"] or 180.0),
                                                        "now": now})
            job_id = self._unblock_one(conn, key, now)
            if job_id is not None:
                unblocked.append(job_id)
        return unblocked

    def _unblock_one(self, conn: Any, key: str, now: float) -> int | None:
        row = conn.execute(self.sql["next_blocked"], {"key": key}).fetchone()
        if row is None:
            return None
        if not self._acquire(conn, key, row["concurrency_limit"] or 1, row["concurrency_duration"] or 180.0, now):
            return None
        conn.execute(self.sql["delete_blocked"], {"job_id": row["job_id"]})
        conn.execute(self.base["insert_ready"], {"job_id": row["job_id"], "queue_name": row["queue_name"],
                                                 "priority": row["priority"], "now": now})
        events.instrument("unblock", job_id=row["job_id"], key=key)
        return int(row["job_id"])

    def maintain(self, now: float, batch_size: int = 500) -> int:
        """The dispatcher's upkeep: drop expired semaphores, release blocked jobs whose wait expired.

        Returns how many jobs were released.
        """
        released = 0
        with self.db.transaction() as conn:
            conn.execute(self.sql["semaphores_expired"], {"now": now})
            keys = [row[0] for row in conn.execute(self.sql["expired_blocked_keys"],
                                                    {"now": now, "limit": batch_size})]
            for key in keys:
                while self._unblock_one(conn, key, now) is not None:  # as many as the key has free slots
                    released += 1
        if released:
            self._storage.announce_ready()  # after the commit above: wake the idle workers
            log.info("concurrency upkeep released %d blocked job(s)", released)
        return released


def to_new_job(job: Job) -> NewJob:
    """The row to store for ``job``: arguments serialized, concurrency limit applied.

    Raises ``SerializationError`` or :class:`ConcurrencyKeyError`, naming the job, before anything is stored.
    """
    limit = concurrency_of(job)
    row = NewJob(job.queue_name, type(job).name(), job.serialize_arguments(), job.priority, job.job_id,
                 job.scheduled_at)
    if limit is None:
        return row
    return row._replace(concurrency_key=limit["key"], concurrency_limit=limit["limit"],
                        concurrency_duration=limit["duration"], concurrency_on_conflict=limit["on_conflict"])


def to_new_jobs(jobs: Sequence[Job]) -> list[NewJob]:
    """:func:`to_new_job` of each of ``jobs``, in order, raising as it does before anything is stored.

    What depends only on a job's class (its name, whether it limits concurrency) is looked up once per class in
    the call, not once per job: a bulk enqueue is most often 10,000 jobs of one class (decision 0077).
    """
    rows: list[NewJob] = []
    append = rows.append
    names: dict[type, str | None] = {}  # a class's stored name; None: the class limits concurrency
    for job in jobs:
        cls = type(job)
        try:
            name = names[cls]
        except KeyError:
            name = names[cls] = None if getattr(cls, "_concurrency", None) is not None else cls.name()
        if name is None:
            append(to_new_job(job))
        else:
            append(NewJob(job.queue_name, name, job.serialize_arguments(), job.priority, job.job_id,
                          job.scheduled_at))
    return rows
