"""``solidstack jobs cancel ID…`` and ``solidstack jobs result ID``."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from solidstack.queue.admin.inspect import QueueInspector
from solidstack.queue.cli import _storage, jobs
from solidstack.queue.features.outcomes import refusal
from solidstack.typed import to_json


@jobs.command()
@click.argument("ids", nargs=-1, type=int, required=True)
@click.pass_context
def cancel(ctx: click.Context, ids: tuple[int, ...]) -> None:
    """Cancel jobs: a waiting one is recorded as cancelled, a running one is told to stop.

    Exits with status 1, naming each, when a job is unknown or already done (the others are cancelled).
    """
    outcome = _storage(ctx).cancel(list(ids), time.time())
    refused = False
    for job_id, status in outcome.items():
        if status == "cancelled":
            click.echo(f"job {job_id}: cancelled")
        elif status == "cancelling":
            click.echo(f"job {job_id}: running; its worker is told to cancel it")
        else:
            refused = True
            click.echo(refusal(job_id, status), err=True)
    if refused:
        ctx.exit(1)


@jobs.command()
@click.argument("job_id", type=int)
@click.option("--wait", type=float, default=0.0, show_default=True, help="Seconds to wait for the job to be done.")
@click.pass_context
def result(ctx: click.Context, job_id: int, wait: float) -> None:
    """A job's status, return value (as typed JSON), timestamps and error, and each failed attempt (its error,
    backtrace, process and times; the newest kept, decision 0048)."""
    storage = _storage(ctx)
    try:
        found = storage.outcomes.wait(job_id, wait) if wait else storage.job_result(job_id)
    except TimeoutError:
        found = storage.job_result(job_id)
    except LookupError:
        found = None
    if found is None:
        raise click.ClickException(refusal(job_id, "unknown"))
    data: dict[str, Any] = {**found.__dict__, "value": to_json(found.value, "return value", what="a job result")}
    data["attempts"] = [{"attempt": a.attempt, "outcome": a.outcome, "exception_class": a.exception_class,
                         "message": a.message, "started_at": a.started_at, "failed_at": a.failed_at,
                         "process": a.process, "backtrace": a.backtrace}
                        for a in QueueInspector(storage).attempts(job_id)]
    click.echo(json.dumps(data, indent=2))
