"""db/outage.py: one line when an outage begins, one when it ends, per database entry; the next outage is said
again (the listener ends an outage too: a cable server has no poll loop to do it)."""

from __future__ import annotations

import logging

import pytest

from solidstack.db import outage
from solidstack.db.errors import DatabaseUnavailable

SOURCE = "config/database.yml [production] queue"


def down(reason: str = "Connection refused") -> DatabaseUnavailable:
    return DatabaseUnavailable(f"cannot connect to the queue database: {reason} ({SOURCE})")


def test_one_line_per_outage_and_entry(caplog: pytest.LogCaptureFixture) -> None:
    outage.reset()
    caplog.set_level(logging.WARNING, "solidstack.db")
    assert outage.unavailable(down(), "worker w1") is True
    for _ in range(50):
        assert outage.unavailable(down("timeout expired"), "worker w1") is False
    other = DatabaseUnavailable("cannot connect to the cache database: refused "
                                "(config/database.yml [production] cache)")
    assert outage.unavailable(other) is True  # another entry is another outage
    outage.answered(SOURCE)
    outage.answered(SOURCE)  # said once
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines
    assert lines[0].startswith("worker w1: cannot connect") and SOURCE in lines[0]
    assert "retrying quietly until it answers" in lines[0]
    assert lines[2].startswith("the database answers again after") and SOURCE in lines[2]
    assert outage.unavailable(down()) is True  # the next outage is said again
    outage.answered()  # every entry
    assert outage.unavailable(other) is True
    outage.reset()
