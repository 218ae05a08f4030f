"""``solidstack recurring list``, ``solidstack queues list|pause|resume|clear`` and
``solidstack jobs clear-finished``."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import click

from solidstack.config import App
from solidstack.queue.cli import _storage, jobs, load_app_code
from solidstack.queue.config import load_queue_config


def _when(at: float | None) -> str:
    if at is None:
        return "-"
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@click.group()
def recurring() -> None:
    """Recurring tasks of config/recurring.yml."""


@recurring.command("list")
@click.option("--require", help="Module or .py file to import instead of config/environment.py.")
@click.pass_obj
def recurring_list(app: App, require: str | None) -> None:
    """Each task: its schedule in words, what it runs, its last and next run (also tasks added at run time)."""
    from solidstack.queue.adapters import storage_for
    from solidstack.queue.processes.scheduler import RecurringStore, task_from_row
    from solidstack.queue.recurring import load_recurring_tasks

    tasks = load_recurring_tasks(app)
    load_app_code(app, require)
    dynamic: set[str] = set()
    try:
        store = RecurringStore(storage_for(app, load_queue_config(app)))
        last_runs = store.last_runs()
        rows = store.dynamic_rows()
    except Exception:  # not migrated yet: nothing has run, nothing was added
        last_runs, rows = {}, []
    for row in rows:
        try:
            tasks.append(task_from_row(row))
            dynamic.add(row["key"])
        except ValueError as exc:
            click.echo(f"{row['key']} (added at run time): cannot be scheduled here: {exc}")
    if not tasks:
        click.echo(f"no recurring tasks for {app.env}")
        return
    now = time.time()
    for task in tasks:
        click.echo(f"{task.key}{' (added at run time)' if task.key in dynamic else ''}")
        click.echo(f"  schedule: {task.schedule.text} — {task.schedule.describe()}")
        click.echo(f"  runs:     {task.target}{' ' + repr(list(task.args)) if task.args else ''}"
                   f"{' ' + repr(task.kwargs) if task.kwargs else ''} on queue {task.queue or 'default'}")
        if task.description:
            click.echo(f"  about:    {task.description}")
        click.echo(f"  last run: {_when(last_runs.get(task.key))}")
        click.echo(f"  next run: {_when(task.schedule.next_after(now))}")


@click.group()
@click.option("-c", "--config", "config_file", type=click.Path(dir_okay=False), help="queue.yml to use.")
@click.pass_context
def queues(ctx: click.Context, config_file: str | None) -> None:
    """List, pause, resume and clear queues."""
    ctx.meta["queue_config_file"] = config_file


@queues.command("list")
@click.pass_context
def queues_list(ctx: click.Context) -> None:
    """Each queue with ready jobs or a pause: size, latency, paused."""
    from solidstack.queue.admin.queues import queues as all_queues

    found = all_queues(_storage(ctx))
    if not found:
        click.echo("no queues with ready jobs")
    for info in found:
        click.echo(f"{info.name:<24} size {info.size:<8} latency {info.latency:9.1f}s"
                   f"{'  PAUSED' if info.paused else ''}")


@queues.command()
@click.argument("names", nargs=-1, required=True)
@click.pass_context
def pause(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Stop workers from taking jobs of these queues (jobs stay queued)."""
    from solidstack.queue.admin.queues import Queue

    storage = _storage(ctx)
    for name in names:
        Queue(name, storage).pause()
        click.echo(f"paused {name}")


@queues.command()
@click.argument("names", nargs=-1, required=True)
@click.pass_context
def resume(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Let workers take jobs of these queues again."""
    from solidstack.queue.admin.queues import Queue

    storage = _storage(ctx)
    for name in names:
        Queue(name, storage).resume()
        click.echo(f"resumed {name}")


@queues.command()
@click.argument("names", nargs=-1, required=True)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def clear(ctx: click.Context, names: tuple[str, ...], yes: bool) -> None:
    """Delete the ready jobs of these queues."""
    from solidstack.queue.admin.queues import Queue

    storage = _storage(ctx)
    for name in names:
        queue = Queue(name, storage)
        if not yes and not click.confirm(f"delete the {queue.size} ready job(s) of {name}?"):
            continue
        click.echo(f"cleared {name}: {queue.clear()} job(s) deleted")


@jobs.command("clear-finished")
@click.option("--older-than", type=float, default=None,
              help="Seconds since finishing (default: clear_finished_jobs_after of queue.yml).")
@click.option("--batch-size", type=int, default=500, show_default=True)
@click.option("--class", "class_name", help="Only jobs of this class.")
@click.pass_context
def clear_finished(ctx: click.Context, older_than: float | None, batch_size: int, class_name: str | None) -> None:
    """Delete finished jobs older than the cut-off, in batches."""
    from solidstack.queue.retention import clear_finished_jobs

    config = load_queue_config(ctx.obj, ctx.meta.get("queue_config_file"))
    cutoff = older_than if older_than is not None else config.clear_finished_jobs_after
    count = clear_finished_jobs(_storage(ctx), older_than=cutoff, batch_size=batch_size, class_name=class_name)
    click.echo(f"{count} finished job(s) deleted")
