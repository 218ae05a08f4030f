"""An idle worker on PostgreSQL polls at a long floor while its LISTEN connection is up, and at its polling
interval as soon as it is not (``listen: false``, or the connection dropped); decision 0046."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from engines import fresh_database, require_postgres
from solidstack.db import migrate, package_migrations
from solidstack.queue import QueueStorage, Worker, WorkerConfig
from solidstack.queue.processes.worker import LISTENING_POLL_FLOOR


def until(condition, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("listen", [True, False])
def test_idle_worker_polls_at_the_floor_only_while_listening(tmp_path: Path, listen: bool) -> None:
    require_postgres()
    with fresh_database("postgresql", tmp_path, listen=listen) as db:
        migrate(db, package_migrations("solidstack.queue", "postgresql"))
        worker = Worker(QueueStorage(db), WorkerConfig(threads=1, polling_interval=0.1))
        waiter = worker.wakeup_socket()
        try:
            first = worker.poll(time.time())
            if not listen:
                assert first == 0.1  # no LISTEN wanted: the polling interval
                assert waiter is None
                return
            assert first in (0.1, LISTENING_POLL_FLOOR)  # the LISTEN may or may not be up already
            assert waiter is not None
            assert until(lambda: worker.poll(time.time()) == LISTENING_POLL_FLOOR)
            # The listening connection drops: back to the polling interval at once, the floor again once back.
            (pid,) = db.query_one("SELECT pid FROM pg_stat_activity WHERE query LIKE 'LISTEN%%' "
                                  "AND datname = current_database()")
            db.query("SELECT pg_terminate_backend(%s)", (pid,))
            assert until(lambda: worker.poll(time.time()) == 0.1)
            assert until(lambda: worker.poll(time.time()) == LISTENING_POLL_FLOOR, timeout=20.0)
        finally:
            if waiter is not None:
                waiter.close()
            worker.shutdown(1.0)
