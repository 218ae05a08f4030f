"""``solidstack jobs batch ID`` and ``solidstack jobs batches``: the status of batches (see :mod:`.batches`)."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from solidstack.queue.cli import _storage, jobs
from solidstack.queue.features.batches import Batch, BatchStatus


def _line(status: BatchStatus) -> str:
    created = datetime.fromtimestamp(status.created_at, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return (f"batch {status.id:<6} {status.status:<9} total {status.total:<6} pending {status.pending:<6} "
            f"succeeded {status.succeeded:<6} failed {status.failed:<6} created {created} UTC"
            f"{'  ' + status.description if status.description else ''}")


@jobs.command("batch")
@click.argument("batch_id", type=int)
@click.pass_context
def batch(ctx: click.Context, batch_id: int) -> None:
    """One batch: total, pending, succeeded and failed jobs."""
    status = Batch.find(batch_id, storage=_storage(ctx))
    if status is None:
        raise click.ClickException(f"no batch {batch_id}")
    click.echo(_line(status))


@jobs.command("batches")
@click.option("--limit", type=int, default=20, show_default=True)
@click.pass_context
def batches(ctx: click.Context, limit: int) -> None:
    """The most recent batches, newest first."""
    found = Batch.recent(limit, storage=_storage(ctx))
    if not found:
        click.echo("no batches")
    for status in found:
        click.echo(_line(status))
