"""``config/queue.yml``: which workers and dispatchers to run, with Solid Queue's defaults."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from solidstack.config import App, DatabaseConfig, Section
from solidstack.config.database import connects_to_name
from solidstack.config.loader import (
    boolean,
    count,
    duration,
    env_override,
    part_section,
    positive_duration,
    positive_wait,
    string,
    wait,
)
from solidstack.logs import parse_level

ADAPTERS = ("solid_queue", "inline", "test")
ADAPTER_VAR = "SOLIDSTACK_QUEUE_ADAPTER"
# Upper bounds of the counts (docs/decisions/0010): far above any real deployment, low enough that a typo
# (`threads: 30000`, an extra digit) is refused at start instead of exhausting the machine.
MAX_THREADS = 1000
MAX_PROCESSES = 1000
#: Async jobs at once on one worker's loop: each is a task and, usually, a socket.
MAX_ASYNC_CAPACITY = 100_000
MAX_BATCH_SIZE = 100_000
MAX_PROCESS_DEATHS = 1000
_QUEUE_NAME = re.compile(r"^[\w.\-:]+\*?$|^\*$")


def parse_queues(value: Any) -> tuple[str, ...]:
    """``"*"``, ``"a,b"``, ``["a", "b*"]`` as a tuple of names; ``*`` only alone or at the end of a name."""
    if isinstance(value, str):
        names = [name.strip() for name in value.split(",")]
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        names = [name.strip() for name in value]
    else:
        raise ValueError(f"expected a queue name or a list of them, got {value!r}")
    if not names or any(not name for name in names):
        raise ValueError(f"empty queue name in {value!r}")
    for name in names:
        if not _QUEUE_NAME.match(name):
            raise ValueError(
                f"invalid queue name {name!r}: use an exact name, '*' for all queues, or 'prefix*' "
                "(a '*' may only stand alone or at the end)"
            )
    return tuple(names)


@dataclass(frozen=True)
class WorkerConfig:
    queues: tuple[str, ...] = ("*",)
    threads: int = 3
    processes: int = 1
    polling_interval: float = 0.1
    #: How many ``async def`` jobs may run at once on the worker's event loop, independent of ``threads``
    #: (0: an async job holds a thread while it runs).
    async_capacity: int = 0


@dataclass(frozen=True)
class DispatcherConfig:
    polling_interval: float = 1.0
    batch_size: int = 500
    concurrency_maintenance: bool = True
    concurrency_maintenance_interval: float = 600.0


@dataclass(frozen=True)
class SchedulerConfig:
    """``scheduler:`` of queue.yml: tasks added at run time (``schedule_recurring_task``) are read every
    ``polling_interval`` when ``dynamic_tasks_enabled`` (Solid Queue's keys and defaults)."""

    dynamic_tasks_enabled: bool = False
    polling_interval: float = 5.0


@dataclass(frozen=True)
class QueueConfig:
    """Everything ``queue.yml`` says for one environment."""

    workers: tuple[WorkerConfig, ...] = (WorkerConfig(),)
    dispatchers: tuple[DispatcherConfig, ...] = (DispatcherConfig(),)
    adapter: str = "solid_queue"
    database: str = "queue"
    process_heartbeat_interval: float = 60.0
    process_alive_threshold: float = 300.0
    shutdown_timeout: float = 5.0
    preserve_finished_jobs: bool = True
    clear_finished_jobs_after: float = 86400.0
    #: A job whose process died is run again at most this many times, then failed.
    max_process_deaths: int = 3
    #: ``supervisor: {max_restart_failures: N}``: after N failed starts in a row of one process (it ended
    #: before it registered), the supervisor stops and exits with status 1.
    max_restart_failures: int = 10
    scheduler: SchedulerConfig = SchedulerConfig()
    #: ``log_level``: debug, info, warning, error or critical; ``None`` when queue.yml does not say
    #: (``--log-level`` and ``SOLIDSTACK_LOG_LEVEL`` come first, ``info`` last).
    log_level: str | None = None
    file: str = field(default="(defaults)", compare=False)


def _workers(section: Section) -> tuple[WorkerConfig, ...]:
    raw = section.raw("workers")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise section.error("workers", f"expected a list of workers, got {raw!r}")
    workers = []
    for index, item in enumerate(raw):
        sub = section.child(f"workers[{index}]", item if item is not None else {})
        worker = WorkerConfig(
            queues=sub.get("queues", parse_queues, ("*",)),
            threads=sub.get("threads", count(MAX_THREADS), 3),
            processes=sub.get("processes", count(MAX_PROCESSES), 1),
            polling_interval=sub.get("polling_interval", positive_wait, 0.1),
            async_capacity=sub.get("async_capacity", count(MAX_ASYNC_CAPACITY), 0),
        )
        sub.finish()
        workers.append(worker)
    return tuple(workers)


def _scheduler(section: Section) -> SchedulerConfig:
    raw = section.raw("scheduler")
    if raw is None:
        return SchedulerConfig()
    if not isinstance(raw, dict):
        raise section.error("scheduler", f"expected a mapping (dynamic_tasks_enabled, polling_interval), got {raw!r}")
    sub = section.child("scheduler", raw)
    config = SchedulerConfig(dynamic_tasks_enabled=sub.get("dynamic_tasks_enabled", boolean, False),
                             polling_interval=sub.get("polling_interval", positive_wait, 5.0))
    sub.finish()
    return config


def _max_restart_failures(section: Section) -> int:
    raw = section.raw("supervisor")
    if raw is None:
        return QueueConfig.max_restart_failures
    if not isinstance(raw, dict):
        raise section.error("supervisor", f"expected a mapping (max_restart_failures), got {raw!r}")
    sub = section.child("supervisor", raw)
    value = sub.get("max_restart_failures", count(MAX_PROCESS_DEATHS), QueueConfig.max_restart_failures)
    sub.finish()
    return value


def _dispatchers(section: Section) -> tuple[DispatcherConfig, ...]:
    raw = section.raw("dispatchers")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise section.error("dispatchers", f"expected a list of dispatchers, got {raw!r}")
    dispatchers = []
    for index, item in enumerate(raw):
        sub = section.child(f"dispatchers[{index}]", item if item is not None else {})
        dispatcher = DispatcherConfig(
            polling_interval=sub.get("polling_interval", positive_wait, 1.0),
            batch_size=sub.get("batch_size", count(MAX_BATCH_SIZE), 500),
            concurrency_maintenance=sub.get("concurrency_maintenance", boolean, True),
            concurrency_maintenance_interval=sub.get("concurrency_maintenance_interval",
                                                     positive_duration, 600.0),
        )
        sub.finish()
        dispatchers.append(dispatcher)
    return tuple(dispatchers)


def _adapter(value: Any) -> str:
    name = string(value)
    if name not in ADAPTERS:
        raise ValueError(f"unknown queue adapter {name!r} (known: {', '.join(ADAPTERS)})")
    return name


def parse_queue_config(data: dict[str, Any] | None, *, file: str | Path, env: str) -> QueueConfig:
    """A :class:`QueueConfig` from one environment section of ``queue.yml``."""
    if data is None:
        data = {}
    section = Section(data, file=file, env=env)
    has_roles = section.has("workers") or section.has("dispatchers")
    workers = _workers(section)
    dispatchers = _dispatchers(section)
    database = connects_to_name(section.raw("connects_to"), file=Path(file), env=env) or "queue"
    config = QueueConfig(
        workers=workers if has_roles else (WorkerConfig(),),
        dispatchers=dispatchers if has_roles else (DispatcherConfig(),),
        adapter=section.get("adapter", _adapter, "solid_queue"),
        database=database,
        process_heartbeat_interval=section.get("process_heartbeat_interval", positive_wait, 60.0),
        process_alive_threshold=section.get("process_alive_threshold", positive_wait, 300.0),
        shutdown_timeout=section.get("shutdown_timeout", wait, 5.0),
        preserve_finished_jobs=section.get("preserve_finished_jobs", boolean, True),
        clear_finished_jobs_after=section.get("clear_finished_jobs_after", duration, 86400.0),
        max_process_deaths=section.get("max_process_deaths", count(MAX_PROCESS_DEATHS), 3),
        max_restart_failures=_max_restart_failures(section),
        scheduler=_scheduler(section),
        log_level=section.get("log_level", parse_level, None),
        file=str(file),
    )
    section.finish()
    return config


def load_queue_config(app: App, file: str | Path | None = None) -> QueueConfig:
    """``queue.yml`` of ``app`` (or ``file``) for its environment; defaults when the file does not exist.

    ``SOLIDSTACK_QUEUE_ADAPTER`` overrides the adapter, for scripts and test runs.
    """
    path, data = part_section(app, "queue.yml", file)
    return env_override(parse_queue_config(data, file=path, env=app.env), ADAPTER_VAR, "adapter", _adapter)


def database_entry(app: App, config: QueueConfig) -> DatabaseConfig:
    """The database entry ``config`` connects to (an unknown explicit name is an error naming queue.yml)."""
    return app.database(config.database, wanted_by=config.file if config.database != "queue" else None)


def database_config(app: App) -> DatabaseConfig | None:
    """The queue's database entry (for ``solidstack db migrate``)."""
    return database_entry(app, load_queue_config(app))
