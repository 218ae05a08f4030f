"""Background jobs on the database: Solid Queue's model in Python.

Define jobs as subclasses of :class:`Job` with a ``perform`` method; enqueue with ``perform_later``; run
``solidstack jobs`` (or the app's ``bin/jobs``) to process them.
"""

from __future__ import annotations

from solidstack import _on_reset
from solidstack.queue.adapters import (
    InlineAdapter,
    SolidQueueAdapter,
    TestAdapter,
    current_adapter,
    queue_storage,
    storage_for,
    use_adapter,
)
from solidstack.queue.adapters import reset as _reset
from solidstack.queue.admin.queues import Queue, QueueInfo, queues
from solidstack.queue.config import DispatcherConfig, QueueConfig, WorkerConfig, load_queue_config
from solidstack.queue.events import Event, instrument, on_start, on_stop, subscribe
from solidstack.queue.features.batches import Batch, BatchError, BatchStatus
from solidstack.queue.features.concurrency import ConcurrencyKeyError, limits_concurrency
from solidstack.queue.features.hooks import JobLogFilter
from solidstack.queue.features.outcomes import (
    CancelError,
    JobCancelled,
    JobFailed,
    JobResult,
    JobTimeout,
    ResultTimeout,
    cancel,
)
from solidstack.queue.features.ratelimit import RateLimitKeyError, limits_rate
from solidstack.queue.features.unique import UniqueKeyError, unique_for
from solidstack.queue.job import (
    DiscardRule,
    Job,
    JobOptions,
    RetryRule,
    UnknownJobError,
    discard_on,
    job_class,
    registered_jobs,
    retry_on,
)
from solidstack.queue.processes.asgi import InProcessJobs, in_process_enabled, jobs_lifespan
from solidstack.queue.processes.dispatcher import Dispatcher
from solidstack.queue.processes.runner import Runner
from solidstack.queue.processes.scheduler import Scheduler
from solidstack.queue.processes.supervisor import AsyncSupervisor, ForkSupervisor, Supervisor
from solidstack.queue.processes.worker import Worker
from solidstack.queue.recurring import (
    RecurringCommandJob,
    RecurringTask,
    load_recurring_tasks,
    schedule_recurring_task,
    unschedule_recurring_task,
)
from solidstack.queue.recurring.schedule import Schedule, ScheduleError, parse_schedule
from solidstack.queue.retention import clear_finished_jobs
from solidstack.queue.rows import NewJob
from solidstack.queue.serialization import SerializationError
from solidstack.queue.storage import FailedJob, JobRow, QueueStorage

_on_reset(_reset)

__all__ = [
    "AsyncSupervisor",
    "Batch",
    "BatchError",
    "BatchStatus",
    "CancelError",
    "ConcurrencyKeyError",
    "DiscardRule",
    "Dispatcher",
    "DispatcherConfig",
    "Event",
    "FailedJob",
    "ForkSupervisor",
    "InProcessJobs",
    "InlineAdapter",
    "Job",
    "JobCancelled",
    "JobFailed",
    "JobLogFilter",
    "JobOptions",
    "JobResult",
    "JobRow",
    "JobTimeout",
    "NewJob",
    "Queue",
    "QueueConfig",
    "QueueInfo",
    "QueueStorage",
    "RateLimitKeyError",
    "RecurringCommandJob",
    "RecurringTask",
    "ResultTimeout",
    "RetryRule",
    "Runner",
    "Schedule",
    "ScheduleError",
    "Scheduler",
    "SerializationError",
    "SolidQueueAdapter",
    "Supervisor",
    "TestAdapter",
    "UniqueKeyError",
    "UnknownJobError",
    "Worker",
    "WorkerConfig",
    "cancel",
    "clear_finished_jobs",
    "current_adapter",
    "discard_on",
    "in_process_enabled",
    "instrument",
    "job_class",
    "jobs_lifespan",
    "limits_concurrency",
    "limits_rate",
    "load_queue_config",
    "load_recurring_tasks",
    "on_start",
    "on_stop",
    "parse_schedule",
    "queue_storage",
    "queues",
    "registered_jobs",
    "retry_on",
    "schedule_recurring_task",
    "storage_for",
    "subscribe",
    "unique_for",
    "unschedule_recurring_task",
    "use_adapter",
]
