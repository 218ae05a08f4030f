"""Read the queue's state for people: jobs by state, one job in full, processes, recurring tasks, counts.

The dashboard (and anything else that shows the queue) reads through here; the SQL is in
``sql/<dialect>/inspect.sql``. Built for large tables: lists are keyset pages walking the primary key backwards
(never ``OFFSET``), and counts stop at a cap and say so (:class:`Count`), so a page costs the same with a
thousand jobs or ten million.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from solidstack.queue._sql import file_queries
from solidstack.queue.admin.inspect_rows import (
    Count,
    FailedAttempt,
    JobDetail,
    JobFilter,
    JobSummary,
    MinuteStat,
    Page,
    ProcessInfo,
    QueueStat,
    RecurringInfo,
    _error,
)
from solidstack.queue.admin.queues import paused_queues
from solidstack.queue.storage import QueueStorage

#: The states a job can be in, in the order the dashboard shows them (``claimed`` is "in progress").
STATES = ("ready", "scheduled", "claimed", "blocked", "failed", "finished")
#: Counts stop here by default: counting a million rows is what makes dashboards slow.
COUNT_CAP = 10_000
#: Counts narrowed by a filter stop sooner: each row is tested against the filter, not just counted.
FILTERED_COUNT_CAP = 1_000
#: A search of the arguments reads at most this many jobs per page (and for its count).
SEARCH_WINDOW = 20_000
_NO_AFTER = 2**62
_FOREVER = 1e18


def inspect_queries(storage: QueueStorage) -> dict[str, str]:
    """The inspection queries for ``storage``'s dialect."""
    return file_queries(storage.db, "inspect.sql")


class QueueInspector:
    """Reads of one queue database for people. ``count_cap``: where counts stop (and say so)."""

    def __init__(self, storage: QueueStorage, *, count_cap: int = COUNT_CAP,
                 filtered_count_cap: int = FILTERED_COUNT_CAP, search_window: int = SEARCH_WINDOW,
                 process_alive_threshold: float = 300.0) -> None:
        self.storage = storage
        self.db = storage.db
        self.sql = inspect_queries(storage)
        self.count_cap = count_cap
        self.filtered_count_cap = filtered_count_cap
        self.search_window = search_window
        self.process_alive_threshold = process_alive_threshold

    # -- counts and queues -----------------------------------------------------------------------------------

    def _count(self, sql: str, params: dict[str, Any], cap: int) -> Count:
        row = self.db.query_one(sql, {**params, "cap": cap + 1})
        n = int(row["n"]) if row else 0
        return Count(min(n, cap), n > cap)

    def count(self, state: str, filter: JobFilter | None = None) -> Count:
        """Jobs in ``state`` (matching ``filter``), up to the cap; ``capped`` says when there are more."""
        _check_state(state)
        if filter is None or filter.empty:
            return self._count(self.sql[f"count_{state}_all"], {}, self.count_cap)
        floor = self._floor(state, filter, _FOREVER, _NO_AFTER)
        count = self._count(self.sql[f"count_{state}"], {**filter.params(), **floor},
                            min(self.count_cap, self.filtered_count_cap))
        # A search counts in the newest ``search_window`` jobs only: there may be more below.
        return Count(count.value, True) if floor["floor"] > 0 else count

    def counts(self, filter: JobFilter | None = None) -> dict[str, Count]:
        """Each state's number of jobs (capped), narrowed by ``filter``."""
        if filter is None or filter.empty:
            row = self.db.query_one(self.sql["counts_all"], {"cap": self.count_cap + 1})
            return {state: Count(min(int(row[state]), self.count_cap), int(row[state]) > self.count_cap)
                    for state in STATES}
        return {state: self.count(state, filter) for state in STATES}

    def queue_names(self) -> list[str]:
        """The queues with ready jobs or a pause, by name (one index probe per queue)."""
        names = {row[0] for row in self.db.query(self.sql["queue_names"])}
        return sorted(names | set(paused_queues(self.storage)))

    def queues(self, now: float | None = None, *, window: int = 1000) -> list[QueueStat]:
        """Every queue with ready jobs or a pause: size (capped), latency, paused.

        Latency is the age of the oldest of the next ``window`` jobs in claim order: exact for a queue of up to
        ``window`` ready jobs; on a longer queue a job made ready again long after it was enqueued (a retry)
        may hide further back. Costs one index probe per queue, never a scan of the ready table.
        """
        now = time.time() if now is None else now
        paused = set(paused_queues(self.storage))
        stats = []
        for name in sorted({row[0] for row in self.db.query(self.sql["queue_names"])} | paused):
            size = self._count(self.sql["queue_size"], {"queue": name}, self.count_cap)
            row = self.db.query_one(self.sql["queue_oldest"], {"queue": name, "window": window})
            oldest = row["oldest"] if row else None
            stats.append(QueueStat(name, size, max(0.0, now - oldest) if oldest is not None else 0.0,
                                   name in paused))
        return stats

    def class_names(self, recent: int = 5_000) -> list[str]:
        """Job classes of the ``recent`` newest jobs, as suggestions for a filter (any class can be typed)."""
        return [row[0] for row in self.db.query(self.sql["class_names"], {"limit": recent})]

    # -- lists -----------------------------------------------------------------------------------------------

    def jobs(self, state: str, filter: JobFilter | None = None, *, after: str | int | None = None,
             limit: int = 50) -> Page:
        """A page of jobs in ``state``, newest first, after the cursor ``after`` (the previous page's
        ``next_after``); ``ValueError`` for a cursor that is not one.

        A search of the arguments reads at most ``search_window`` jobs per page (no index serves a substring):
        a page may then hold fewer matches than ``limit``, and ``next_after`` continues below what was read.
        """
        _check_state(state)
        filter = filter or JobFilter()
        after_at, after_id = _cursor(after)
        params = {**filter.params(), "after": after_id, "after_at": after_at, "limit": limit + 1,
                  **self._floor(state, filter, after_at, after_id)}
        rows = self.db.query(self.sql[f"jobs_{state}"], params)
        jobs = [JobSummary(**dict(row), state=state) for row in rows[:limit]]
        if len(rows) > limit:
            last = jobs[-1]
            return Page(jobs, f"{last.state_at!r}:{last.id}" if state == "finished" else str(last.id))
        if params["floor"] > 0:  # the search stopped at its window: go on below it
            return Page(jobs, f"{params['floor_at']!r}:{params['floor']}" if state == "finished"
                        else str(params["floor"] + 1), searched_to=params["floor"])
        return Page(jobs, None)

    def _floor(self, state: str, filter: JobFilter, after_at: float, after_id: int) -> dict[str, Any]:
        """Where a search's scan stops below the cursor (nothing to stop when not searching)."""
        none = {"floor": 0, "floor_at": -1.0}
        if not filter.search:
            return none
        row = self.db.query_one(self.sql[f"floor_{state}"], {"after": after_id, "after_at": after_at,
                                                              "window": self.search_window})
        if row is None:
            return none
        return {"floor": int(row["id"]), "floor_at": float(row["finished_at"]) if state == "finished" else -1.0}

    def job_ids(self, state: str, filter: JobFilter | None = None, *, batch: int = 1000) -> Iterator[list[int]]:
        """The ids of every job in ``state`` matching ``filter``, in batches (for actions on "all matching")."""
        after: str | None = None
        while True:
            page = self.jobs(state, filter, after=after, limit=batch)
            if page.jobs:
                yield [job.id for job in page.jobs]
            if page.next_after is None:
                return
            after = page.next_after

    def job(self, job_id: int) -> JobDetail | None:
        """One job with everything stored about it, or ``None`` when there is no such job."""
        row = self.db.query_one(self.sql["job_detail"], {"id": job_id})
        if row is None:
            return None
        r = dict(row)
        if r["finished_at"] is not None:
            state, state_at = "finished", r["finished_at"]
        elif r["failed_at"] is not None:
            state, state_at = "failed", r["failed_at"]
        elif r["claimed_at"] is not None:
            state, state_at = "claimed", r["claimed_at"]
        elif r["ready_at"] is not None:
            state, state_at = "ready", r["ready_at"]
        elif r["scheduled_for"] is not None:
            state, state_at = "scheduled", r["scheduled_for"]
        elif r["blocked_key"] is not None:
            state, state_at = "blocked", None
        else:
            state, state_at = "unknown", None
        process = None
        if r["process_id"] is not None:
            process = {"id": r["process_id"], "name": r["process_name"], "hostname": r["process_hostname"],
                       "pid": r["process_pid"]}
        return JobDetail(
            id=r["id"], state=state, queue_name=r["queue_name"], class_name=r["class_name"],
            arguments=r["arguments"], priority=r["priority"], active_job_id=r["active_job_id"],
            created_at=r["created_at"], updated_at=r["updated_at"], scheduled_at=r["scheduled_at"],
            finished_at=r["finished_at"], executions=r["executions"], process_deaths=r["process_deaths"],
            concurrency_key=r["concurrency_key"] or r["blocked_key"], error=_error(r["error"]),
            failed_at=r["failed_at"], claimed_at=r["claimed_at"], process=process,
            recurring_task=r["recurring_task"], state_at=state_at,
            started_at=r["claimed_at"] if state == "claimed" else r["started_at"], attempts=self.attempts(job_id))

    def attempts(self, job_id: int) -> list[FailedAttempt]:
        """The failed attempts of ``job_id``, oldest first: each with its error (class, message, full
        backtrace), number, start and failure times and process (empty for an unknown job)."""
        return [FailedAttempt(**{**dict(row), "error": _error(row["error"])})
                for row in self.db.query(self.sql["job_attempts"], {"id": job_id})]

    # -- processes and recurring tasks -----------------------------------------------------------------------

    def processes(self, now: float | None = None, *, running_limit: int = 1000) -> list[ProcessInfo]:
        """Every registered process with the jobs it is running now (up to ``running_limit`` in all)."""
        now = time.time() if now is None else now
        running: dict[int, list[dict[str, Any]]] = {}
        for row in self.db.query(self.sql["running_jobs"], {"limit": running_limit}):
            running.setdefault(row["process_id"], []).append(dict(row))
        result = []
        for p in self.storage.processes():
            try:
                metadata = json.loads(p["metadata"] or "{}")
            except ValueError:
                metadata = {}
            result.append(ProcessInfo(
                id=p["id"], kind=p["kind"], name=p["name"], hostname=p["hostname"], pid=p["pid"],
                supervisor_id=p["supervisor_id"], last_heartbeat_at=p["last_heartbeat_at"],
                created_at=p["created_at"], metadata=metadata if isinstance(metadata, dict) else {},
                stale=now - p["last_heartbeat_at"] > self.process_alive_threshold,
                running=running.get(p["id"], [])))
        return result

    def recurring_tasks(self, now: float | None = None) -> list[RecurringInfo]:
        """The recurring tasks the schedulers registered, with their last run (and its job) and next run."""
        from solidstack.queue.recurring.schedule import parse_schedule

        now = time.time() if now is None else now
        last = {row["task_key"]: (row["run_at"], row["job_id"])
                for row in self.db.query(self.sql["recurring_last_run_jobs"])}
        tasks = []
        for row in self.db.query(self.sql["recurring_tasks"]):
            try:
                schedule = parse_schedule(row["schedule"])
                words, cron, next_run = schedule.describe(), schedule.cron, schedule.next_after(now)
            except ValueError as exc:
                words, cron, next_run = f"invalid schedule: {exc}", "", None
            run_at, job_id = last.get(row["key"], (None, None))
            tasks.append(RecurringInfo(
                key=row["key"], schedule=row["schedule"], description_of_schedule=words, cron=cron,
                target=row["class_name"] or f"command {row['command']}", queue_name=row["queue_name"],
                priority=row["priority"], static=bool(row["static"]), description=row["description"],
                last_run_at=run_at, last_job_id=job_id, next_run_at=next_run))
        return tasks

    # -- for charts and metrics ------------------------------------------------------------------------------

    def finished_per_minute(self, since: float) -> dict[str, dict[int, int]]:
        """Jobs finished per queue and minute (Unix minute) since ``since``."""
        return {name: {minute: stat.finished for minute, stat in minutes.items()}
                for name, minutes in self.finished_minutes(since).items()}

    def finished_minutes(self, since: float) -> dict[str, dict[int, MinuteStat]]:
        """Per queue and minute (Unix minute) since ``since``: the jobs finished in it and their enqueue-to-start
        latency (:class:`MinuteStat`). One walk of the finished jobs' index (finished jobs only: with
        ``preserve_finished_jobs`` off there is nothing to read)."""
        out: dict[str, dict[int, MinuteStat]] = {}
        for row in self.db.query(self.sql["finished_per_minute"], {"since": since}):
            started = int(row["started"] or 0)
            out.setdefault(row["queue_name"], {})[int(row["minute"])] = MinuteStat(
                int(row["n"]), started, float(row["latency_sum"] or 0.0) / started if started else None,
                float(row["latency_max"]) if started and row["latency_max"] is not None else None)
        return out

    def failed_per_class(self) -> dict[str, int]:
        """Failed jobs per class (for metrics)."""
        return {row[0]: int(row[1]) for row in self.db.query(self.sql["failed_per_class"])}

    def finished_per_class(self, since: float) -> dict[str, int]:
        """Jobs finished since ``since`` per class (for metrics: throughput per class)."""
        return {row[0]: int(row[1]) for row in self.db.query(self.sql["finished_per_class"], {"since": since})}

    def process_counts(self) -> dict[str, int]:
        return {row[0]: int(row[1]) for row in self.db.query(self.sql["process_count"])}


def _cursor(after: str | int | None) -> tuple[float, int]:
    """``(time, id)`` of a page cursor: ``"123"`` or ``"1700000000.25:123"``; none is the start."""
    if after is None or after == "":
        return _FOREVER, _NO_AFTER
    if isinstance(after, int):
        return _FOREVER, after
    at, _, job_id = after.rpartition(":")
    try:
        return (float(at) if at else _FOREVER), int(job_id)
    except ValueError:
        raise ValueError(f"not a page cursor: {after!r}") from None


def _check_state(state: str) -> None:
    if state not in STATES:
        raise ValueError(f"unknown job state {state!r}: expected one of {', '.join(STATES)}")


__all__ = ["COUNT_CAP", "FILTERED_COUNT_CAP", "SEARCH_WINDOW", "STATES", "Count", "FailedAttempt", "JobDetail",
           "JobFilter", "JobSummary", "MinuteStat", "Page", "ProcessInfo", "QueueInspector", "QueueStat",
           "RecurringInfo", "inspect_queries"]
