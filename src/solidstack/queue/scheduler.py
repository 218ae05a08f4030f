"""The scheduler role: enqueues each run of the recurring tasks when it is due.

Several schedulers (several supervisors, several machines) may run the same tasks. Each run is enqueued once:
the job and its ``recurring_executions`` row, unique on ``(task_key, run_at)``, are written in one transaction,
and a scheduler that loses the race rolls its job back. ``run_at`` comes from the schedule, not from the
clock of the scheduler that got there first, so every scheduler computes the same value.

A scheduler that was down (or slow) enqueues the latest due run of a task and skips the older ones, as
Solid Queue does: a backlog of hourly cleanups is one cleanup.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Sequence
from typing import Any

from ..config import App
from . import events
from ._sql import control_queries
from .concurrency import to_new_job
from .config import QueueConfig
from .recurring import RecurringTask, load_recurring_tasks, register_tasks, validate_tasks
from .storage import QueueStorage
from .supervisor import RoleSpec

log = logging.getLogger("solidstack.queue")


class _AlreadyEnqueued(Exception):
    """Another scheduler enqueued this run first; roll back our job."""


class RecurringStore:
    """The recurring tables: runs enqueued once, static tasks kept in step with recurring.yml."""

    def __init__(self, storage: QueueStorage) -> None:
        self.storage = storage
        self.db = storage.db
        self.sql = control_queries(storage.db)

    def enqueue_run(self, task: RecurringTask, run_at: float, now: float) -> int | None:
        """Enqueue the run of ``task`` at ``run_at``; ``None`` when it was already enqueued (by anyone)."""
        job = task.build_job()
        row = to_new_job(job)
        params = {"task_key": task.key, "run_at": run_at, "now": now}
        try:
            with self.db.transaction() as conn:
                if conn.execute(self.sql["recurring_execution_exists"], params).fetchone() is not None:
                    return None
                job_id = self.storage.enqueue([row], now)[0]
                if conn.execute(self.sql["recurring_execution_insert"], {**params, "job_id": job_id}).fetchone() \
                        is None:
                    raise _AlreadyEnqueued
        except _AlreadyEnqueued:
            return None
        job.provider_job_id = job_id
        return job_id

    def sync_static(self, tasks: Sequence[RecurringTask], now: float) -> None:
        """Write the file's tasks to ``recurring_tasks``; drop static tasks the file no longer has."""
        keys = {task.key for task in tasks}
        with self.db.transaction() as conn:
            for task in tasks:
                conn.execute(self.sql["recurring_task_upsert"], {
                    "key": task.key, "schedule": task.schedule.text, "command": task.command,
                    "class_name": task.class_name, "arguments": json.dumps([list(task.args), task.kwargs],
                                                                           default=str),
                    "queue_name": task.queue, "priority": task.priority or 0, "description": task.description,
                    "now": now,
                })
            for (key,) in conn.execute(self.sql["recurring_static_keys"]).fetchall():
                if key not in keys:
                    conn.execute(self.sql["recurring_task_delete"], {"key": key})

    def last_runs(self) -> dict[str, float]:
        return {row["task_key"]: row["last_run_at"] for row in self.db.query(self.sql["recurring_last_runs"])}


class Scheduler:
    """Each poll enqueues the runs that are due and sleeps until the next one (at most ``max_wait``)."""

    kind = "Scheduler"

    def __init__(self, storage: QueueStorage, tasks: Sequence[RecurringTask], *, name: str | None = None,
                 max_wait: float = 60.0) -> None:
        self.storage = storage
        self.tasks = list(tasks)
        self.store = RecurringStore(storage)
        self.name = name or f"scheduler-{secrets.token_hex(5)}"
        self.process_id: int | None = None
        self.max_wait = max_wait
        self.next_runs: dict[str, float] = {}

    def metadata(self) -> dict[str, Any]:
        return {"recurring_schedule": [task.key for task in self.tasks]}

    @property
    def title(self) -> str:
        return f"scheduling {len(self.tasks)} recurring task(s)"

    def poll(self, now: float) -> float:
        if not self.next_runs and self.tasks:
            self.store.sync_static(self.tasks, now)
            self.next_runs = {task.key: task.schedule.next_after(now) for task in self.tasks}
        for task in self.tasks:
            due = self.next_runs[task.key]
            if due > now:
                continue
            following = task.schedule.next_after(due)
            skipped = 0
            while following <= now:  # behind: keep the latest due run only
                due, following, skipped = following, task.schedule.next_after(following), skipped + 1
            if skipped:
                events.instrument("recurring_skip", task=task.key, runs=skipped, run_at=due)
            self.next_runs[task.key] = following
            self._enqueue(task, due, now)
        if not self.next_runs:
            return self.max_wait
        return max(0.0, min(self.max_wait, min(self.next_runs.values()) - now))

    def _enqueue(self, task: RecurringTask, run_at: float, now: float) -> None:
        try:
            job_id = self.store.enqueue_run(task, run_at, now)
        except Exception as exc:
            # A bad run (a concurrency key that raises, a database error) must not stop the other tasks.
            log.error("recurring task %s: cannot enqueue the run at %s: %s", task.key, _iso(run_at), exc)
            events.instrument("recurring_error", task=task.key, run_at=run_at, error=str(exc))
            return
        if job_id is not None:
            log.info("recurring task %s: enqueued %s (job %d) for %s", task.key, task.target, job_id, _iso(run_at))
        events.instrument("recurring_enqueue", task=task.key, run_at=run_at, job_id=job_id,
                          enqueued=job_id is not None)

    def shutdown(self, timeout: float) -> None:
        """Nothing in hand: each run is one transaction."""


def _iso(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def scheduler_roles(app: App, *, skip: bool = False, file: str | None = None) -> tuple[RoleSpec, ...]:
    """The scheduler role for a supervisor, from the app's recurring.yml (call after importing the app code).

    Invalid tasks raise a ConfigError naming the task; no tasks (or ``skip``) means no scheduler.
    """
    if skip:
        return ()
    tasks = load_recurring_tasks(app, file)
    validate_tasks(tasks, file=file or app.config_file("recurring.yml"), env=app.env)
    register_tasks(tasks)
    if not tasks:
        return ()

    def build(storage: QueueStorage, _config: QueueConfig) -> Scheduler:
        return Scheduler(storage, tasks)

    return (RoleSpec("scheduler", build, 0),)
