"""Structured events and lifecycle hooks: one subscription API for everything the queue does.

Events (``Event.name``): ``enqueue``, ``claim``, ``perform_start``, ``perform_finish``, ``perform_error``,
``retry``, ``discard``, ``dispatch``, ``unblock``, ``prune``, ``process_start``, ``process_stop``,
``recurring_enqueue``, ``recurring_skip``, ``pause``, ``resume``, ``clear``, ``clear_finished``.

Every event is also logged to the ``solidstack.queue.events`` logger: at DEBUG for the ones a busy system emits
all the time (claims, dispatches, performs), at INFO for the rare ones an operator acts on (pauses, prunes, clears), so
the default log stays quiet while polling.

Hooks (``on_start``/``on_stop``) run with the process object (a ``Worker``, ``Dispatcher``, ``Scheduler`` or a
supervisor) when it starts or stops, in the process that runs it; register them before the supervisor starts
(forked processes inherit them). A hook or subscriber that raises is logged and never stops the queue.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("solidstack.queue.events")

#: Events logged at INFO; the rest (frequent ones) at DEBUG.
LOUD_EVENTS = frozenset({"prune", "pause", "resume", "clear", "clear_finished",
                         "recurring_skip"})


@dataclass(frozen=True)
class Event:
    """One thing that happened: its name, when (Unix seconds) and what it is about."""

    name: str
    payload: dict[str, Any] = field(default_factory=dict)
    time: float = 0.0


Subscriber = Callable[[Event], None]
Hook = Callable[[Any], None]


class Subscription:
    """What :func:`subscribe` returns; call :meth:`unsubscribe` (or use it as a context manager) to stop."""

    def __init__(self, callback: Subscriber, names: frozenset[str] | None) -> None:
        self.callback = callback
        self.names = names

    def unsubscribe(self) -> None:
        with _lock:
            if self in _subscribers:
                _subscribers.remove(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.unsubscribe()


_subscribers: list[Subscription] = []
_hooks: dict[tuple[str, str | None], list[Hook]] = {}
_lock = threading.Lock()


def subscribe(callback: Subscriber, names: str | Iterable[str] | None = None) -> Subscription:
    """Call ``callback(event)`` for every event (or only those named); returns the subscription.

    Callbacks run in the thread that emits the event (a worker thread, the dispatcher's loop): keep them
    short, or hand the event to a queue of your own.
    """
    wanted = None if names is None else frozenset([names] if isinstance(names, str) else names)
    subscription = Subscription(callback, wanted)
    with _lock:
        _subscribers.append(subscription)
    return subscription


def wanted(name: str) -> bool:
    """Whether an event ``name`` would be logged or handed to a subscriber: a loop over many jobs asks once."""
    return bool(_subscribers) or log.isEnabledFor(logging.INFO if name in LOUD_EVENTS else logging.DEBUG)


def instrument(name: str, /, **payload: Any) -> Event | None:
    """Emit an event: log it and hand it to the subscribers (nothing is built when nobody listens)."""
    level = logging.INFO if name in LOUD_EVENTS else logging.DEBUG
    logged = log.isEnabledFor(level)
    if not _subscribers and not logged:  # the hot path: enqueue and perform with no subscriber
        return None
    event = Event(name, payload, time.time())
    if logged:
        details = " ".join(f"{key}={value!r}" for key, value in payload.items())
        log.log(level, "%s %s", name, details)
    with _lock:
        subscribers = [s for s in _subscribers if s.names is None or name in s.names]
    for subscription in subscribers:
        try:
            subscription.callback(event)
        except Exception:
            log.exception("event subscriber %r failed on %s", subscription.callback, name)
    return event


def _kind(process: Any) -> str:
    return str(getattr(process, "kind", type(process).__name__)).lower()


def on_start(hook: Hook, kind: str | None = None) -> Hook:
    """Run ``hook(process)`` when a process starts: every kind, or one (``supervisor``, ``worker``,
    ``dispatcher``, ``scheduler``). Usable as a decorator."""
    with _lock:
        _hooks.setdefault(("start", kind and kind.lower()), []).append(hook)
    return hook


def on_stop(hook: Hook, kind: str | None = None) -> Hook:
    """Run ``hook(process)`` when a process stops (after its last job); see :func:`on_start`."""
    with _lock:
        _hooks.setdefault(("stop", kind and kind.lower()), []).append(hook)
    return hook


def clear_hooks() -> None:
    """Forget every hook and subscriber (for tests)."""
    with _lock:
        _hooks.clear()
        _subscribers.clear()


def _run_hooks(moment: str, process: Any) -> None:
    kind = _kind(process)
    with _lock:
        hooks = [*_hooks.get((moment, None), ()), *_hooks.get((moment, kind), ())]
    for hook in hooks:
        try:
            hook(process)
        except Exception:
            log.exception("on_%s hook %r failed for %s", moment, hook, getattr(process, "name", process))


def process_started(process: Any, **payload: Any) -> None:
    """A role or supervisor has started: hooks first, then the ``process_start`` event."""
    _run_hooks("start", process)
    instrument("process_start", kind=_kind(process), name=getattr(process, "name", None), **payload)


def process_stopped(process: Any, **payload: Any) -> None:
    """A role or supervisor has stopped: hooks, then the ``process_stop`` event."""
    _run_hooks("stop", process)
    instrument("process_stop", kind=_kind(process), name=getattr(process, "name", None), **payload)
