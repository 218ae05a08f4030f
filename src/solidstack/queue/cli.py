"""``solidstack jobs``: run the supervisor and manage jobs."""

from __future__ import annotations

import click


@click.group(invoke_without_command=True)
@click.pass_context
def jobs(ctx: click.Context) -> None:
    """Run the supervisor (workers and dispatchers of config/queue.yml)."""
