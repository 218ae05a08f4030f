"""The scheduler role: enqueues each run of the recurring tasks when it is due.

Several schedulers (several supervisors, several machines) may run the same tasks. Each run is enqueued once:
the job and its ``recurring_executions`` row, unique on ``(task_key, run_at)``, are written in one transaction,
and a scheduler that loses the race rolls its job back. ``run_at`` comes from the schedule, not from the
clock of the scheduler that got there first, so every scheduler computes the same value.

A scheduler that was down (or slow) enqueues the latest due run of a task and skips the older ones, as
Solid Queue does: a backlog of hourly cleanups is one cleanup.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Sequence
from typing import Any

from solidstack.config import App
from solidstack.queue import events
from solidstack.queue._sql import control_queries
from solidstack.queue.config import QueueConfig, SchedulerConfig, load_queue_config
from solidstack.queue.features.concurrency import to_new_job
from solidstack.queue.processes.supervisor import RoleSpec
from solidstack.queue.recurring import RecurringTask, dynamic_task, load_recurring_tasks, register_tasks, validate_tasks
from solidstack.queue.serialization import dump_arguments, load_arguments
from solidstack.queue.storage import QueueStorage

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
                    "class_name": task.class_name, "arguments": dump_arguments(task.args, task.kwargs, job=task.key),
                    "queue_name": task.queue, "priority": task.priority or 0, "description": task.description,
                    "now": now,
                })
            for (key,) in conn.execute(self.sql["recurring_static_keys"]).fetchall():
                if key not in keys:
                    conn.execute(self.sql["recurring_task_delete"], {"key": key})

    def save_dynamic(self, task: RecurringTask) -> None:
        """Store a task added at run time (replacing one of the same key); a static task's key is refused."""
        with self.db.transaction() as conn:
            row = conn.execute(self.sql["recurring_dynamic_upsert"], {
                "key": task.key, "schedule": task.schedule.text, "class_name": task.class_name,
                "arguments": dump_arguments(task.args, task.kwargs, job=task.key), "queue_name": task.queue,
                "priority": task.priority or 0, "description": task.description, "now": time.time(),
            }).fetchone()
        if row is None:
            raise ValueError(f"recurring task {task.key}: config/recurring.yml has a task of that key; "
                             "it cannot be replaced at run time")

    def delete_dynamic(self, key: str) -> bool:
        with self.db.transaction() as conn:
            deleted: int = conn.execute(self.sql["recurring_dynamic_delete"], {"key": key}).rowcount
            return deleted > 0

    def dynamic_rows(self) -> list[Any]:
        return self.db.query(self.sql["recurring_dynamic_tasks"])

    def last_runs(self) -> dict[str, float]:
        return {row["task_key"]: row["last_run_at"] for row in self.db.query(self.sql["recurring_last_runs"])}


class Scheduler:
    """Each poll enqueues the runs that are due and sleeps until the next one (at most ``max_wait``)."""

    kind = "Scheduler"

    def __init__(self, storage: QueueStorage, tasks: Sequence[RecurringTask], *, name: str | None = None,
                 max_wait: float = 60.0, config: SchedulerConfig | None = None) -> None:
        self.storage = storage
        self.static = list(tasks)
        self.tasks = list(tasks)
        self.store = RecurringStore(storage)
        self.name = name or f"scheduler-{secrets.token_hex(5)}"
        self.process_id: int | None = None
        self.max_wait = max_wait
        self.config = config or SchedulerConfig()
        self.next_runs: dict[str, float] = {}
        self._started = False
        #: Tasks added at run time: key -> (the row they were built from, the task or None when invalid).
        self._dynamic: dict[str, tuple[tuple[Any, ...], RecurringTask | None]] = {}
        self._next_load = 0.0

    def metadata(self) -> dict[str, Any]:
        return {"recurring_schedule": [task.key for task in self.tasks]}

    @property
    def title(self) -> str:
        return f"scheduling {len(self.tasks)} recurring task(s)"

    def poll(self, now: float) -> float:
        if not self._started:
            if self.static:
                self.store.sync_static(self.static, now)
            self.next_runs = {task.key: task.schedule.next_after(now) for task in self.static}
            self._started = True
        if self.config.dynamic_tasks_enabled and now >= self._next_load:
            self._next_load = now + self.config.polling_interval
            try:
                self._load_dynamic(now)
            except Exception:
                log.exception("%s: cannot read the tasks added at run time; retrying", self.name)
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
        wait = self.max_wait
        if self.next_runs:
            wait = min(wait, min(self.next_runs.values()) - now)
        if self.config.dynamic_tasks_enabled:
            wait = min(wait, self._next_load - now)
        return max(0.0, wait)

    def _load_dynamic(self, now: float) -> None:
        """Follow the tasks added, changed and removed at run time (``schedule_recurring_task``)."""
        rows = {row["key"]: tuple(row) for row in self.store.dynamic_rows()}
        static = {task.key for task in self.static}
        for key in [key for key in self._dynamic if key not in rows]:
            del self._dynamic[key]
            self.next_runs.pop(key, None)
            log.info("recurring task %s: removed at run time", key)
        for key, row in rows.items():
            if key in static or (key in self._dynamic and self._dynamic[key][0] == row):
                continue
            self.next_runs.pop(key, None)
            task = self._dynamic_task(row)
            self._dynamic[key] = (row, task)
            if task is not None:
                self.next_runs[key] = task.schedule.next_after(now)
                log.info("recurring task %s: %s %s (added at run time)", key, task.target, task.schedule.text)
        self.tasks = self.static + [task for _row, task in self._dynamic.values() if task is not None]

    def _dynamic_task(self, row: tuple[Any, ...]) -> RecurringTask | None:
        try:
            return task_from_row(row)
        except ValueError as exc:  # a class this process does not know, a bad schedule: skip it, say why once
            log.error("%s; not scheduled by %s", exc, self.name)
            return None

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


def task_from_row(row: Any) -> RecurringTask:
    """A task added at run time, from its ``recurring_dynamic_tasks`` row; ``ValueError`` naming it if invalid."""
    key, schedule, class_name, arguments, queue, priority, description = tuple(row)[:7]
    args, kwargs = load_arguments(arguments or "{}")
    return dynamic_task(key, class_name, schedule=schedule, args=args, kwargs=kwargs, queue=queue,
                        priority=priority, description=description)


def _iso(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def scheduler_roles(app: App, *, skip: bool = False, file: str | None = None,
                    config: QueueConfig | None = None) -> tuple[RoleSpec, ...]:
    """The scheduler role for a supervisor, from the app's recurring.yml (call after importing the app code).

    Invalid tasks raise a ConfigError naming the task; no tasks (or ``skip``) means no scheduler, unless
    queue.yml's ``scheduler: {dynamic_tasks_enabled: true}`` asks for tasks added at run time.
    """
    if skip:
        return ()
    tasks = load_recurring_tasks(app, file)
    validate_tasks(tasks, file=file or app.config_file("recurring.yml"), env=app.env)
    register_tasks(tasks)
    scheduler_config = (config or load_queue_config(app)).scheduler
    if not tasks and not scheduler_config.dynamic_tasks_enabled:
        return ()

    def build(storage: QueueStorage, _config: QueueConfig) -> Scheduler:
        return Scheduler(storage, tasks, config=scheduler_config)

    return (RoleSpec("scheduler", build, 0),)
