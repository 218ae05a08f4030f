"""Waiting in tests: poll a condition until it holds or a deadline passes (multi-process tests stay bounded)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.005) -> bool:
    """True once ``predicate()`` is true, polling every ``interval`` s; False after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
