"""The rows the queue's inspection returns (:mod:`solidstack.queue.admin.inspect`): counts that say when they stopped,
filters, pages, a job in full, processes, recurring tasks."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

_FOREVER = 1e18


@dataclass(frozen=True)
class Count:
    """A number of rows; ``capped`` when counting stopped at the cap (there are at least ``value``)."""

    value: int
    capped: bool = False

    def __str__(self) -> str:
        return f"{self.value:,}+" if self.capped else f"{self.value:,}"


@dataclass(frozen=True)
class QueueStat:
    """A queue as the dashboard lists it: ``size`` (ready jobs, capped), ``latency`` in seconds, ``paused``."""

    name: str
    size: Count
    latency: float
    paused: bool


@dataclass(frozen=True)
class MinuteStat:
    """One queue's minute for the chart: ``finished`` jobs, how many of them have a start time (``started``: not
    those finished before migration 0008), and their enqueue-to-start latency in seconds, mean and largest
    (None when none has a start time)."""

    finished: int
    started: int
    latency_mean: float | None
    latency_max: float | None


@dataclass(frozen=True)
class JobFilter:
    """What a list of jobs is narrowed to; every field is optional. ``since``/``until`` (Unix seconds) bound
    when the job entered its state (finished, failed, ...)."""

    class_name: str | None = None
    queue: str | None = None
    search: str | None = None
    since: float | None = None
    until: float | None = None

    def params(self) -> dict[str, Any]:
        search = None
        if self.search:
            escaped = self.search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            search = f"%{escaped}%"
        return {"class_name": self.class_name or None, "queue": self.queue or None, "search": search,
                "since": self.since if self.since is not None else 0.0,
                "until": self.until if self.until is not None else _FOREVER}

    @property
    def empty(self) -> bool:
        return not (self.class_name or self.queue or self.search or self.since is not None or self.until is not None)


@dataclass(frozen=True)
class JobSummary:
    """One row of a list of jobs. ``state_at``: when it entered its state (ready, failed, finished ...), or its
    scheduled time for a scheduled job. ``detail``: the holding process id (claimed), the concurrency key
    (blocked) or the error (failed)."""

    id: int
    queue_name: str
    class_name: str
    arguments: str
    priority: int
    active_job_id: str
    scheduled_at: float | None
    finished_at: float | None
    concurrency_key: str | None
    executions: int
    created_at: float
    state_at: float | None
    detail: Any
    state: str = ""

    @property
    def error(self) -> dict[str, Any]:
        return _error(self.detail) if self.state == "failed" else {}


@dataclass(frozen=True)
class Page:
    """A keyset page: ``jobs`` newest first; ``next_after`` is the cursor of the next page (None at the end):
    the last job's id, or for finished jobs ``"<finished_at>:<id>"`` (they are listed by finishing time)."""

    jobs: list[JobSummary]
    next_after: str | None
    #: Set when a search stopped at its window: the id (or, finished, the id at the finishing time) it read to.
    searched_to: int | None = None


@dataclass(frozen=True)
class FailedAttempt:
    """One failed run of a job (decision 0048). ``attempt``: the run's number as the job saw it (its
    ``executions``; a run again after its process died, or retried by hand, has the same number as the run before);
    ``outcome``: ``retried`` (its ``retry_on`` ran it again), ``failed`` (it stayed failed) or ``died`` (its process
    died while it ran: it ran again); ``started_at``/``failed_at`` in Unix seconds; the process that ran it as it
    was registered then (``process_name``, ``hostname``, ``pid``; None when unknown)."""

    id: int
    job_id: int
    attempt: int
    outcome: str
    error: dict[str, Any]
    started_at: float | None
    failed_at: float
    process_id: int | None = None
    process_name: str | None = None
    hostname: str | None = None
    pid: int | None = None

    @property
    def exception_class(self) -> str:
        return str(self.error.get("exception_class", ""))

    @property
    def message(self) -> str:
        return str(self.error.get("message", ""))

    @property
    def backtrace(self) -> str:
        """The full backtrace as one text (the record keeps it as lines)."""
        lines = self.error.get("backtrace") or []
        if not isinstance(lines, list):
            return str(lines)
        return "".join(line if line.endswith("\n") else f"{line}\n" for line in map(str, lines))

    @property
    def process(self) -> str | None:
        """``name (pid N on host)``, or None when no process is known."""
        if self.process_name is None and self.pid is None:
            return None
        return f"{self.process_name or 'process'} (pid {self.pid} on {self.hostname or '?'})"


@dataclass(frozen=True)
class JobDetail:
    """Everything stored about one job."""

    id: int
    state: str
    queue_name: str
    class_name: str
    arguments: str
    priority: int
    active_job_id: str
    created_at: float
    updated_at: float
    scheduled_at: float | None
    finished_at: float | None
    executions: int
    process_deaths: int
    concurrency_key: str | None
    #: The error of its failed execution: ``exception_class``, ``message``, ``backtrace`` (list of lines).
    error: dict[str, Any] = field(default_factory=dict)
    failed_at: float | None = None
    claimed_at: float | None = None
    process: dict[str, Any] | None = None
    recurring_task: str | None = None
    state_at: float | None = None
    #: When its run started: while it runs (its claim), or once finished (kept with it).
    started_at: float | None = None
    #: Its failed attempts, oldest first (the newest ``QueueStorage.attempts_kept`` are kept).
    attempts: list[FailedAttempt] = field(default_factory=list)


@dataclass(frozen=True)
class ProcessInfo:
    """A registered process with the jobs it holds now; ``stale`` when its heartbeat is older than the
    threshold (it is probably dead and will be pruned)."""

    id: int
    kind: str
    name: str
    hostname: str | None
    pid: int
    supervisor_id: int | None
    last_heartbeat_at: float
    created_at: float
    metadata: dict[str, Any]
    stale: bool
    running: list[dict[str, Any]]


@dataclass(frozen=True)
class RecurringInfo:
    key: str
    schedule: str
    description_of_schedule: str
    cron: str
    target: str
    queue_name: str | None
    priority: int | None
    static: bool
    description: str | None
    last_run_at: float | None
    last_job_id: int | None
    next_run_at: float | None


def _error(text: Any) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return {"exception_class": "?", "message": str(text), "backtrace": []}
    return value if isinstance(value, dict) else {"exception_class": "?", "message": str(value), "backtrace": []}
