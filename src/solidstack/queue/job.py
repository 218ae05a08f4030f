"""Jobs: classes with ``perform``, enqueued now, later or in bulk, registered by class name.

A stored job names its class; a worker runs only classes defined (imported) in its process, looked up in the
registry here, never an import path read from the database.
"""

from __future__ import annotations

import inspect
import logging
import os
import random
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, TypeVar

from solidstack.queue.features.outcomes import cancel, check_timeout, current_storage, result_of
from solidstack.queue.serialization import dump_arguments

log = logging.getLogger("solidstack.queue")

J = TypeVar("J", bound="Job")
Wait = float | int | timedelta | str | Callable[[int], float]

_registry: dict[str, type[Job]] = {}


class UnknownJobError(LookupError):
    """A stored job names a class that is not registered in this process."""


def job_class(name: str) -> type[Job]:
    """The registered job class called ``name``."""
    try:
        return _registry[name]
    except KeyError:
        raise UnknownJobError(
            f"unknown job class {name!r}: no job class of that name is imported in this process "
            "(import it from config/environment.py)"
        ) from None


def registered_jobs() -> dict[str, type[Job]]:
    return dict(_registry)


def _register(cls: type[Job]) -> None:
    name = cls.job_name or cls.__name__
    existing = _registry.get(name)
    if existing is not None and existing is not cls:
        same = (existing.__module__, existing.__qualname__) == (cls.__module__, cls.__qualname__)
        if not same and "__main__" not in (existing.__module__, cls.__module__):
            raise TypeError(
                f"job class name {name!r} is taken by {existing.__module__}.{existing.__qualname__}; "
                f"give {cls.__module__}.{cls.__qualname__} another name or set job_name"
            )
    _registry[name] = cls


def _seconds(wait: Wait, executions: int) -> float:
    if callable(wait):
        return float(wait(executions))
    if wait == "polynomially_longer":
        # ActiveJob's curve: executions**4 + 2, with up to 15% jitter.
        base: float = executions**4 + 2
        return base + random.random() * base * 0.15
    if wait == "exponentially_longer":
        base = 2.0**executions
        return base + random.random() * base * 0.15
    if isinstance(wait, timedelta):
        return wait.total_seconds()
    if isinstance(wait, int | float):
        return float(wait)
    raise ValueError(f"unknown wait {wait!r}")


@dataclass(frozen=True)
class RetryRule:
    exceptions: tuple[type[BaseException], ...]
    wait: Wait = 3.0
    attempts: int = 5
    jitter: float = 0.15


@dataclass(frozen=True)
class DiscardRule:
    exceptions: tuple[type[BaseException], ...]


def retry_on(*exceptions: type[BaseException], wait: Wait = 3.0, attempts: int = 5) -> Callable[[type[J]], type[J]]:
    """Class decorator: on these exceptions, run the job again after ``wait`` until ``attempts`` runs.

    ``wait`` is seconds, a ``timedelta``, ``"polynomially_longer"`` (ActiveJob's backoff),
    ``"exponentially_longer"``, or a function of the number of runs so far.
    """
    if attempts < 1:
        raise ValueError("retry_on attempts must be at least 1")

    def decorate(cls: type[J]) -> type[J]:
        cls._rescue_rules = (*cls._rescue_rules, RetryRule(exceptions, wait, attempts))
        return cls

    return decorate


def discard_on(*exceptions: type[BaseException]) -> Callable[[type[J]], type[J]]:
    """Class decorator: on these exceptions, drop the job (it counts as finished, not failed)."""

    def decorate(cls: type[J]) -> type[J]:
        cls._rescue_rules = (*cls._rescue_rules, DiscardRule(exceptions))
        return cls

    return decorate


def error_record(exc: BaseException) -> dict[str, Any]:
    """What a failed execution keeps of an exception."""
    kind = type(exc)
    return {
        "exception_class": f"{kind.__module__}.{kind.__qualname__}",
        "message": str(exc),
        "backtrace": traceback.format_exception(exc),
    }


@dataclass(frozen=True)
class Outcome:
    """What became of one run of a job: ``finished``, ``discarded``, ``retry`` (at ``retry_at``) or ``failed``."""

    status: str
    error: dict[str, Any] | None = None
    retry_in: float = 0.0


def _to_timestamp(value: datetime) -> float:
    if value.tzinfo is None:
        value = value.astimezone()  # naive means local time, as Python's datetime does
    return value.timestamp()


#: The RFC 4122 variant digit (8, 9, a or b) for a random hex digit: its two high bits set to 10.
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def _uuid4() -> str:
    """``str(uuid.uuid4())`` in a third of its time (1.4 against 4 µs here; a bulk enqueue makes one a job:
    decision 0076): the same 122 random bits from ``os.urandom``, the version digit 4 and the variant bits."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


@dataclass
class JobOptions:
    """``Job.set(...)``: options for the next enqueue."""

    job_class: type[Job]
    wait: float | None = None
    wait_until: float | None = None
    queue: str | None = None
    priority: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    timeout: float | None = None

    def perform_later(self, *args: Any, **kwargs: Any) -> Job:
        job = self.job_class(*args, **kwargs)
        if self.timeout is not None:
            job.timeout = self.timeout
        return job.enqueue(wait=self.wait, wait_until=self.wait_until, queue=self.queue, priority=self.priority)

    def perform_now(self, *args: Any, **kwargs: Any) -> Any:
        return self.job_class(*args, **kwargs).perform_now()


class _hybrid:
    """A method that works on the class (``Job.perform_now(args)``) and on an instance (``job.perform_now()``)."""

    def __init__(self, on_class: Callable[..., Any], on_instance: Callable[..., Any]) -> None:
        self.on_class = on_class
        self.on_instance = on_instance

    def __get__(self, instance: Any, owner: type) -> Callable[..., Any]:
        bound: Callable[..., Any] = (self.on_class.__get__(owner, owner) if instance is None
                                     else self.on_instance.__get__(instance, owner))
        return bound


class Job:
    """Subclass and define ``perform`` (plain or ``async def``).

    Class attributes: ``queue_as`` (queue name, default ``"default"``), ``priority`` (lower runs first,
    default 0), ``job_name`` (the name stored in the database; default the class name) and ``timeout``
    (seconds or a ``timedelta``: a run past it fails with ``JobTimeout``; default none).
    """

    queue_as: ClassVar[str] = "default"
    priority: int = 0
    job_name: ClassVar[str | None] = None
    timeout: float | None = None
    _rescue_rules: ClassVar[tuple[RetryRule | DiscardRule, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "job_name" not in cls.__dict__:
            cls.job_name = None
        if "timeout" in cls.__dict__:
            cls.timeout = check_timeout(cls.__dict__["timeout"], job=cls.name())
        _register(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs
        self.job_id = _uuid4()
        self.queue_name = self.queue_as
        self.priority = type(self).priority
        self.scheduled_at: float | None = None
        self.executions = 0
        #: The database id once enqueued by the solid_queue adapter.
        self.provider_job_id: int | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(*{self.args!r}, **{self.kwargs!r})"

    @classmethod
    def name(cls) -> str:
        return cls.job_name or cls.__name__

    def perform(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define perform()")

    # -- enqueueing ------------------------------------------------------------------------------------------

    @classmethod
    def set(cls, *, wait: float | timedelta | None = None, wait_until: datetime | float | None = None,
            queue: str | None = None, priority: int | None = None,
            timeout: float | timedelta | None = None) -> JobOptions:
        """Options for one enqueue: ``wait`` (seconds or timedelta), ``wait_until``, ``queue``, ``priority``,
        ``timeout`` (seconds or timedelta, instead of the class's)."""
        seconds = wait.total_seconds() if isinstance(wait, timedelta) else wait
        until = _to_timestamp(wait_until) if isinstance(wait_until, datetime) else wait_until
        return JobOptions(cls, wait=seconds, wait_until=until, queue=queue, priority=priority,
                          timeout=check_timeout(timeout, job=cls.name(), option="set(timeout=...)"))

    @classmethod
    def perform_later(cls, *args: Any, **kwargs: Any) -> Job:
        """Enqueue a job to run as soon as a worker is free; returns the job."""
        return cls(*args, **kwargs).enqueue()

    def enqueue(self, *, wait: float | None = None, wait_until: float | None = None, queue: str | None = None,
                priority: int | None = None) -> Job:
        """Enqueue this job with the current adapter."""
        from solidstack.queue.adapters import current_adapter

        self._apply(wait=wait, wait_until=wait_until, queue=queue, priority=priority)
        current_adapter().enqueue_all([self])
        return self

    def _apply(self, *, wait: float | None = None, wait_until: float | None = None, queue: str | None = None,
               priority: int | None = None) -> None:
        if queue is not None:
            self.queue_name = queue
        if priority is not None:
            self.priority = priority
        if wait_until is not None:
            self.scheduled_at = wait_until
        elif wait is not None:
            self.scheduled_at = datetime.now(UTC).timestamp() + wait

    def serialize_arguments(self) -> str:
        """The stored form of the arguments; raises ``SerializationError`` naming this job and the argument."""
        text = dump_arguments(self.args, self.kwargs, job=type(self).name())
        timeout = self.__dict__.get("timeout")
        if timeout is not None:  # a timeout set for this enqueue travels with the arguments (decision 0032)
            text = text[:-1] + f',"timeout":{float(timeout)!r}}}'
        return text

    @property
    def cancelled(self) -> bool:
        """True once this running job was cancelled or ran past its timeout: a long job checks it and stops."""
        cancelled: bool = self.__dict__.get("_cancelled", False)
        return cancelled

    @classmethod
    def _result_class(cls, job_id: int, *, timeout: float | None = 0) -> Any:
        return result_of(current_storage(), job_id, timeout)

    def _result_instance(self, *, timeout: float | None = 0) -> Any:
        return type(self)._result_class(self._stored_id(), timeout=timeout)

    #: ``Job.result(id, timeout=...)`` / ``job.result(timeout=...)``: the return value once the job finished,
    #: waiting up to ``timeout`` seconds (0, the default: no wait; None: no limit). See ``outcomes.result_of``.
    result = _hybrid(_result_class, _result_instance)

    @classmethod
    def _cancel_class(cls, job_id: int) -> str:
        return cancel(job_id)[job_id]

    def _cancel_instance(self) -> str:
        return cancel(self._stored_id())[self._stored_id()]

    #: ``Job.cancel(id)`` / ``job.cancel()``: see ``solidstack.queue.cancel``.
    cancel = _hybrid(_cancel_class, _cancel_instance)

    def _stored_id(self) -> int:
        if self.provider_job_id is None:
            raise LookupError(f"{type(self).name()}: this job was not enqueued in a queue database (no id)")
        return self.provider_job_id

    @staticmethod
    def perform_all_later(jobs: Iterable[Job]) -> list[Job]:
        """Enqueue many jobs in one transaction; returns them (with ``provider_job_id`` set)."""
        from solidstack.queue.adapters import current_adapter

        batch = list(jobs)
        current_adapter().enqueue_all(batch)
        return batch

    # -- running ---------------------------------------------------------------------------------------------

    def _perform_now_instance(self) -> Any:
        """Run this job here and now; exceptions propagate unless a ``discard_on`` rule matches."""
        self.executions += 1
        try:
            return run_perform(self)
        except Exception as exc:
            if isinstance(self.rescue(exc), DiscardRule):
                log.info("%s discarded on %s: %s", type(self).name(), type(exc).__name__, exc)
                return None
            raise

    @classmethod
    def _perform_now_class(cls, *args: Any, **kwargs: Any) -> Any:
        return cls(*args, **kwargs)._perform_now_instance()

    perform_now = _hybrid(_perform_now_class, _perform_now_instance)

    def rescue(self, exc: BaseException) -> RetryRule | DiscardRule | None:
        """The first rule of this class that handles ``exc``."""
        for rule in type(self)._rescue_rules:
            if isinstance(exc, rule.exceptions):
                return rule
        return None

    def outcome_of(self, exc: BaseException) -> Outcome:
        """What to do after this run (``self.executions`` runs so far, this one included) raised ``exc``."""
        rule = self.rescue(exc)
        if isinstance(rule, DiscardRule):
            return Outcome("discarded", error_record(exc))
        if isinstance(rule, RetryRule) and self.executions < rule.attempts:
            return Outcome("retry", error_record(exc), retry_in=_seconds(rule.wait, self.executions))
        return Outcome("failed", error_record(exc))


def run_perform(job: Job) -> Any:
    """Call ``perform``; a coroutine is run to completion on a fresh event loop (workers pass their own)."""
    result = job.perform(*job.args, **job.kwargs)
    if inspect.isawaitable(result):
        import asyncio

        return asyncio.run(_await(result))
    return result


async def _await(awaitable: Any) -> Any:
    return await awaitable


def restore(class_name: str, args: Sequence[Any], kwargs: dict[str, Any], *, job_id: str, queue_name: str,
            priority: int, executions: int, provider_job_id: int, timeout: float | None = None) -> Job:
    """A job instance rebuilt from its stored row, without calling the subclass's ``__init__``."""
    cls = job_class(class_name)
    job = cls.__new__(cls)
    # The attributes Job.__init__ sets, from the row (no new job id drawn for a job that has one).
    job.args = tuple(args)
    job.kwargs = kwargs
    job.job_id = job_id
    job.queue_name = queue_name
    job.priority = priority
    job.scheduled_at = None
    job.executions = executions
    job.provider_job_id = provider_job_id
    if timeout is not None:
        job.timeout = timeout
    return job
