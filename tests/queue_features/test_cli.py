"""``solidstack jobs batch ID`` and ``solidstack jobs batches`` against an app's queue database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from solidstack.config import App
from solidstack.queue import Batch, Job, queue_storage
from solidstack.queue.features.batches import job_done

SOLIDSTACK = Path(sys.executable).parent / "solidstack"


class Q3CliStep(Job):
    def perform(self) -> None:
        pass


def cli(app: App, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SOLIDSTACK_ROOT": str(app.root), "SOLIDSTACK_ENV": "test"}
    return subprocess.run([str(SOLIDSTACK), *args], capture_output=True, text=True, timeout=60, env=env,
                          cwd=app.root)


def test_batch_status_on_the_command_line(app: App) -> None:
    with Batch(description="nightly import") as batch:
        first = Q3CliStep.perform_later()
        Q3CliStep.perform_later()
        Q3CliStep.perform_later()
    job_done(queue_storage(), first.provider_job_id, "failed", time.time())
    out = cli(app, "jobs", "batch", str(batch.id))
    assert out.returncode == 0, out.stderr
    assert f"batch {batch.id}" in out.stdout
    for part in ("pending ", "total 3", "pending 2", "succeeded 0", "failed 1", "nightly import"):
        assert part in out.stdout, out.stdout
    listing = cli(app, "jobs", "batches")
    assert listing.returncode == 0 and f"batch {batch.id}" in listing.stdout
    missing = cli(app, "jobs", "batch", "999999")
    assert missing.returncode != 0 and "no batch 999999" in missing.stderr
