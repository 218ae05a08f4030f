"""Background jobs on the database: Solid Queue's model in Python.

Define jobs as subclasses of :class:`Job` with a ``perform`` method; enqueue with ``perform_later``; run
``solidstack jobs`` (or the app's ``bin/jobs``) to process them.
"""

from __future__ import annotations

from .. import _on_reset
from .adapters import (
    InlineAdapter,
    SolidQueueAdapter,
    TestAdapter,
    current_adapter,
    queue_storage,
    storage_for,
    use_adapter,
)
from .adapters import reset as _reset
from .asgi import InProcessJobs, in_process_enabled, jobs_lifespan
from .batches import Batch, BatchError, BatchStatus
from .concurrency import ConcurrencyKeyError, limits_concurrency
from .config import DispatcherConfig, QueueConfig, WorkerConfig, load_queue_config
from .dispatcher import Dispatcher
from .events import Event, instrument, on_start, on_stop, subscribe
from .hooks import JobLogFilter
from .job import (
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
from .outcomes import (
    CancelError,
    JobCancelled,
    JobFailed,
    JobResult,
    JobTimeout,
    ResultTimeout,
    cancel,
)
from .queues import Queue, QueueInfo, queues
from .ratelimit import RateLimitKeyError, limits_rate
from .recurring import (
    RecurringCommandJob,
    RecurringTask,
    load_recurring_tasks,
    schedule_recurring_task,
    unschedule_recurring_task,
)
from .retention import clear_finished_jobs
from .rows import NewJob
from .runner import Runner
from .schedule import Schedule, ScheduleError, parse_schedule
from .scheduler import Scheduler
from .serialization import SerializationError
from .storage import FailedJob, JobRow, QueueStorage
from .supervisor import AsyncSupervisor, ForkSupervisor, Supervisor
from .unique import UniqueKeyError, unique_for
from .worker import Worker

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
