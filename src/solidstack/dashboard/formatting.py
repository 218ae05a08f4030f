"""How values read like on the pages: times, durations, and job arguments with secrets redacted.

Everything here returns plain text; the templates escape it (Jinja2 autoescaping), so nothing from a job's
arguments or error reaches the page as markup.
"""

from __future__ import annotations

import inspect
import json
import re
import time
from collections.abc import Iterable
from typing import Any

#: Argument names whose values the pages hide: a name is secret when one of its words is one of these.
DEFAULT_REDACT = ("password", "passwd", "token", "secret", "key", "credential", "credentials", "auth", "otp",
                  "pin", "ssn", "cookie", "session")
REDACTED = "[REDACTED]"
_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def is_secret(name: str, words: Iterable[str]) -> bool:
    """``api_key``, ``resetToken``, ``PASSWORD`` are secret with the default words; ``monkey`` is not."""
    wanted = {w.lower() for w in words}
    return any(part.lower() in wanted for part in _WORDS.findall(name))


def _redact(value: Any, words: tuple[str, ...]) -> Any:
    if isinstance(value, dict):
        return {k: REDACTED if isinstance(k, str) and is_secret(k, words) else _redact(v, words)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, words) for v in value]
    return value


def _parameter_names(class_name: str) -> list[str]:
    """The names of ``perform``'s positional parameters, when the class is imported in this process."""
    try:
        from solidstack.queue.job import job_class

        signature = inspect.signature(job_class(class_name).perform)
    except Exception:
        return []
    return [p.name for p in signature.parameters.values()
            if p.name != "self" and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def redacted_arguments(text: str, class_name: str, words: tuple[str, ...]) -> Any:
    """A job's stored arguments with secret-looking values replaced: keyword arguments and dict keys by name,
    positional arguments by the name of ``perform``'s parameter (when the job class is imported here)."""
    try:
        data = json.loads(text)
    except (TypeError, ValueError):
        return text
    if not words:
        return data
    if isinstance(data, dict) and isinstance(data.get("args"), list):
        names = _parameter_names(class_name)
        data["args"] = [REDACTED if i < len(names) and is_secret(names[i], words) else value
                        for i, value in enumerate(data["args"])]
    return _redact(data, words)


def arguments_text(text: str, class_name: str, words: tuple[str, ...], *, pretty: bool = False,
                   limit: int | None = None) -> str:
    """The arguments as JSON text for a page, redacted; one line cut to ``limit`` characters for lists."""
    data = redacted_arguments(text, class_name, words)
    if isinstance(data, dict) and set(data) <= {"args", "kwargs"} and not pretty:
        parts = [json.dumps(v, ensure_ascii=False) for v in data.get("args", [])]
        parts += [f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in (data.get("kwargs") or {}).items()]
        out = ", ".join(parts)
    else:
        out = json.dumps(data, ensure_ascii=False, indent=2 if pretty else None)
    if limit is not None and len(out) > limit:
        out = out[: limit - 1] + "…"
    return out


def duration(seconds: float | None) -> str:
    """``45 s``, ``3 min``, ``2 h 5 min``, ``4 days``."""
    if seconds is None:
        return "—"
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min"
    if seconds < 86400:
        return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:.0f} min"
    return f"{seconds // 86400:.0f} days"


def when(at: float | None) -> str:
    """A Unix time as UTC text, ``2026-11-30 10:40:03``."""
    if at is None:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at))


def relative(at: float | None, now: float | None = None) -> str:
    """``3 min ago`` or ``in 2 h 5 min``."""
    if at is None:
        return "—"
    delta = (time.time() if now is None else now) - at
    return f"{duration(delta)} ago" if delta >= 0 else f"in {duration(-delta)}"
