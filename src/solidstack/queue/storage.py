"""The queue's storage seam: every state transition of a job is one named operation in one transaction.

A job's state is which table holds its row: ready, scheduled, claimed, blocked or failed execution; a finished job
keeps its ``jobs`` row with ``finished_at`` set (or loses it, when finished jobs are not preserved). The SQL is in
``sql/<dialect>/queries.sql``; this module holds the logic once for every engine. Times are Unix seconds and are
passed in (``now``), so callers and tests control the clock.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from solidstack.db import Database, SQLiteDatabase, load_queries
from solidstack.db.notify import Wakeups
from solidstack.queue.features.concurrency import Gate
from solidstack.queue.features.outcomes import JobResult, Outcomes
from solidstack.queue.processes.liveness import IDENTITY_KEY, START_KEY, dead_processes, hostname, identity, start_time
from solidstack.queue.rows import NewJob

#: The wake-up topic of the queue: workers listen, whoever makes a job ready announces it (see ``db/notify.py``).
WAKEUP_TOPIC = "queue"
#: How many failed attempts are kept per job, newest first (``QueueStorage.attempts_kept``; decision 0048).
ATTEMPTS_KEPT = 25


@dataclass(frozen=True)
class JobRow:
    """A stored job, as a worker gets it when it claims it."""

    id: int
    queue_name: str
    class_name: str
    arguments: str
    priority: int
    active_job_id: str
    scheduled_at: float | None
    concurrency_key: str | None
    executions: int
    process_deaths: int
    created_at: float


@dataclass(frozen=True)
class FailedJob:
    id: int
    queue_name: str
    class_name: str
    arguments: str
    priority: int
    active_job_id: str
    executions: int
    process_deaths: int
    created_at: float
    error: dict[str, Any]
    failed_at: float


def _prefix_end(prefix: str) -> str:
    """The smallest string above every string that starts with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class QueueStorage:
    """Named operations on the queue's tables in one database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.sql = load_queries("solidstack.queue", db.dialect, db.paramstyle)
        # Concurrency limits: jobs with a key take a semaphore slot on their way to ready (see concurrency.py).
        self.gate = Gate(self)
        #: How idle workers of this database are woken: a socket datagram after the commit (SQLite), a NOTIFY
        #: inside the transaction (PostgreSQL), or nothing (polling only).
        self.wakeups = Wakeups(db, WAKEUP_TOPIC)
        # Look before taking a write transaction only where one is expensive to start: SQLite's is the file's
        # single write lock, which an idle worker must not take from enqueuers. PostgreSQL's BEGIN locks nothing,
        # and the claim's SKIP LOCKED select is the look.
        self._look_first = db.dialect == "sqlite"
        self._claim_in_one = "claim_all" in self.sql
        self._enqueue_in_one = "enqueue_ready" in self.sql
        self._finish_in_one = "finish_own_claims" in self.sql
        self._cycle_in_one = "finish_and_claim_all" in self.sql
        #: Workers may claim a few more jobs than they have idle threads (worker.py, PREFETCH_BUDGET): where a
        #: claim is one round trip that also finishes the last batch (PostgreSQL), that round trip is most of
        #: a short job's cost.
        self.prefetch = self._cycle_in_one
        self._unqueued: QueueStorage | None = None
        self._cycle_statements: dict[tuple[str, bool, bool, int], str] = {}
        #: Return values and cancellation (see outcomes.py).
        self.outcomes = Outcomes(self)
        #: Called in the transaction that finishes jobs, with their ids (batches count them: see hooks.py).
        self.on_finish: Callable[[Any, list[int], float], None] | None = None
        #: The newest this many failed attempts of a job are kept (its error, backtrace, process); older ones go.
        self.attempts_kept = ATTEMPTS_KEPT
        #: Called in a claim's transaction with the rows claimed; returns those to run (rate limits admit their
        #: jobs there and reschedule the others: see hooks.py).
        self.on_claim: Callable[[Any, list[JobRow], int | None], list[JobRow]] | None = None

    def announce_ready(self) -> None:
        """Wake the idle workers once the current transaction commits: jobs became ready.

        Best effort: a lost wake-up costs at most one polling interval.
        """
        self.wakeups.announce()

    # -- enqueue ---------------------------------------------------------------------------------------------

    def enqueue(self, jobs: Sequence[NewJob], now: float) -> list[int]:
        """Store ``jobs`` in one transaction; each becomes ready, or scheduled when ``scheduled_at`` is ahead."""
        if not jobs:
            return []
        # Most jobs have no schedule and no concurrency limit: their rows leave those columns out (Python's
        # sqlite3 binds a None through its adapter lookup, ~0.5 µs each: 2.5 of a bulk enqueue's ~9 µs a job).
        plain = all(job.scheduled_at is None and job.concurrency_key is None for job in jobs)
        if plain and self._enqueue_in_one:
            return self._enqueue_in_one_statement(jobs, now)
        with self.db.transaction() as conn:
            return self._insert(conn, jobs, now, plain)

    def _insert(self, conn: Any, jobs: Sequence[NewJob], now: float, plain: bool) -> list[int]:
        """:meth:`enqueue`'s statements, in ``conn``'s open transaction (``plain``: no job has a schedule or a
        concurrency key). A unique job's enqueue on SQLite joins its key's statement to them (unique.py)."""
        width = 5 if plain else len(NewJob._fields)
        rows = [(*job[:width], now, now) for job in jobs]
        ids = self.db.insert_many(conn, self.sql["insert_plain_job" if plain else "insert_job"], rows)
        scheduled, limited = [], []
        if not plain:
            for job_id, job in zip(ids, jobs, strict=True):
                if job.scheduled_at is not None and job.scheduled_at > now:
                    scheduled.append({"job_id": job_id, "queue_name": job.queue_name,
                                      "priority": job.priority, "scheduled_at": job.scheduled_at, "now": now})
                elif job.concurrency_key is not None:
                    limited.append(job_id)  # ready only with a free slot
        held = [row["job_id"] for row in scheduled]
        if limited:
            admitted = set(self.gate.admit(conn, limited, now))
            held += [job_id for job_id in limited if job_id not in admitted]
        if len(held) < len(ids):
            # One statement makes every other new job ready.
            conn.execute(self.sql["ready_from_new_jobs"], {"first": ids[0], "last": ids[-1],
                                                           "ids": self.db.array(ids),
                                                           "excluded": self.db.array(held), "now": now})
            self.announce_ready()
        if scheduled:
            conn.executemany(self.sql["insert_scheduled"], scheduled)
        return ids

    def _enqueue_in_one_statement(self, jobs: Sequence[NewJob], now: float) -> list[int]:
        """Where the dialect has ``enqueue_ready`` (PostgreSQL: a data-modifying CTE over arrays), plain jobs,
        their ready rows and the NOTIFY are one statement: its own transaction (one round trip) outside a
        transaction, part of the caller's inside one.

        Sent once (``write_once``): a connection lost after the statement was sent raises
        :class:`~solidstack.db.DatabaseUnavailable` instead of sending it again on another connection, which
        would enqueue the jobs twice when the first one had committed (decision 0065).
        """
        channel = self.wakeups.channel or None
        # Only PostgreSQL has enqueue_ready (``_enqueue_in_one``) and write_once.
        if len(jobs) == 1:
            job = jobs[0]
            rows = self.db.write_once(self.sql["enqueue_one"], {  # type: ignore[attr-defined]
                "queue_name": job.queue_name, "class_name": job.class_name, "arguments": job.arguments,
                "priority": job.priority, "active_job_id": job.active_job_id, "now": now, "channel": channel})
            return [rows[0][0]]
        # Columns built straight from the rows: no slice of each row, no row object per id returned (each a
        # container the garbage collector tracks: at 10,000 jobs its passes were a fifth of the call; decision 0076).
        array = self.db.array
        arguments = array([job.arguments for job in jobs])
        keys = array([job.active_job_id for job in jobs])
        first = jobs[0]
        queue, class_name, priority = first.queue_name, first.class_name, first.priority
        if all(job.queue_name == queue and job.class_name == class_name and job.priority == priority
               for job in jobs):
            # One class, queue and priority (the common bulk): those as scalars, two arrays to bind.
            rows = self.db.write_once(self.sql["enqueue_ready_alike"], {  # type: ignore[attr-defined]
                "queue_name": queue, "class_name": class_name, "priority": priority, "arguments": arguments,
                "active_job_ids": keys, "now": now, "channel": channel})
        else:
            rows = self.db.write_once(self.sql["enqueue_ready"], {  # type: ignore[attr-defined]
                "queue_names": array([job.queue_name for job in jobs]),
                "class_names": array([job.class_name for job in jobs]), "arguments": arguments,
                "priorities": [job.priority for job in jobs], "active_job_ids": keys, "now": now,
                "channel": channel})
        ids: list[int] = rows[0][0]
        return ids

    # -- claim and finish ------------------------------------------------------------------------------------

    @staticmethod
    def _queue_filters(queues: Sequence[str]) -> Iterator[tuple[str, dict[str, Any]]]:
        """Each entry of a worker's queue list as the suffix of its queries (``all``, ``in_prefix``,
        ``in_queue``) and their parameters."""
        for queue in queues:
            if queue == "*":
                yield "all", {}
            elif queue.endswith("*"):
                prefix = queue[:-1]
                yield "in_prefix", {"prefix": prefix, "prefix_end": _prefix_end(prefix)}
            else:
                yield "in_queue", {"queue": queue}

    def _ready_ids(self, conn: Any, queues: Sequence[str], limit: int) -> list[int]:
        ids: list[int] = []
        seen: set[int] = set()
        for kind, params in self._queue_filters(queues):
            remaining = limit - len(ids)
            if remaining <= 0:
                break
            for (job_id,) in conn.execute(self.sql[f"ready_{kind}"], {**params, "limit": remaining}):
                if job_id not in seen:
                    seen.add(job_id)
                    ids.append(job_id)
        return ids

    def _claim_in_one_statement(self, conn: Any, process_id: int | None, queues: Sequence[str], limit: int,
                                now: float) -> list[JobRow]:
        """Where the dialect has ``claim_*`` queries (PostgreSQL: data-modifying CTEs), each queue's claim is
        one statement: pick with SKIP LOCKED, delete the ready rows, insert the claims, return the jobs."""
        claimed: list[JobRow] = []
        for kind, params in self._queue_filters(queues):
            remaining = limit - len(claimed)
            if remaining <= 0:
                break
            rows = conn.execute(self.sql[f"claim_{kind}"], {**params, "limit": remaining,
                                                              "process_id": process_id, "now": now}).fetchall()
            claimed += [JobRow(**dict(row)) for row in rows]
        return claimed

    def claim(self, process_id: int | None, queues: Sequence[str], limit: int, now: float, *,
              finished: Sequence[int] = (), preserve: bool = True,
              results: dict[int, str] | None = None) -> list[JobRow]:
        """Move up to ``limit`` ready jobs to claimed by ``process_id``, queue order first, then priority.

        ``finished``: jobs this process ran, finished (as :meth:`finish`) in the same transaction, so a busy
        worker commits once per batch; ``results``: the return values of those that returned one (see
        :mod:`.outcomes`). An empty queue with nothing to finish costs one read and no write lock:
        idle workers must not contend with enqueuers.
        """
        if not finished and (limit <= 0 or (self._look_first and not self._ready_ids(self.db.connection(), queues, 1))):
            return []
        # The one-statement cycle runs no Python hook in its transaction: a finish hook that can be folded into it
        # (batches count their finished jobs in the statement: ``batched_among``, decision 0061) keeps it; any
        # other hook takes the transaction below.
        # A claim hook that can run after the statement (rate limits admit their rows in a transaction of their
        # own: ``after_claim``, decision 0062) keeps it too; only the claims with rows that need it pay.
        if (self._cycle_in_one
                and (self.on_claim is None or hasattr(self.on_claim, "after_claim"))
                and (self.on_finish is None or hasattr(self.on_finish, "batched_among"))
                and not self.db.in_transaction()):
            refused: set[int] = set()  # rows the statement claimed over their rate limit (decision 0064)
            if not (results and preserve):  # nothing returned a value: one statement, one round trip
                claimed = self._finish_and_claim(process_id, queues, max(0, limit), now, finished, preserve,
                                                 refused)
            else:
                # Return values to store first, in the same transaction (the statement and the finishes join it).
                with self.db.transaction() as conn:
                    self.outcomes.store_results(conn, results, process_id)
                    claimed = self._finish_and_claim(process_id, queues, max(0, limit), now, finished, preserve,
                                                     refused)
            hook: Any = self.on_claim
            if hook is None or not claimed:
                return claimed
            try:
                return list(hook.after_claim(claimed, process_id, refused))
            except BaseException:
                # The finishes stand (committed); these claims never reach the caller: back to ready.
                with suppress(Exception):
                    self.release([row.id for row in claimed], process_id, now)
                raise
        with self.db.transaction() as conn:
            if finished:
                self._after_finish(conn, self._finish(conn, finished, process_id, now, preserve, results), now)
            if limit <= 0:
                return []
            if self._claim_in_one:
                claimed = self._claim_in_one_statement(conn, process_id, queues, limit, now)
            else:
                ids = self._ready_ids(conn, queues, limit)
                if not ids:
                    return []
                array = self.db.array(ids)
                conn.execute(self.sql["delete_ready"], {"ids": array})
                conn.execute(self.sql["insert_claimed"], {"ids": array, "process_id": process_id, "now": now})
                rows = {row["id"]: row for row in conn.execute(self.sql["jobs_by_ids"], {"ids": array})}
                claimed = [JobRow(**dict(rows[job_id])) for job_id in ids]
            if self.on_claim is not None and claimed:
                claimed = self.on_claim(conn, claimed, process_id)
        return claimed

    def _finish_and_claim(self, process_id: int | None, queues: Sequence[str], limit: int, now: float,
                          finished: Sequence[int], preserve: bool, refused: set[int] | None = None) -> list[JobRow]:
        """Where the dialect has ``finish_and_claim_*`` (PostgreSQL), a worker's cycle is one statement per
        queue entry, each its own transaction in autocommit (one round trip, not BEGIN, finish, claim, COMMIT;
        an idle worker's empty claim is one statement too). The first also finishes ``finished``; those it did
        not finish (a concurrency key, whose slot Gate frees, or a claim lost) go through :meth:`_finish`."""
        claimed: list[JobRow] = []
        done: set[int] = set()
        complete: list[int] = []
        ids: list[int] = self.db.array(finished)
        refused = refused if refused is not None else set()
        counter: Any = self.on_finish
        batched = counter.batched_among(finished) if counter is not None and finished else []
        # A claim hook that admits rate limited rows inside the statement (decision 0064).
        admit_rates = bool(getattr(self.on_claim, "in_cycle", False))
        for kind, params in self._queue_filters(queues):
            remaining = max(0, limit - len(claimed))
            if remaining <= 0 and not ids:
                break
            if ids:
                # The first statement finishes ``finished`` too (and counts the batched jobs among them).
                sql = self._cycle_statement(f"finish_and_claim_{kind}", bool(batched), admit_rates, remaining)
                params = {**params, "ids": ids, "preserve": preserve}
                if batched:
                    params["batched"] = self.db.array(batched)
            else:
                # Nothing to finish (an idle worker woken, a polling tick, the next queue entry): the claim alone,
                # no array to bind and no finishing branches to plan and run (decision 0075).
                sql = self._cycle_statement(f"claim_now_{kind}", False, admit_rates, remaining)
            # Only PostgreSQL has the one-statement cycle (``_cycle_in_one``) and write_once.
            rows = self.db.write_once(sql, {  # type: ignore[attr-defined]
                **params, "process_id": process_id, "now": now})
            for row in rows:
                if row[0]:
                    done.add(row[1])
                elif row[0] is None:
                    if row[2] == "rate refused":
                        refused.add(row[1])  # over its rate limit: claimed, not admitted
                    elif row[1] is not None:
                        complete.append(row[1])  # a batch counted to zero: its callbacks are due
                else:
                    claimed.append(JobRow(*row[1:]))
            ids = []
            batched = []

        if counter is not None and finished:
            counter.counted([job_id for job_id in finished if job_id in done], complete, now)
        left = [job_id for job_id in finished if job_id not in done]
        if left:
            try:
                with self.db.transaction() as conn:
                    self._after_finish(conn, self._finish(conn, left, process_id, now, preserve), now)
            except BaseException:
                # The caller keeps ``finished`` to finish later, and never gets these claims: back to ready
                # (should this fail too, the worker's resync or the process's death hands them back).
                with suppress(Exception):
                    self.release([row.id for row in claimed], process_id, now)
                raise
        return claimed

    def _cycle_statement(self, name: str, count_batches: bool, admit_rates: bool, limit: int) -> str:
        """``name`` (a finish_and_claim_* or claim_now_* statement) with its ``LIMIT`` written in as the literal
        ``limit``, and with the batch counting CTEs of ``batch_count_in_cycle`` spliced in after ``owned`` and the
        batches it counts to zero returned (decision 0061), and/or the rate limit admission CTEs of
        ``rate_admit_in_cycle`` after ``claimed`` and the rows it refuses returned (decision 0064). Built once per
        combination.

        The limit is part of the text, not a parameter (decision 0075): with ``LIMIT $n`` the plan PostgreSQL caches
        for a prepared statement (its generic plan) assumes a tenth of the ready rows, joins the jobs and ready
        tables by sequential scans, and once those tables grow the server falls back to planning the statement
        afresh at every call (0.2-0.5 ms a claim, measured). With the literal, the generic plan is the one a
        custom plan would be, and it is kept. One prepared statement per limit a worker uses (its idle threads,
        with prefetch up to ``PREFETCH_MAX``)."""
        key = (name, count_batches, admit_rates, limit)
        cached = self._cycle_statements.get(key)
        if cached is not None:
            return cached
        # The text as loaded may end in ";" (a comment after it in queries.sql kept the semicolon from being
        # stripped): the rows appended below must follow the statement's last SELECT.
        sql = self.sql[name].rstrip().rstrip(";")
        placeholder = self.db.statement("LIMIT :limit")
        if sql.count(placeholder) != 1:
            raise ValueError(f"{name}: expected one {placeholder!r}")
        sql = sql.replace(placeholder, f"LIMIT {int(limit)}")
        extra = ""
        if count_batches or admit_rates:
            from solidstack.queue._sql import feature_queries

            features = feature_queries(self.db)
            if count_batches:
                head, sep, tail = sql.partition("), picked AS (")
                if not sep or "owned AS (" not in head:
                    raise ValueError(f"{name}: no picked CTE to splice the batch count before")
                sql = head + "), " + features["batch_count_in_cycle"] + ", picked AS (" + tail
                extra += ("\nUNION ALL\nSELECT NULL, id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL"
                          " FROM counted WHERE pending = 0 AND finished_at IS NULL")
            if admit_rates:
                head, sep, tail = sql.partition(" RETURNING job_id\n)\n")
                if not sep or "claimed AS (" not in head:
                    raise ValueError(f"{name}: no claimed CTE to splice the rate admission after")
                sql = head + " RETURNING job_id\n), " + features["rate_admit_in_cycle"] + "\n" + tail
                extra += ("\nUNION ALL\nSELECT NULL, id, 'rate refused', NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
                          "NULL, NULL FROM rate_refused")
        sql += extra
        self._cycle_statements[key] = sql
        return sql

    def _take_claims(self, conn: Any, job_ids: Sequence[int], process_id: int | None) -> list[int]:
        """Delete the claims ``process_id`` holds on ``job_ids``; returns the ids it did hold.

        A job released from a process thought dead may have been claimed again elsewhere: the late process
        must not finish, fail or release it a second time.
        """
        rows = conn.execute(self.sql["delete_own_claims"],
                            {"ids": self.db.array(job_ids), "process_id": process_id}).fetchall()
        return [row[0] for row in rows]

    def finish(self, job_ids: Sequence[int], process_id: int | None, now: float, *, preserve: bool = True,
               results: dict[int, str] | None = None) -> list[int]:
        """Claimed jobs that ran: kept with ``finished_at`` (and their ``results``) or deleted. Returns the ids
        finished."""
        if not job_ids:
            return []
        with self.db.transaction() as conn:
            return self._after_finish(conn, self._finish(conn, job_ids, process_id, now, preserve, results), now)

    def _after_finish(self, conn: Any, finished: list[int], now: float) -> list[int]:
        # Batches count their finished jobs in this transaction (hooks.py), when a batched job ran here.
        if self.on_finish is not None and finished:
            self.on_finish(conn, finished, now)
        return finished

    def _finish(self, conn: Any, job_ids: Sequence[int], process_id: int | None, now: float,
                preserve: bool, results: dict[int, str] | None = None) -> list[int]:
        if results and preserve:
            self.outcomes.store_results(conn, results, process_id)
        if self._finish_in_one:
            # PostgreSQL: the claims this process holds deleted and their jobs finished in one statement.
            rows = conn.execute(self.sql["finish_own_claims" if preserve else "finish_own_claims_deleting"],
                                {"ids": self.db.array(job_ids), "process_id": process_id, "now": now}).fetchall()
            if rows and self.gate.release_rows(conn, rows, now):
                self.announce_ready()
            return [row["id"] for row in rows]
        if preserve:
            # Kept: finished with its claim's time as started_at (one statement, before the claims go), then the
            # claims of the jobs it finished deleted. Returns each job's concurrency columns: no second read.
            rows = conn.execute(self.sql["mark_own_finished"], {"ids": self.db.array(job_ids),
                                                                "process_id": process_id, "now": now}).fetchall()
            owned = [row["id"] for row in rows]
            if owned:
                conn.execute(self.sql["delete_claimed"], {"ids": self.db.array(owned)})
        else:
            owned = self._take_claims(conn, job_ids, process_id)
            rows = conn.execute(self.sql["delete_finished"],
                                {"ids": self.db.array(owned), "now": now}).fetchall() if owned else []
        if rows and self.gate.release_rows(conn, rows, now):
            self.announce_ready()
        return owned

    def fail(self, job_id: int, process_id: int | None, error: dict[str, Any], now: float) -> bool:
        """A claimed job whose perform raised: kept as a failed execution with the error (and the error kept
        among the job's failed attempts)."""
        with self.db.transaction() as conn:
            started = self._claim_times(conn, [job_id], process_id)
            if not self._take_claims(conn, [job_id], process_id):
                return False
            if self.gate.release(conn, [job_id], now):
                self.announce_ready()
            text = json.dumps(error)
            conn.execute(self.sql["insert_failed"], {"job_id": job_id, "error": text, "now": now})
            self._record_attempt(conn, job_id, "failed", text, started.get(job_id), process_id, now)
        return True

    def retry_later(self, job_id: int, process_id: int | None, executions: int, run_at: float, now: float, *,
                    error: dict[str, Any] | None = None) -> bool:
        """A claimed job to run again (``retry_on``): ready now or scheduled at ``run_at``. ``error``: what the run
        raised, kept among the job's failed attempts (None: the run did not fail, e.g. over a rate limit)."""
        array = self.db.array([job_id])
        with self.db.transaction() as conn:
            started = self._claim_times(conn, [job_id], process_id) if error is not None else {}
            if not self._take_claims(conn, [job_id], process_id):
                return False
            if self.gate.release(conn, [job_id], now):
                self.announce_ready()
            if error is not None:  # before the job's run count moves on: the attempt is the run that failed
                self._record_attempt(conn, job_id, "retried", json.dumps(error), started.get(job_id), process_id,
                                     now)
            scheduled_at = run_at if run_at > now else None
            # A failed run's retry is due at run_at even when that is now: its enqueue-to-start latency counts
            # from then, not from the job's first enqueue (the chart of decision 0603).
            conn.execute(self.sql["reschedule_job"],
                         {"job_id": job_id, "executions": executions, "now": now,
                          "scheduled_at": run_at if error is not None else scheduled_at})
            if scheduled_at is None:
                if self.gate.admit(conn, [job_id], now):  # else it waits in blocked for a slot
                    conn.execute(self.sql["ready_from_jobs"], {"ids": array, "now": now})
                    self.announce_ready()
            else:
                conn.execute(self.sql["scheduled_from_job"], {"job_id": job_id, "scheduled_at": run_at, "now": now})
        return True

    def release(self, job_ids: Sequence[int], process_id: int | None, now: float) -> list[int]:
        """Claimed jobs that did not run (graceful stop): back to ready, as they were."""
        if not job_ids:
            return []
        with self.db.transaction() as conn:
            owned = self._take_claims(conn, job_ids, process_id)
            if owned:
                conn.execute(self.sql["ready_from_jobs"], {"ids": self.db.array(owned), "now": now})
                self.announce_ready()
        return owned

    def _claim_times(self, conn: Any, job_ids: Sequence[int], process_id: int | None) -> dict[int, float]:
        """When ``process_id`` claimed each of ``job_ids`` (read before the claims are taken)."""
        return {row[0]: row[1] for row in conn.execute(self.sql["claim_times"], {"ids": self.db.array(job_ids),
                                                                                 "process_id": process_id})}

    def _record_attempt(self, conn: Any, job_id: int, outcome: str, error: str, started_at: float | None,
                        process_id: int | None, now: float) -> None:
        """Keep a failed attempt of ``job_id`` (in the transaction that records the failure), and only the newest
        :attr:`attempts_kept` of its attempts."""
        conn.execute(self.sql["insert_attempt"], {"job_id": job_id, "outcome": outcome, "error": error,
                                                  "started_at": started_at, "process_id": process_id, "now": now})
        conn.execute(self.sql["trim_attempts"], {"job_id": job_id, "keep": max(1, self.attempts_kept)})

    def _release_after_death(self, conn: Any, job_ids: Sequence[int], reason: str, max_deaths: int,
                             now: float, claims: dict[int, tuple[float | None, int | None]] | None = None,
                             ) -> tuple[list[int], list[int]]:
        """Claimed jobs of a dead process, whose claims the caller has just taken (deleted, in ``conn``): run
        again, or failed once they have died ``max_deaths`` times. Either way the run is kept as a failed
        attempt; ``claims``: each job's claim time and process, for that record."""
        if not job_ids:
            return [], []
        claims = claims or {}
        array = self.db.array(job_ids)
        deaths = conn.execute(self.sql["count_process_death"], {"ids": array, "now": now}).fetchall()
        again = [row[0] for row in deaths if row[1] < max_deaths]
        failed = [row[0] for row in deaths if row[1] >= max_deaths]
        for job_id in again:
            error = {"exception_class": "ProcessDiedError", "backtrace": [],
                     "message": f"{reason} while the job was running; it runs again"}
            started_at, process_id = claims.get(job_id, (None, None))
            self._record_attempt(conn, job_id, "died", json.dumps(error), started_at, process_id, now)
        if again:
            conn.execute(self.sql["ready_from_jobs"], {"ids": self.db.array(again), "now": now})
            self.announce_ready()
        if self.gate.release(conn, failed, now):
            self.announce_ready()
        for job_id in failed:
            error = {"exception_class": "ProcessDiedError", "backtrace": [],
                     "message": f"{reason}; the job was running each of the {max_deaths} times its process died"}
            text = json.dumps(error)
            conn.execute(self.sql["insert_failed"], {"job_id": job_id, "error": text, "now": now})
            started_at, process_id = claims.get(job_id, (None, None))
            self._record_attempt(conn, job_id, "failed", text, started_at, process_id, now)
        return again, failed

    # -- dispatch --------------------------------------------------------------------------------------------

    def dispatch_due(self, now: float, batch_size: int) -> int:
        """Move up to ``batch_size`` scheduled jobs that are due to ready; returns how many moved."""
        if self._look_first and self.db.query_one(self.sql["due_scheduled"], {"now": now, "limit": 1}) is None:
            return 0
        with self.db.transaction() as conn:
            ids = [row[0] for row in conn.execute(self.sql["due_scheduled"], {"now": now, "limit": batch_size})]
            if not ids:
                return 0
            array = self.db.array(ids)
            conn.execute(self.sql["ready_from_scheduled"], {"ids": self.db.array(self.gate.admit(conn, ids, now)),
                                                            "now": now})
            conn.execute(self.sql["delete_scheduled"], {"ids": array})
            self.announce_ready()
        return len(ids)

    def next_scheduled_at(self) -> float | None:
        row = self.db.query_one(self.sql["next_scheduled_at"])
        return row["at"] if row else None

    # -- processes -------------------------------------------------------------------------------------------

    def register_process(self, kind: str, name: str, now: float, *, supervisor_id: int | None = None,
                         metadata: dict[str, Any] | None = None, pid: int | None = None) -> int:
        """Add a process row; its metadata records the liveness identity (see ``liveness.py``)."""
        own_pid = pid if pid is not None else os.getpid()
        metadata = {**(metadata or {}), IDENTITY_KEY: identity(), START_KEY: start_time(own_pid)}
        with self.db.transaction() as conn:
            row = conn.execute(self.sql["insert_process"], {
                "kind": kind, "name": name, "now": now, "supervisor_id": supervisor_id,
                "pid": own_pid, "hostname": hostname(),
                "metadata": json.dumps(metadata),
            }).fetchone()
            return int(row[0])

    def unqueued(self) -> QueueStorage:
        """This storage, for writes that must never wait in SQLite's kernel writer queue (``db/sqlite.py``).

        That queue has no timeout: a process stopped (SIGSTOP, a frozen container) while it holds it stops every
        writer for good, the supervisors too, and then nobody can see or kill it (seen in the soak). Heartbeats
        and a fork supervisor's own writes use a connection without it, where SQLite's busy handler bounds each
        wait by ``busy_timeout``: a heartbeat then stops only while the database itself is held. Other engines:
        this storage itself.
        """
        db = self.db
        if not isinstance(db, SQLiteDatabase) or db.lock_path is None:
            return self
        if self._unqueued is None:
            # A short busy timeout: a write that waits on a held database must not stall a supervisor's loop
            # for long (SQLite retries it BUSY_RETRIES times).
            self._unqueued = QueueStorage(SQLiteDatabase(db.path, busy_timeout=min(db.busy_timeout, 1.0),
                                                         name=db.name, writer_lock=False))
        return self._unqueued

    def heartbeat(self, process_id: int, now: float) -> bool:
        """Record that the process is alive; ``False`` when its row is gone (it was pruned as dead)."""
        return self.unqueued().db.execute(self.sql["heartbeat"], {"id": process_id, "now": now}) > 0

    def deregister_process(self, process_id: int, now: float, *, died: bool = False, reason: str = "",
                           max_deaths: int = 3, cascade: bool = True) -> tuple[list[int], list[int]]:
        """Remove a process row; its claimed jobs go back to ready.

        ``cascade`` also removes its supervised processes: only for a supervisor that stopped after its own
        processes stopped, never for one found dead (its processes may be alive and running their jobs; each is
        judged on its own, see ``liveness.py``). With ``died``, each released job counts a process death (see
        :meth:`_release_after_death`); after a graceful stop they go back unchanged. Returns the job ids run
        again and the ids failed.
        """
        again: list[int] = []
        failed: list[int] = []
        with self.db.transaction() as conn:
            ids = [process_id]
            if cascade:
                ids += [row[0] for row in conn.execute(self.sql["supervisees"], {"id": process_id})]
            for pid in ids:
                claimed = [row[0] for row in conn.execute(self.sql["claimed_by_process"], {"process_id": pid})]
                started = self._claim_times(conn, claimed, pid) if claimed and died else {}
                # Only the claims this transaction deletes are released: on PostgreSQL another pruner may have
                # released them meanwhile and a worker claimed them again (the read above does not lock), and
                # releasing those would put a running job back in the queue (seen in the soak on PostgreSQL as a
                # duplicate ready row).
                claimed = self._take_claims(conn, claimed, pid) if claimed else []
                if died:
                    a, f = self._release_after_death(conn, claimed, reason, max_deaths, now,
                                                     {job_id: (started.get(job_id), pid) for job_id in claimed})
                    again += a
                    failed += f
                elif claimed:
                    array = self.db.array(claimed)
                    conn.execute(self.sql["ready_from_jobs"], {"ids": array, "now": now})
                    self.announce_ready()
                    again += claimed
                conn.execute(self.sql["delete_process"], {"id": pid})
        return again, failed

    def claimed_by(self, process_id: int | None) -> list[int]:
        """The ids of the jobs ``process_id`` holds claimed."""
        return [row[0] for row in self.db.query(self.sql["claimed_by_process"], {"process_id": process_id})]

    def process_exists(self, process_id: int) -> bool:
        """Whether the row of ``process_id`` is still there (a supervised process checks its supervisor's)."""
        return self.db.query_one(self.sql["process_exists"], {"id": process_id}) is not None

    def processes(self) -> list[dict[str, Any]]:
        return [dict(row) for row in self.db.query(self.sql["all_processes"])]

    def prune_dead_processes(self, now: float, alive_threshold: float, max_deaths: int,
                             *, exclude: Iterable[int] = (), trust_heartbeats: bool = True) -> list[dict[str, Any]]:
        """Remove processes found dead (see :func:`liveness.dead_processes`); their claimed jobs run again.

        Each row is judged and removed on its own: a dead supervisor's processes keep their rows and jobs
        while they live. ``trust_heartbeats=False`` (the caller's own heartbeat failed: nobody can write) judges
        by pids and stopped processes only.
        """
        pruned = []
        for process, why in dead_processes(self.processes(), now, alive_threshold, exclude,
                                           trust_heartbeats=trust_heartbeats):
            reason = f"process {process['name']} (pid {process['pid']} on {process['hostname']}) died ({why})"
            self.deregister_process(process["id"], now, died=True, reason=reason, max_deaths=max_deaths,
                                    cascade=False)
            pruned.append({**process, "why": why})
        return pruned

    def release_orphaned_claims(self, now: float, max_deaths: int) -> tuple[list[int], list[int]]:
        """Claims whose process row is gone (its process died and was pruned mid-claim): run again."""
        with self.db.transaction() as conn:
            rows = conn.execute(self.sql["take_orphaned_claims"]).fetchall()
            return self._release_after_death(conn, [row[0] for row in rows], "the process that claimed the job is gone",
                                             max_deaths, now, {row[0]: (row[1], row[2]) for row in rows})

    # -- failed jobs -----------------------------------------------------------------------------------------

    def failed_jobs(self, limit: int = 100, offset: int = 0) -> list[FailedJob]:
        rows = self.db.query(self.sql["failed_jobs"], {"limit": limit, "offset": offset})
        return [FailedJob(**{**dict(row), "error": json.loads(row["error"] or "{}")}) for row in rows]

    def _failed_ids(self, conn: Any, job_ids: Sequence[int] | None) -> list[int]:
        if job_ids is None:
            return [row[0] for row in conn.execute(self.sql["all_failed_ids"], {"limit": 1_000_000})]
        return [row[0] for row in conn.execute(self.sql["failed_ids"], {"ids": self.db.array(job_ids)})]

    def retry_failed(self, job_ids: Sequence[int] | None, now: float) -> int:
        """Failed jobs (all with ``None``) back to ready; returns how many."""
        with self.db.transaction() as conn:
            ids = self._failed_ids(conn, job_ids)
            if ids:
                array = self.db.array(ids)
                conn.execute(self.sql["delete_failed"], {"ids": array})
                conn.execute(self.sql["reset_process_deaths"], {"ids": array, "now": now})
                conn.execute(self.sql["ready_from_jobs"], {"ids": self.db.array(self.gate.admit(conn, ids, now)),
                                                           "now": now})
                self.announce_ready()
            return len(ids)

    def discard_failed(self, job_ids: Sequence[int] | None) -> int:
        """Delete failed jobs (all with ``None``); returns how many."""
        with self.db.transaction() as conn:
            ids = self._failed_ids(conn, job_ids)
            if ids:
                conn.execute(self.sql["delete_jobs"], {"ids": self.db.array(ids)})
            return len(ids)

    # -- inspection ------------------------------------------------------------------------------------------

    def job_state(self, job_id: int) -> dict[str, Any] | None:
        row = self.db.query_one(self.sql["job_state"], {"id": job_id})
        return dict(row) if row else None

    def job_result(self, job_id: int) -> JobResult | None:
        """Status, return value, timestamps and error of one job (see :class:`.outcomes.JobResult`)."""
        return self.outcomes.job_result(job_id)

    def cancel(self, job_ids: Sequence[int], now: float) -> dict[int, str]:
        """Cancel jobs; what became of each id (see :meth:`.outcomes.Outcomes.cancel`)."""
        return self.outcomes.cancel(job_ids, now)

    def counts(self) -> dict[str, int]:
        row = self.db.query_one(self.sql["counts"])
        return dict(row) if row else {}

