"""Unique jobs: while a job with the same key is held, enqueueing another returns the existing one.

``@unique_for(minutes=10)`` on a job class keys each job by its class and arguments (or by ``key=``, a function
of the job). A key row (``solidstack_unique_keys``) names the job that holds it and when it lapses. Whether the
key is still held is read from that job's state when a duplicate arrives, not kept up to date by every
transition: held while the job exists, is not finished and not failed and (``until="started"``) has not started
yet (not claimed, never run), and only until ``expires_at``. So a job that failed, was discarded, was deleted or
whose process died past its bound frees its key without any path having to remember to, and a job that hangs
holds it at most ``unique_for``.

Exact across processes: the key is read and written in the enqueue's own transaction, under SQLite's single
writer. On PostgreSQL, one unique plain job enqueued on its own (``perform_later``) is ONE statement in
autocommit (``unique_enqueue``, decision 0060): the key's INSERT conflicts with any racing enqueuer's, and a
stale key is taken over by a compare-and-set on the job its row names. Several jobs, a batch's or scheduled ones
take a transaction-long advisory lock on the key before the read (a racing enqueuer of the same path waits for
the first one's commit, then reads its key row) and take the key by the same compare-and-set; should a one-statement
enqueue have taken it meanwhile, the whole transaction is decided again (:class:`KeyRace`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from solidstack.queue._sql import feature_queries
from solidstack.queue.features import hooks
from solidstack.queue.features.concurrency import call_key

if TYPE_CHECKING:
    from solidstack.queue.job import Job
    from solidstack.queue.storage import QueueStorage

J = TypeVar("J", bound="type[Job]")
UNTIL = ("finished", "started")


#: How many times a one-statement enqueue is sent again when its key changed under it before giving up.
ATTEMPTS = 50


class KeyRace(Exception):
    """A key this transaction read was taken by another enqueue before this one took it: roll back, decide
    again."""


class UniqueKeyError(ValueError):
    """A job's ``unique_for`` key function raised or returned None; the job was not enqueued."""


@dataclass(frozen=True)
class UniqueRule:
    """What ``unique_for`` set on a job class."""

    seconds: float
    key: Callable[[Any], Any] | None
    until: str


def _duration(value: Any) -> float | None:
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def unique_for(duration: float | timedelta | None = None, *, key: Callable[[Any], Any] | None = None,
               until: str = "finished", **parts: float) -> Callable[[J], J]:
    """Class decorator: a job enqueued while another with the same key is held is not added; the enqueue
    returns the held job (its ``provider_job_id`` and ``job_id``, ``duplicate`` set to True).

    ``duration``: seconds or a ``timedelta`` (or ``minutes=10``, ``hours=1``...), how long a key is held at
    most. ``key``: a function of the job (default: the class and its arguments). ``until``: ``"finished"``
    (held until the job finishes or fails for good) or ``"started"`` (until a worker starts it).
    """

    def decorate(cls: J) -> J:
        name = cls.name()
        seconds = _duration(duration) if duration is not None else (
            timedelta(**parts).total_seconds() if parts else None)
        if seconds is None or seconds <= 0:
            given = duration if duration is not None else (parts or None)
            raise ValueError(f"{name}: unique_for duration must be a positive number of seconds or timedelta, "
                             f"got {given!r}")
        if until not in UNTIL:
            raise ValueError(f"{name}: unique_for until= must be one of {UNTIL}, got {until!r}")
        if key is not None and not callable(key):
            raise TypeError(f"{name}: unique_for key= must be a function of the job, got {key!r}")
        cls._unique = UniqueRule(seconds, key, until)  # type: ignore[attr-defined]
        hooks.use_features()
        return cls

    return decorate


def key_of(job: Job, arguments: str | None = None) -> tuple[str, float, str] | None:
    """``(key, seconds, until)`` for ``job`` (``arguments``: its stored arguments, when already serialized), or
    None when its class is not unique."""
    rule: UniqueRule | None = getattr(type(job), "_unique", None)
    if rule is None:
        return None
    name = type(job).name()
    if rule.key is None:
        # Long arguments would make long keys: a digest of their stored form (the same arguments, the same key).
        stored = arguments if arguments is not None else job.serialize_arguments()
        part = hashlib.sha256(stored.encode()).hexdigest()[:32]
    else:
        part = str(call_key(job, rule.key, UniqueKeyError, "unique_for key"))
    return f"{name}/{part}", rule.seconds, rule.until


def _held(row: Any, until: str, now: float) -> bool:
    if row["job_id"] is None or row["expires_at"] <= now or row["live_id"] is None:
        return False
    if row["finished_at"] is not None or row["failed"]:
        return False
    # "started": a claim, or a run before (a retry waiting), means it started.
    return not (until == "started" and (row["claimed"] or row["executions"]))


def hold_keys(conn: Any, storage: QueueStorage, jobs: Sequence[Job], keys: Sequence[tuple[str, float, str] | None],
              now: float, seen: dict[str, int | None]) -> list[int]:
    """Decide the unique jobs among ``jobs`` (in the caller's transaction): returns the indexes of the jobs to
    insert; each duplicate is pointed at the job that holds its key instead. :func:`record` then takes the keys
    for the jobs inserted, in the same transaction. ``seen`` gets the job each key's row named when read."""
    if not any(keys):
        return list(range(len(jobs)))
    sql = feature_queries(storage.db)
    lock = storage.db.dialect != "sqlite"  # SQLite's write transaction is the only writer: nothing to lock
    keep: list[int] = []
    taken: dict[str, int] = {}  # keys taken by earlier jobs of this same call
    seen.clear()
    for index, (job, spec) in enumerate(zip(jobs, keys, strict=True)):
        if spec is None:
            keep.append(index)
            continue
        key, _seconds, until = spec
        if key in taken:
            _point_at(job, jobs[taken[key]].job_id, None)
            continue
        # SQLite: the write transaction is the only writer. PostgreSQL: an advisory lock on the key until the
        # commit, taken before the read, so a racing enqueuer of the key reads after this one's key row is in.
        if lock:
            conn.execute(sql["unique_lock"], {"key": key}).fetchall()
        row = conn.execute(sql["unique_holder"], {"key": key}).fetchone()
        seen[key] = row["job_id"] if row is not None else None  # record()'s compare-and-set
        if row is not None and row["job_id"] is not None and _held(row, until, now):
            _point_at(job, row["active_job_id"], row["live_id"])
            continue
        taken[key] = index
        keep.append(index)
    return keep


def _point_at(job: Job, active_job_id: str, provider_job_id: int | None) -> None:
    job.job_id = active_job_id
    job.provider_job_id = provider_job_id
    job.duplicate = True  # type: ignore[attr-defined]


def record(conn: Any, storage: QueueStorage, held: Sequence[tuple[tuple[str, float, str] | None, int]],
           now: float, seen: dict[str, int | None]) -> None:
    """Take the key of each unique job inserted (a new key row, or a stale one taken over): one write each, a
    compare-and-set on the job :func:`hold_keys` saw (:class:`KeyRace` when another enqueue took it since)."""
    specs = [(spec, job_id) for spec, job_id in held if spec is not None]
    if not specs:
        return
    sql = feature_queries(storage.db)
    check = storage.db.dialect != "sqlite"  # SQLite: the single writer; nobody took it since the read
    for (key, seconds, _until), job_id in specs:
        took = conn.execute(sql["unique_take"], {"key": key, "job_id": job_id, "expires_at": now + seconds,
                                                 "now": now, "seen_job_id": seen.get(key)})
        if check and took.fetchone() is None:
            raise KeyRace(key)


def enqueue_taking(storage: QueueStorage, job: Job, row: Any, spec: tuple[str, float, str], now: float) -> None:
    """One unique plain job in one write transaction (SQLite, decision 0063): inserted, then its key taken by one
    statement unless held; when held, the job is deleted again (its ready row with it) and pointed at the holder.
    The write transaction is the database's only writer: exact across processes. The insert joins the
    transaction directly (``QueueStorage._insert``) and the key's upsert reports by its row count (decision 0071)."""
    sql = feature_queries(storage.db)
    key, seconds, until = spec
    with storage.db.transaction() as conn:
        job_id = storage._insert(conn, (row,), now, True)[0]
        if conn.execute(sql["unique_take_if_free"], {"key": key, "job_id": job_id, "expires_at": now + seconds,
                                                     "now": now, "until_started": until == "started"}).rowcount:
            job.provider_job_id = job_id
            return
        holder = conn.execute(sql["unique_holder"], {"key": key}).fetchone()
        conn.execute(sql["unique_drop_job"], {"job_id": job_id})
        _point_at(job, holder["active_job_id"], holder["live_id"])


def enqueue_one(storage: QueueStorage, job: Job, row: Any, spec: tuple[str, float, str], now: float) -> None:
    """One unique plain job (``row``: its NewJob, no schedule, no concurrency key) in one statement, outside any
    transaction (PostgreSQL, ``unique_enqueue``): inserted, or pointed at the job that holds its key."""
    sql = feature_queries(storage.db)["unique_enqueue"]
    key, seconds, until = spec
    params = {"key": key, "now": now, "expires_at": now + seconds, "until_started": until == "started",
              "queue_name": row.queue_name, "class_name": row.class_name, "arguments": row.arguments,
              "priority": row.priority, "active_job_id": row.active_job_id,
              "channel": storage.wakeups.channel or None}
    for _ in range(ATTEMPTS):
        found = storage.db.write_once(sql, params)  # type: ignore[attr-defined]
        if found:
            outcome, job_id, active_job_id = found[0]
            if outcome == "new":
                job.provider_job_id = job_id
            else:
                _point_at(job, active_job_id, job_id)
            return
        # The key's row changed after the statement's snapshot (another enqueue took it): decide again.
    raise KeyRace(f"{key}: taken and released {ATTEMPTS} times in a row while enqueueing; not enqueued")


def clear_expired(storage: QueueStorage, now: float) -> int:
    """Delete lapsed key rows (they are ignored anyway; this keeps the table small). Returns how many."""
    with storage.db.transaction() as conn:
        return int(conn.execute(feature_queries(storage.db)["unique_expired"], {"now": now}).rowcount)
