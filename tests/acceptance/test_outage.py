"""A database that goes away and comes back: `solidstack jobs` logs one clear line per outage and process (naming
the database.yml entry), not a traceback or a line per heartbeat and poll, and carries on afterwards."""

from __future__ import annotations

import re
import time
from collections import Counter
from typing import Any

import pytest

from solidstack.queue import Job, queue_storage

pytestmark = pytest.mark.slow

QUEUE_YML = """
test:
  shutdown_timeout: 5
  process_heartbeat_interval: 0.3
  process_alive_threshold: 30
  dispatchers:
    - polling_interval: 0.05
  workers:
    - queues: "*"
      threads: 2
      processes: 2
      polling_interval: 0.05
"""


def enqueue_counts(n: int, start: int = 0) -> None:
    from app.jobs import CountJob

    Job.perform_all_later([CountJob(i) for i in range(start, start + n)])


def enqueue_after_outage(n: int, start: int) -> None:
    """This (test) process's pool reconnects with its own backoff: an enqueue may fail for a few seconds."""
    from solidstack.db.errors import DatabaseUnavailable

    deadline = time.monotonic() + 60
    while True:
        try:
            return enqueue_counts(n, start=start)
        except DatabaseUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_a_stopped_server_is_one_line_per_process_and_outage_then_jobs_carry_on(make_jobs_app: Any) -> None:
    from engines import ThrowawayCluster, postgres_database_yml, require_postgres

    require_postgres()
    cluster = ThrowawayCluster()
    try:
        # checkout_timeout: 1 makes six seconds a long outage: every checkout gives up many times over
        app = make_jobs_app(postgres_database_yml(f"{cluster.url}/outage_test", checkout_timeout=1))
        app.root.joinpath("config", "queue.yml").write_text(QUEUE_YML)
        enqueue_counts(50)
        proc = app.start()
        app.wait_for(lambda: len(app.lines("count")) >= 50, timeout=60, what="the first jobs")
        cluster.halt()
        time.sleep(6)  # twenty heartbeats, a hundred polls
        before = app.output(proc)
        cluster.start()
        enqueue_after_outage(50, start=50)
        app.wait_for(lambda: len(app.lines("count")) >= 100, timeout=90, what="the jobs after the outage")
        code, output = app.stop(proc)
        assert code == 0, output
        assert "Traceback" not in output, output
        assert Counter(int(p[1]) for p in app.lines("count")) == Counter(range(100))
        assert queue_storage().counts()["claimed"] == 0
        down = [line for line in before.splitlines() if "WARNING" in line or "ERROR" in line]
        # one line per process (supervisor, dispatcher, two workers, and any child started while the database
        # was down) for the outage, each naming the entry
        pids = Counter(re.search(r"\[(\d+) ", line).group(1) for line in down)  # type: ignore[union-attr]
        assert down and max(pids.values()) == 1, "\n".join(down)
        assert all("retrying quietly until it answers" in line for line in down), "\n".join(down)
        assert all("database.yml" in line and "queue" in line for line in down), "\n".join(down)
        back = [line for line in output.splitlines() if re.search(r"answers again", line)]
        assert 1 <= len(back) <= 4, output
    finally:
        import solidstack

        solidstack._reset_parts()
        cluster.stop()
