"""Recurring schedules as users write them for fugit (Solid Queue's parser), on top of cronsim.

cronsim (a well-kept cron library) evaluates 5- and 6-field cron with ``L``, ``W``, ``mon#2`` and time zones,
with Debian cron's DST rules: a run at a time skipped by a spring-forward happens right after the gap, a run
at a repeated time during a fall-back happens once. This module adds what no cron library has: the
natural-language forms (``every hour``, ``every 5 minutes``, ``every 15s``, ``every day at 9am``,
``every weekday at five``, ``every hour at minute 12``, ``at 5am every day``), the ``@daily`` family and a
trailing IANA time zone (``every day at 9am Europe/Paris``, ``0 9 * * * America/New_York``). Without a zone,
schedules are in UTC (see docs/decisions/0300-queue-schedules-and-recurring-commands.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError


class ScheduleError(ValueError):
    """A schedule that cannot be understood; the message says why and what is accepted."""


SHORTCUTS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
_WORD_NUMBERS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20, "thirty": 30,
}
_DAYS = {"sunday": 0, "monday": 1, "tuesday": 2, "wednesday": 3, "thursday": 4, "friday": 5, "saturday": 6}
_UNITS = {
    "s": "second", "sec": "second", "secs": "second", "second": "second", "seconds": "second",
    "m": "minute", "min": "minute", "mins": "minute", "minute": "minute", "minutes": "minute",
    "h": "hour", "hr": "hour", "hrs": "hour", "hour": "hour", "hours": "hour",
    "d": "day", "day": "day", "days": "day",
    "week": "week", "weeks": "week", "month": "month", "months": "month", "year": "year", "years": "year",
}
_CRON_FIELD = re.compile(r"^[0-9*/,\-?LW#A-Za-z]+$")
_TIME = re.compile(r"^(\d{1,2})(?::(\d{2}))?(am|pm)?$")
_COMPACT = re.compile(r"^(\d+)([a-z]+)$")
FORMS = ("every hour", "every 5 minutes", "every 15s", "every day at 9am", "every weekday at five",
         "every hour at minute 12", "at 5am every day", "0 9 * * *", "@daily", "... Europe/Paris")


def _zone(name: str) -> ZoneInfo | None:
    if not re.match(r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$", name) or name.lower() in _UNITS:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule: ``cron`` (5 or 6 fields, seconds first) evaluated in the time zone ``zone``."""

    text: str
    cron: str
    zone: str = "UTC"

    @cached_property
    def tzinfo(self) -> ZoneInfo:
        return ZoneInfo(self.zone)

    def next_after(self, when: float) -> float:
        """The first run strictly after ``when`` (Unix seconds), as Unix seconds."""
        start = datetime.fromtimestamp(when, self.tzinfo)
        try:
            return next(CronSim(self.cron, start)).timestamp()
        except StopIteration:
            raise ScheduleError(f"{self.text!r} never runs") from None

    def runs_between(self, start: float, end: float) -> list[float]:
        """Runs in ``(start, end]``."""
        runs, at = [], self.next_after(start)
        while at <= end:
            runs.append(at)
            at = self.next_after(at)
        return runs

    def describe(self) -> str:
        """The schedule in words, e.g. ``At 09:00 every day (Europe/Paris)``."""
        try:
            words = CronSim(self.cron, datetime(2000, 1, 1)).explain()
        except Exception:  # explain() covers most, not all, expressions
            words = self.cron
        return f"{words} ({self.zone})"


def parse_schedule(text: str) -> Schedule:
    """Parse a fugit-style schedule; raises :class:`ScheduleError` saying what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise ScheduleError(f"expected a schedule such as {', '.join(repr(f) for f in FORMS[:4])}, got {text!r}")
    original = text.strip()
    words = original.split()
    zone = "UTC"
    if len(words) > 1 and (tz := _zone(words[-1])) is not None:
        zone, words = tz.key, words[:-1]
    body = " ".join(words)
    lowered = body.lower()
    if lowered.startswith("@"):
        if lowered not in SHORTCUTS:
            raise ScheduleError(f"unknown shortcut {body!r} (known: {', '.join(SHORTCUTS)})")
        cron = SHORTCUTS[lowered]
    elif len(words) in (5, 6) and all(_CRON_FIELD.match(w) for w in words) and words[0].lower() not in (
            "every", "at", "on"):
        cron = " ".join(words)
    else:
        cron = _natural(lowered, original)
    _check(cron, original, zone)
    return Schedule(original, cron, zone)


def _check(cron: str, original: str, zone: str) -> None:
    try:
        next(CronSim(cron, datetime(2024, 1, 1, tzinfo=ZoneInfo(zone))))
    except CronSimError as exc:
        raise ScheduleError(f"{original!r} is not a valid cron expression ({exc}); "
                            "use 5 fields (minute hour day month weekday) or 6 with seconds first") from None
    except StopIteration:
        raise ScheduleError(f"{original!r} never runs") from None


# -- the natural-language layer ----------------------------------------------------------------------------------


def _number(word: str) -> int | None:
    if word.isdigit():
        return int(word)
    return _WORD_NUMBERS.get(word)


def _time(word: str) -> tuple[int, int] | None:
    """``9am``, ``9:30pm``, ``18:00``, ``noon``, ``midnight``, ``five`` as (hour, minute)."""
    if word == "noon":
        return 12, 0
    if word == "midnight":
        return 0, 0
    if word in _WORD_NUMBERS and _WORD_NUMBERS[word] <= 12:
        return _WORD_NUMBERS[word] % 24, 0
    match = _TIME.match(word)
    if not match:
        return None
    hour, minute, half = int(match.group(1)), int(match.group(2) or 0), match.group(3)
    if half:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if half == "pm" else 0)
    if hour > 23 or minute > 59:
        return None
    return hour, minute


def _day(word: str) -> int | None:
    word = word.rstrip("s") if word.endswith("days") else word
    for name, number in _DAYS.items():
        if word == name or (len(word) >= 3 and name.startswith(word)):
            return number
    return None


class _Parts:
    """What the clauses of a natural-language schedule said."""

    def __init__(self) -> None:
        self.every: str | None = None  # second, minute, hour, day, week, month, year
        self.step = 1
        self.weekdays: list[int] | None = None
        self.times: list[tuple[int, int]] = []
        self.minutes: list[int] = []
        self.month_days: list[int] = []


def _natural(text: str, original: str) -> str:
    text = re.sub(r"(\d)\s+(am|pm)\b", r"\1\2", text)
    tokens = [t for t in re.split(r"[\s,]+", text) if t and t not in ("and", "the", "o'clock")]
    parts = _Parts()
    i = 0

    def fail(reason: str) -> ScheduleError:
        return ScheduleError(f"cannot read schedule {original!r}: {reason} "
                             f"(forms understood: {', '.join(repr(f) for f in FORMS)})")

    while i < len(tokens):
        word = tokens[i]
        if word == "every":
            if parts.every is not None or parts.weekdays is not None:
                raise fail("'every' is said twice")
            i += 1
            if i >= len(tokens):
                raise fail("'every' needs what follows it")
            i = _every(tokens, i, parts, fail)
        elif word == "at":
            i += 1
            if i < len(tokens) and tokens[i] in ("minute", "minutes"):
                i += 1
                while i < len(tokens) and _number(tokens[i]) is not None:
                    parts.minutes.append(_number(tokens[i]) or 0)
                    i += 1
                if not parts.minutes:
                    raise fail("'at minute' needs a number")
                continue
            start = i
            while i < len(tokens) and (at := _time(tokens[i])) is not None:
                parts.times.append(at)
                i += 1
            if i == start:
                raise fail(f"{tokens[i] if i < len(tokens) else 'nothing'!r} after 'at' is not a time")
        elif word == "on":
            i += 1
            if i + 1 < len(tokens) and tokens[i] == "day" and tokens[i + 1].isdigit():
                parts.month_days.append(int(tokens[i + 1]))
                i += 2
            elif i < len(tokens) and (day := _day(tokens[i])) is not None:
                parts.weekdays = [*(parts.weekdays or []), day]
                i += 1
            else:
                raise fail("'on' needs a weekday or 'day N'")
        else:
            raise fail(f"unexpected word {word!r}")
    return _to_cron(parts, fail)


def _every(tokens: list[str], i: int, parts: _Parts, fail: Callable[[str], ScheduleError]) -> int:
    word = tokens[i]
    compact = _COMPACT.match(word)
    if compact and compact.group(2) in _UNITS:
        parts.step, parts.every = int(compact.group(1)), _UNITS[compact.group(2)]
        return i + 1
    number = _number(word)
    if number is not None and i + 1 < len(tokens) and tokens[i + 1] in _UNITS:
        parts.step, parts.every = number, _UNITS[tokens[i + 1]]
        return i + 2
    if word in _UNITS and len(word) > 2:
        parts.every = _UNITS[word]
        return i + 1
    if word in ("weekday", "weekdays"):
        parts.every, parts.weekdays = "day", [1, 2, 3, 4, 5]
        return i + 1
    if word in ("weekend", "weekends"):
        parts.every, parts.weekdays = "day", [0, 6]
        return i + 1
    days = []
    while i < len(tokens) and (day := _day(tokens[i])) is not None:
        days.append(day)
        i += 1
    if not days:
        raise fail(f"{word!r} after 'every' is not a unit or a day")
    parts.every, parts.weekdays = "day", days
    return i


def _field(values: list[int]) -> str:
    return ",".join(str(v) for v in sorted(set(values)))


def _to_cron(parts: _Parts, fail: Callable[[str], ScheduleError]) -> str:
    every, step = parts.every, parts.step
    if every is None:
        if not parts.times and not parts.minutes:
            raise fail("say 'every ...' or 'at ...'")
        every = "day"  # "at 5am" alone: every day
    if step < 1:
        raise fail("the interval must be at least 1")
    if parts.minutes and (every != "hour" or parts.times):
        raise fail("'at minute N' goes with 'every hour' or 'every N hours'")
    if parts.times and every in ("second", "minute", "hour"):
        raise fail(f"'at <time>' does not go with 'every {every}'")
    if any(m > 59 for m in parts.minutes):
        raise fail("a minute is 0 to 59")
    limits = {"second": 59, "minute": 59, "hour": 23, "day": 31, "month": 12}
    if every in limits and step > limits[every]:
        raise fail(f"every {step} {every}s cannot be written as a cron schedule; "
                     f"use at most {limits[every]}")
    if every in ("week", "year") and step != 1:
        raise fail(f"every {step} {every}s cannot be written as a cron schedule")
    stepped = "*" if step == 1 else f"*/{step}"
    if every == "second":
        return f"{stepped} * * * * *"
    if every == "minute":
        return f"{stepped} * * * *"
    if every == "hour":
        return f"{_field(parts.minutes) if parts.minutes else 0} {stepped} * * *"
    times = parts.times or [(0, 0)]
    if len({minute for _, minute in times}) > 1:
        raise fail("times with different minutes need separate tasks")
    minute, hours = times[0][1], _field([hour for hour, _ in times])
    dom = _field(parts.month_days) if parts.month_days else "*"
    dow = _field(parts.weekdays) if parts.weekdays else "*"
    if every == "day":
        return f"{minute} {hours} {stepped if dom == '*' else dom} * {dow}"
    if every == "week":
        return f"{minute} {hours} * * {dow if parts.weekdays else 0}"
    if every == "month":
        return f"{minute} {hours} {dom if parts.month_days else 1} {stepped} {dow}"
    return f"{minute} {hours} {dom if parts.month_days else 1} 1 *"
