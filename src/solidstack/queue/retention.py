"""Retention: delete finished jobs older than ``clear_finished_jobs_after``, in small batches.

Callable as a recurring ``command:`` (``solidstack.queue.retention:clear_finished_jobs``), as Solid Queue's
template schedules it ``every hour at minute 12``, or from ``solidstack jobs clear-finished``.
"""

from __future__ import annotations

import time

from solidstack.queue import events
from solidstack.queue._sql import control_queries
from solidstack.queue.storage import QueueStorage


def clear_finished_jobs(storage: QueueStorage | None = None, *, finished_before: float | None = None,
                        older_than: float | None = None, batch_size: int = 500, class_name: str | None = None,
                        sleep_between_batches: float = 0.0, now: float | None = None) -> int:
    """Delete finished jobs that finished before ``finished_before`` (a Unix time) or ``older_than`` seconds ago
    (default: the app's ``clear_finished_jobs_after``); each batch is one short transaction. Returns how many.

    Failed, ready, scheduled, blocked and running jobs are never touched.
    """
    if storage is None or (finished_before is None and older_than is None):
        from solidstack.config import current_app
        from solidstack.queue.adapters import queue_storage
        from solidstack.queue.config import load_queue_config

        storage = storage or queue_storage()
        if finished_before is None and older_than is None:
            older_than = load_queue_config(current_app()).clear_finished_jobs_after
    now = time.time() if now is None else now
    cutoff = finished_before if finished_before is not None else now - float(older_than or 0.0)
    sql, db = control_queries(storage.db), storage.db
    deleted = 0
    while True:
        with db.transaction() as conn:
            ids = [row[0] for row in conn.execute(sql["finished_batch"],
                                                  {"before": cutoff, "class_name": class_name, "limit": batch_size})]
            if ids:
                conn.execute(storage.sql["delete_jobs"], {"ids": db.array(ids)})
        deleted += len(ids)
        if len(ids) < batch_size:
            break
        if sleep_between_batches:
            time.sleep(sleep_between_batches)
    events.instrument("clear_finished", jobs=deleted, finished_before=cutoff)
    return deleted
