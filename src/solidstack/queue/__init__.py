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
from .config import DispatcherConfig, QueueConfig, WorkerConfig, load_queue_config
from .dispatcher import Dispatcher
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
from .runner import Runner
from .serialization import SerializationError
from .storage import FailedJob, JobRow, NewJob, QueueStorage
from .supervisor import AsyncSupervisor, ForkSupervisor, Supervisor
from .worker import Worker

_on_reset(_reset)

__all__ = [
    "AsyncSupervisor",
    "DiscardRule",
    "Dispatcher",
    "DispatcherConfig",
    "FailedJob",
    "ForkSupervisor",
    "InlineAdapter",
    "Job",
    "JobOptions",
    "JobRow",
    "NewJob",
    "QueueConfig",
    "QueueStorage",
    "RetryRule",
    "Runner",
    "SerializationError",
    "SolidQueueAdapter",
    "Supervisor",
    "TestAdapter",
    "UnknownJobError",
    "Worker",
    "WorkerConfig",
    "current_adapter",
    "discard_on",
    "job_class",
    "load_queue_config",
    "queue_storage",
    "registered_jobs",
    "retry_on",
    "storage_for",
    "use_adapter",
]
