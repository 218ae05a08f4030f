"""``config/recurring.yml``: recurring tasks, loaded into typed tasks and checked before anything starts.

Each entry of the environment's section is a task key with ``class`` (a registered job class) or ``command``
(a dotted path ``package.module:attr.attr`` to a callable), ``args`` (a value, a list, or a list whose last
mapping is keyword arguments), ``queue``, ``priority``, ``schedule`` and ``description``. An entry without
``schedule`` is ignored, as Solid Queue does; any other problem stops start-up with the task key and the reason.

A ``command`` is taken from the YAML file, never from the database and never evaluated as code: the job stored
for a run is :class:`RecurringCommandJob` with the task key as its only argument, and the worker looks the
callable up in the recurring tasks it loaded itself.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from solidstack.config import App, ConfigError, Section, current_app
from solidstack.config.loader import integer, part_section, string
from solidstack.queue.job import Job, UnknownJobError, job_class
from solidstack.queue.recurring.schedule import Schedule, ScheduleError, parse_schedule
from solidstack.queue.serialization import SerializationError, dump_arguments

log = logging.getLogger("solidstack.queue")

_COMMAND = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def split_args(value: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``args`` of recurring.yml as positional and keyword arguments.

    A list whose last item is a mapping gives that mapping as keyword arguments; a lone mapping is keyword
    arguments; any other value is the one positional argument.
    """
    if value is None:
        return (), {}
    if isinstance(value, dict):
        args, kwargs = [], value
    elif isinstance(value, list):
        if value and isinstance(value[-1], dict):
            args, kwargs = value[:-1], value[-1]
        else:
            args, kwargs = value, {}
    else:
        args, kwargs = [value], {}
    bad = [key for key in kwargs if not isinstance(key, str) or not key.isidentifier()]
    if bad:
        raise ValueError(f"keyword argument names must be identifiers, got {bad[0]!r}")
    return tuple(args), dict(kwargs)


def resolve_command(path: str) -> Any:
    """The callable a ``module:attr.attr`` path names (importing the module)."""
    if not isinstance(path, str) or not _COMMAND.match(path):
        raise ValueError(f"command must be a dotted path 'package.module:name' (or ':Class.method'), got {path!r}; "
                         "code is never evaluated")
    module_name, _, attrs = path.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import module {module_name!r} of command {path!r}: {exc}") from None
    for attr in attrs.split("."):
        try:
            target = getattr(target, attr)
        except AttributeError:
            raise ValueError(f"command {path!r}: {attr!r} not found") from None
    if not callable(target):
        raise ValueError(f"command {path!r} is not callable")
    return target


@dataclass(frozen=True)
class RecurringTask:
    """One entry of recurring.yml."""

    key: str
    schedule: Schedule
    class_name: str | None = None
    command: str | None = None
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    queue: str | None = None
    priority: int | None = None
    description: str | None = None

    @property
    def target(self) -> str:
        return self.class_name or f"command {self.command}"

    def validate(self) -> None:
        """Check what needs the app's code: the class is registered, the command resolves, the arguments fit.

        Raises ``ValueError`` with the reason (the caller names the task).
        """
        if self.class_name is not None:
            cls = job_class(self.class_name)
            _check_signature(cls.perform, self.args, self.kwargs, f"{self.class_name}.perform", skip_self=True)
        else:
            _check_signature(resolve_command(self.command or ""), self.args, self.kwargs, str(self.command))
        dump_arguments(self.args, self.kwargs, job=self.key)

    def build_job(self) -> Job:
        """The job to enqueue for one run."""
        if self.class_name is not None:
            job = job_class(self.class_name)(*self.args, **self.kwargs)
        else:
            job = RecurringCommandJob(self.key)
        if self.queue is not None:
            job.queue_name = self.queue
        if self.priority is not None:
            job.priority = self.priority
        return job


def _check_signature(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any], name: str, *,
                     skip_self: bool = False) -> None:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # builtins without a signature: checked when called
    if skip_self:
        params = list(signature.parameters.values())[1:]
        signature = signature.replace(parameters=params)
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise ValueError(f"args do not fit {name}{signature}: {exc}") from None


def parse_recurring(data: dict[str, Any] | None, *, file: str | Path, env: str) -> list[RecurringTask]:
    """The tasks of one environment section of recurring.yml (entries without ``schedule`` are skipped)."""
    tasks = []
    for key, entry in (data or {}).items():
        section = Section(entry if entry is not None else {}, file=file, env=env, prefix=str(key))
        if section.raw("schedule") is None:
            log.info("recurring task %s has no schedule; ignored", key)
            continue
        try:
            schedule = parse_schedule(section.get("schedule", string, ""))
        except ScheduleError as exc:
            raise section.error("schedule", str(exc)) from None
        class_name = section.get("class", string, None)
        command = section.get("command", string, None)
        if (class_name is None) == (command is None):
            raise section.error(None, "needs exactly one of 'class' (a job class) or 'command' (module:callable)")
        if command is not None and not _COMMAND.match(command):
            raise section.error("command", f"must be a dotted path 'package.module:name', got {command!r}; "
                                           "code is never evaluated")
        try:
            args, kwargs = split_args(section.raw("args"))
        except ValueError as exc:
            raise section.error("args", str(exc)) from None
        task = RecurringTask(
            key=str(key), schedule=schedule, class_name=class_name, command=command, args=args, kwargs=kwargs,
            queue=section.get("queue", string, None), priority=section.get("priority", integer, None),
            description=section.get("description", string, None),
        )
        section.finish()
        tasks.append(task)
    return tasks


def load_recurring_tasks(app: App | None = None, file: str | Path | None = None) -> list[RecurringTask]:
    """The tasks of ``recurring.yml`` for the app's environment (none when the file or section is missing)."""
    app = app or current_app()
    path, data = part_section(app, "recurring.yml", file)
    return parse_recurring(data, file=path, env=app.env)


def validate_tasks(tasks: Sequence[RecurringTask], *, file: str | Path | None = None,
                   env: str | None = None) -> None:
    """Check every task against the imported app code; the first problem is a ConfigError naming the task."""
    for task in tasks:
        try:
            task.validate()
        except (UnknownJobError, ValueError, SerializationError) as exc:
            raise ConfigError(str(exc).strip("'\""), file=file, env=env, key=task.key) from None


def dynamic_task(key: str, job: type[Job] | str, *, schedule: str, args: Sequence[Any] = (),
                 kwargs: dict[str, Any] | None = None, queue: str | None = None, priority: int | None = None,
                 description: str | None = None) -> RecurringTask:
    """A recurring task defined at run time, checked as a task of recurring.yml is (``ValueError`` naming it).

    Only job classes: a ``command`` comes from recurring.yml alone, never from the database.
    """
    if not isinstance(key, str) or not key:
        raise ValueError(f"a recurring task needs a key (a non-empty string), got {key!r}")
    if isinstance(job, type) and issubclass(job, Job):
        class_name = job.name()
    elif isinstance(job, str):
        class_name = job
    else:
        raise ValueError(f"recurring task {key}: expected a job class or its name, got {job!r}")
    try:
        task = RecurringTask(key=key, schedule=parse_schedule(schedule), class_name=class_name, args=tuple(args),
                             kwargs=dict(kwargs or {}), queue=queue, priority=priority, description=description)
        task.validate()
    except (ScheduleError, UnknownJobError, ValueError, SerializationError) as exc:
        raise ValueError(f"recurring task {key}: {str(exc).strip(chr(39) + chr(34))}") from None
    return task


def schedule_recurring_task(key: str, job: type[Job] | str, *, schedule: str, args: Sequence[Any] = (),
                            kwargs: dict[str, Any] | None = None, queue: str | None = None,
                            priority: int | None = None, description: str | None = None) -> RecurringTask:
    """Add (or replace) a recurring task at run time, as Solid Queue's ``schedule_recurring_task``.

    Stored in the queue database; schedulers with ``scheduler: {dynamic_tasks_enabled: true}`` in queue.yml
    pick it up within their ``polling_interval``. A key of recurring.yml is refused: the file owns its tasks.
    """
    from solidstack.queue.adapters import queue_storage
    from solidstack.queue.processes.scheduler import RecurringStore

    task = dynamic_task(key, job, schedule=schedule, args=args, kwargs=kwargs, queue=queue, priority=priority,
                        description=description)
    RecurringStore(queue_storage()).save_dynamic(task)
    return task


def unschedule_recurring_task(key: str) -> bool:
    """Remove a task added with :func:`schedule_recurring_task`; whether there was one."""
    from solidstack.queue.adapters import queue_storage
    from solidstack.queue.processes.scheduler import RecurringStore

    return RecurringStore(queue_storage()).delete_dynamic(key)


_tasks: dict[str, RecurringTask] = {}


def register_tasks(tasks: Sequence[RecurringTask]) -> None:
    """Make ``tasks`` the ones :class:`RecurringCommandJob` runs in this process (and processes forked from it)."""
    _tasks.clear()
    _tasks.update({task.key: task for task in tasks})


def _command_task(key: str) -> RecurringTask:
    task = _tasks.get(key)
    if task is None:
        # A worker started without the scheduler (another machine, --skip-recurring): read the file itself.
        task = next((t for t in load_recurring_tasks() if t.key == key), None)
    if task is None or task.command is None:
        raise LookupError(f"recurring task {key!r} has no command in this process's config/recurring.yml")
    return task


class RecurringCommandJob(Job):
    """Runs the ``command`` of a recurring task, looked up by task key in recurring.yml (not in the database)."""

    job_name = "SolidStack::RecurringCommandJob"

    def perform(self, task_key: str) -> Any:
        task = _command_task(task_key)
        return resolve_command(task.command or "")(*task.args, **task.kwargs)
