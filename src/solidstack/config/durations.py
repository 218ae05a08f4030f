"""Durations as Rails config files write them: ``0.1``, ``5``, ``0.1.seconds``, ``1.day``, ``2.weeks``."""

from __future__ import annotations

import math
import re
from datetime import timedelta

#: The longest duration any config key accepts: 100 years. Longer is a typo or an attempt at "forever"
#: (``.inf``), and past it the clock arithmetic and waits of the parts stop being meaningful.
MAX_DURATION = 100 * 31556952.0

_UNITS = {
    "second": 1.0,
    "minute": 60.0,
    "hour": 3600.0,
    "day": 86400.0,
    "week": 604800.0,
    "month": 2629746.0,  # ActiveSupport: 1/12 of a Gregorian year
    "year": 31556952.0,
}
_RUBY = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*\.\s*(second|minute|hour|day|week|month|year)s?\s*$")
_SHORT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|secs|m|min|mins|h|d|w)\s*$")
_SHORT_UNITS = {"ms": 0.001, "s": 1, "sec": 1, "secs": 1, "m": 60, "min": 60, "mins": 60, "h": 3600,
                "d": 86400, "w": 604800}


def parse_duration(value: object) -> float:
    """Seconds in ``value``; raises ``ValueError`` with the reason for anything else."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, got {value!r}")
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an int too large for a float
            seconds = math.inf
    elif isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, str):
        text = value.strip()
        match = _RUBY.match(text)
        short = _SHORT.match(text)
        if match:
            seconds = float(match.group(1)) * _UNITS[match.group(2)]  # 400 digits give inf: refused below
        elif short:
            seconds = float(short.group(1)) * _SHORT_UNITS[short.group(2)]
        else:
            try:
                seconds = float(text)
            except ValueError:
                raise ValueError(
                    f"expected a duration such as 5, 0.1.seconds, 5.minutes or 1.day, got {value!r}"
                ) from None
    else:
        raise ValueError(f"expected a duration, got {value!r}")
    if not math.isfinite(seconds):  # YAML's .nan and .inf, "nan", 1e999
        raise ValueError(f"expected a finite duration, got {value!r}")
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {value!r}")
    if seconds > MAX_DURATION:
        raise ValueError(f"expected a duration of at most 100 years, got {value!r}")
    return seconds
