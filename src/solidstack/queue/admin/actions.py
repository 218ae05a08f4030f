"""What a person may do to jobs from outside a worker: retry, discard, run now. Each returns how many it touched.

Every action takes explicit ids (checked against the state: an id that moved on since the page was drawn is
skipped, never acted on in its new state) or, with ``ids=None``, every job in the state matching a
:class:`~solidstack.queue.admin.inspect.JobFilter`, in batches of one transaction each. The dashboard and scripts use
these; the SQL is in ``sql/<dialect>/inspect.sql`` and the storage's own queries.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from solidstack.queue.admin.inspect import JobFilter, QueueInspector
from solidstack.queue.storage import QueueStorage

#: The actions each state allows, as the dashboard offers them.
ACTIONS: dict[str, tuple[str, ...]] = {
    "failed": ("retry", "discard"),
    "scheduled": ("run_now", "discard"),
    "blocked": ("run_now",),
    "ready": ("discard",),
}


class JobActions:
    """Retry, discard and run-now on one queue database."""

    def __init__(self, storage: QueueStorage) -> None:
        self.storage = storage
        self.db = storage.db
        self.inspector = QueueInspector(storage)
        self.sql = self.inspector.sql

    def perform(self, action: str, state: str, ids: Sequence[int] | None, filter: JobFilter | None = None,
                now: float | None = None) -> int:
        """Run ``action`` (``retry``, ``discard``, ``run_now``) on jobs in ``state``: ``ids``, or every job
        matching ``filter`` when ``ids`` is None. Returns how many jobs it touched."""
        if action not in ACTIONS.get(state, ()):
            raise ValueError(f"{action!r} is not an action on {state} jobs (allowed: {ACTIONS.get(state, ())})")
        now = time.time() if now is None else now
        batches: Iterable[Sequence[int]] = [ids] if ids is not None else self._matching(state, filter)
        return sum(self._one_batch(action, state, list(batch), now) for batch in batches)

    def _matching(self, state: str, filter: JobFilter | None) -> Iterable[list[int]]:
        # Collect first, then act: acting while walking would move rows under the walk.
        return list(self.inspector.job_ids(state, filter))

    def _one_batch(self, action: str, state: str, ids: list[int], now: float) -> int:
        if not ids:
            return 0
        if state == "failed":
            return (self.storage.retry_failed(ids, now) if action == "retry" else self.storage.discard_failed(ids))
        with self.db.transaction() as conn:
            held = self._held(conn, state, ids)
            if not held:
                return 0
            array = self.db.array(held)
            if action == "discard":
                # A ready job of a limited class holds a concurrency slot: free it, and let the next one in.
                if state == "ready" and self.storage.gate.release(conn, held, now):
                    self.storage.announce_ready()
                conn.execute(self.storage.sql["delete_jobs"], {"ids": array})
            elif state == "scheduled":
                conn.execute(self.storage.sql["delete_scheduled"], {"ids": array})
                admitted = self.storage.gate.admit(conn, held, now)  # limited jobs may wait in blocked
                self._make_ready(conn, admitted, now)
            else:  # blocked → run now: past its concurrency limit, on the operator's word
                conn.execute(self.sql["delete_blocked_among"], {"ids": array})
                self._make_ready(conn, held, now)
            return len(held)

    def _held(self, conn: Any, state: str, ids: list[int]) -> list[int]:
        return [row[0] for row in conn.execute(self.sql[f"{state}_ids_among"], {"ids": self.db.array(ids)})]

    def _make_ready(self, conn: Any, ids: list[int], now: float) -> None:
        if ids:
            conn.execute(self.storage.sql["ready_from_jobs"], {"ids": self.db.array(ids), "now": now})
            self.storage.announce_ready()

    def run_recurring(self, key: str, now: float | None = None) -> int | None:
        """Enqueue a run of the recurring task ``key`` now (its schedule is unaffected); the new job's id, or
        ``None`` when a run at this very time was already enqueued. ``LookupError`` when there is no such task;
        a class task needs its job class imported in this process (as the scheduler does)."""
        from solidstack.queue.processes.scheduler import RecurringStore
        from solidstack.queue.recurring import RecurringTask
        from solidstack.queue.recurring.schedule import parse_schedule
        from solidstack.queue.serialization import load_arguments

        row = next((t for t in self.db.query(self.sql["recurring_tasks"]) if t["key"] == key), None)
        if row is None:
            raise LookupError(f"no recurring task called {key!r}")
        args, kwargs = load_arguments(row["arguments"] or '{"args":[],"kwargs":{}}')
        task = RecurringTask(key=row["key"], schedule=parse_schedule(row["schedule"]), class_name=row["class_name"],
                             command=row["command"], args=args, kwargs=kwargs, queue=row["queue_name"],
                             priority=row["priority"], description=row["description"])
        now = time.time() if now is None else now
        return RecurringStore(self.storage).enqueue_run(task, now, now)

    # -- shorthands ------------------------------------------------------------------------------------------

    def retry(self, ids: Sequence[int] | None, filter: JobFilter | None = None) -> int:
        return self.perform("retry", "failed", ids, filter)

    def discard(self, state: str, ids: Sequence[int] | None, filter: JobFilter | None = None) -> int:
        return self.perform("discard", state, ids, filter)

    def run_now(self, state: str, ids: Sequence[int] | None, filter: JobFilter | None = None) -> int:
        return self.perform("run_now", state, ids, filter)
