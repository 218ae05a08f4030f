"""How ``solidstack jobs`` logs: a level, and plain text or one JSON object per line.

The level comes from ``--log-level``, else ``SOLIDSTACK_LOG_LEVEL``, else ``log_level`` in queue.yml, else
``info``. At ``info`` the supervisor and its processes say when they start and stop, and every failure, retry and
discard is logged; each job that succeeds is logged at ``debug`` only (one line per job cost ~28% of a worker's
throughput, docs/decisions/0800).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

LEVELS = ("debug", "info", "warning", "error", "critical")
FORMATS = ("text", "json")
LEVEL_VAR = "SOLIDSTACK_LOG_LEVEL"
FORMAT_VAR = "SOLIDSTACK_LOG_FORMAT"
TEXT_FORMAT = "%(asctime)s %(levelname)-7s [%(process)d %(threadName)s] %(name)s: %(job)s%(message)s"
# Attributes a log call may pass in ``extra=`` that the JSON lines carry as their own keys.
CONTEXT_KEYS = ("job_id", "job_class", "queue")


def parse_level(value: Any) -> str:
    """A level name of :data:`LEVELS` (any case); a ``ValueError`` naming the choices otherwise."""
    if isinstance(value, str) and value.strip().lower() in LEVELS:
        return value.strip().lower()
    raise ValueError(f"unknown log level {value!r} (known: {', '.join(LEVELS)})")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, pid, thread, and the job's id,
    class and queue when the record carries them; ``exception`` holds a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
            "thread": record.threadName,
        }
        for key in CONTEXT_KEYS:
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    """Set the root logger's level, and give it a handler on stderr in ``fmt`` unless it has one already (as
    ``logging.basicConfig`` does: an app that configured logging first keeps its handlers)."""
    root = logging.getLogger()
    root.setLevel(getattr(logging, level.upper()))
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
        root.addHandler(handler)
    from solidstack.queue.features.hooks import JobLogFilter

    for handler in root.handlers:  # each line a job logs names the job (id and class)
        if not any(isinstance(f, JobLogFilter) for f in handler.filters):
            handler.addFilter(JobLogFilter())
