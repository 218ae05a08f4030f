"""The RQ benchmark job (the worker imports it by path ``jobs_rq.noop``)."""

from __future__ import annotations

from record import record


def noop(sent_ns: int) -> None:
    record(sent_ns)
