"""``solidstack jobs``: run the supervisor, check the configuration, manage failed jobs."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import click

from solidstack.config import App, ConfigError
from solidstack.logs import FORMAT_VAR, FORMATS, LEVEL_VAR, LEVELS, parse_level, setup_logging
from solidstack.queue.config import QueueConfig, load_queue_config

ENVIRONMENT_FILE = "config/environment.py"


def load_app_code(app: App, require: str | None = None) -> str | None:
    """Import the app's code so its job classes are registered, as ``bin/jobs`` requires config/environment.

    ``require`` is a module name or a ``.py`` file; by default the app's ``config/environment.py``, if any.
    Returns what was imported.
    """
    if str(app.root) not in sys.path:
        sys.path.insert(0, str(app.root))
    target = require
    if target is None:
        if not (app.root / ENVIRONMENT_FILE).exists():
            return None
        target = ENVIRONMENT_FILE
    try:
        if target.endswith(".py"):
            path = (app.root / target).resolve()
            if not path.exists():
                raise ConfigError(f"{path} does not exist", key="--require")
            spec = importlib.util.spec_from_file_location("solidstack_app_environment", path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
        else:
            importlib.import_module(target)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"importing the app failed: {type(exc).__name__}: {exc}", file=target) from exc
    return target


def _log_level(option: str | None, verbose: bool, config: QueueConfig) -> str:
    """``--log-level`` (or ``-v``), else ``SOLIDSTACK_LOG_LEVEL``, else queue.yml's ``log_level``, else info."""
    if option:
        return option
    if verbose:
        return "debug"
    value = os.environ.get(LEVEL_VAR)
    if value:
        try:
            return parse_level(value)
        except ValueError as exc:
            raise ConfigError(str(exc), key=LEVEL_VAR) from None
    return config.log_level or "info"


@click.group(invoke_without_command=True)
@click.option("-c", "--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              envvar=["SOLIDSTACK_QUEUE_CONFIG", "SOLID_QUEUE_CONFIG"], help="queue.yml to use.")
@click.option("--mode", type=click.Choice(["fork", "async"]), default="fork", show_default=True,
              envvar=["SOLIDSTACK_SUPERVISOR_MODE", "SOLID_QUEUE_SUPERVISOR_MODE"],
              help="Run workers as child processes (fork) or threads (async).")
@click.option("--skip-recurring", is_flag=True, envvar=["SOLIDSTACK_SKIP_RECURRING", "SOLID_QUEUE_SKIP_RECURRING"],
              help="Do not run the scheduler of config/recurring.yml.")
@click.option("--require", help="Module or .py file to import instead of config/environment.py.")
@click.option("--log-level", type=click.Choice(LEVELS, case_sensitive=False),
              help=f"debug, info (each job succeeding is logged at debug), ... (default: ${LEVEL_VAR}, "
                   "else queue.yml's log_level, else info).")
@click.option("--log-format", type=click.Choice(FORMATS), default="text", show_default=True, envvar=FORMAT_VAR,
              help="text, or json: one JSON object per line (time, level, logger, message, job_id, job_class).")
@click.option("-v", "--verbose", is_flag=True, help="The same as --log-level debug.")
@click.pass_context
def jobs(ctx: click.Context, config_file: Path | None, mode: str, skip_recurring: bool, require: str | None,
         log_level: str | None, log_format: str, verbose: bool) -> None:
    """Run the supervisor: the workers and dispatchers of config/queue.yml.

    Exit status: 0 after a clean stop (SIGTERM, SIGINT), 2 for a usage or configuration error (nothing was
    started), 1 when the supervisor gave up or a database failed at run time.
    """
    ctx.ensure_object(App)
    ctx.meta["queue_config_file"] = config_file
    ctx.meta["require"] = require
    if ctx.invoked_subcommand is not None:
        return
    from solidstack.queue.adapters import storage_for
    from solidstack.queue.processes.supervisor import AsyncSupervisor, ForkSupervisor

    app: App = ctx.obj
    config = load_queue_config(app, config_file)
    setup_logging(_log_level(log_level, verbose, config), log_format)
    load_app_code(app, require)
    storage = storage_for(app, config)
    from solidstack.queue.processes.scheduler import scheduler_roles

    extra_roles = scheduler_roles(app, skip=skip_recurring, config=config)  # invalid recurring.yml stops start-up
    supervisor_class = ForkSupervisor if mode == "fork" else AsyncSupervisor
    supervisor = supervisor_class(storage, config, extra_roles=extra_roles)
    ctx.exit(supervisor.run())


@jobs.command()
@click.pass_context
def check(ctx: click.Context) -> None:
    """Check what `solidstack jobs` checks before it starts, and that every database opens and is migrated.

    The configuration files, the app's code, recurring.yml, and each part's database (adapter supported, file
    present and a SQLite database, every migration applied); nothing is created. Exit 0 when all is well, 2 for
    a configuration error, 1 for a database that does not open or is not migrated, with the reasons: usable as a
    container health check.
    """
    from solidstack.queue.config import database_entry
    from solidstack.queue.job import registered_jobs
    from solidstack.queue.recurring import load_recurring_tasks, validate_tasks
    from solidstack.tasks import check_databases

    app: App = ctx.obj
    config = load_queue_config(app, ctx.meta.get("queue_config_file"))
    click.echo(f"queue.yml ({app.env}): {len(config.workers)} worker(s), {len(config.dispatchers)} dispatcher(s), "
               f"adapter {config.adapter}")
    loaded = load_app_code(app, ctx.meta.get("require"))
    names = sorted(registered_jobs())
    click.echo(f"app code: {loaded or '(no config/environment.py)'}; job classes: {', '.join(names) or '(none)'}")
    tasks = load_recurring_tasks(app)
    validate_tasks(tasks, file=app.config_file("recurring.yml"), env=app.env)
    click.echo(f"recurring.yml ({app.env}): {len(tasks)} task(s)")
    statuses = check_databases(app, {"queue": database_entry(app, config)})
    for status in statuses:
        state = "problem" if status.problem else f"migrated ({status.applied} migrations)"
        click.echo(f"{status.entry} database: {status.location}: {state}")
    problems = [status.problem for status in statuses if status.problem]
    if problems:
        for problem in problems:
            click.secho(f"error: {problem}", fg="red", err=True)
        ctx.exit(1)
    click.echo("ok")


def _storage(ctx: click.Context):  # type: ignore[no-untyped-def]
    from solidstack.queue.adapters import storage_for

    return storage_for(ctx.obj, load_queue_config(ctx.obj, ctx.meta.get("queue_config_file")))


@jobs.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """Jobs in each state and the running processes."""
    storage = _storage(ctx)
    counts = storage.counts()
    click.echo("  ".join(f"{state}: {count}" for state, count in counts.items()))
    now = time.time()
    for process in storage.processes():
        click.echo(f"{process['kind']:<10} {process['name']:<24} pid {process['pid']:<7} "
                   f"heartbeat {now - process['last_heartbeat_at']:.0f}s ago")


@jobs.command()
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def failed(ctx: click.Context, limit: int, as_json: bool) -> None:
    """List failed jobs."""
    for job in _storage(ctx).failed_jobs(limit=limit):
        if as_json:
            click.echo(json.dumps({**job.__dict__}))
            continue
        when = datetime.fromtimestamp(job.failed_at, UTC).strftime("%Y-%m-%d %H:%M:%S")
        click.echo(f"{job.id:>8}  {when}  {job.class_name}  {job.queue_name}  "
                   f"{job.error.get('exception_class', '')}: {job.error.get('message', '')}")


@jobs.command()
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "all_", is_flag=True, help="Every failed job.")
@click.pass_context
def retry(ctx: click.Context, ids: tuple[int, ...], all_: bool) -> None:
    """Put failed jobs back in their queues."""
    if not ids and not all_:
        raise click.UsageError("name job ids or pass --all")
    count = _storage(ctx).retry_failed(None if all_ else list(ids), time.time())
    click.echo(f"{count} job(s) back in their queues")


@jobs.command()
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "all_", is_flag=True, help="Every failed job.")
@click.pass_context
def discard(ctx: click.Context, ids: tuple[int, ...], all_: bool) -> None:
    """Delete failed jobs."""
    if not ids and not all_:
        raise click.UsageError("name job ids or pass --all")
    count = _storage(ctx).discard_failed(None if all_ else list(ids))
    click.echo(f"{count} failed job(s) discarded")
