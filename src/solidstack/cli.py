"""The ``solidstack`` command: install, migrate, run and inspect."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .config import ConfigError, configure
from .db import DatabaseError

#: Exit statuses: a usage error (click's) and a configuration error are 2, a failure at run time is 1.
EXIT_RUNTIME = 1
EXIT_CONFIG = 2


class _Group(click.Group):
    """Turns configuration and database errors into one clear line: exit status 2 for the configuration (fix a
    file or an option: retrying will not help), 1 for the database (it may work on the next try)."""

    def invoke(self, ctx: click.Context):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            ctx.exit(EXIT_CONFIG)
        except DatabaseError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            ctx.exit(EXIT_RUNTIME)


@click.group(cls=_Group)
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), envvar="SOLIDSTACK_ROOT",
              help="The app folder (default: the working folder).")
@click.option("-e", "--env", envvar="SOLIDSTACK_ENV", help="development, test or production.")
@click.version_option(package_name="solidstack")
@click.pass_context
def main(ctx: click.Context, root: Path | None, env: str | None) -> None:
    """Background jobs, a cache and pub/sub on the database you already have."""
    ctx.obj = configure(root, env)


@main.command()
@click.option("--database", "-d", type=click.Choice(["sqlite3", "postgresql"]), default="sqlite3",
              show_default=True, help="The engine config/database.yml is written for.")
@click.pass_obj
def install(app, database: str) -> None:  # type: ignore[no-untyped-def]
    """Write config/*.yml, bin/jobs and db/*_migrate/ into the app; never overwrite a file."""
    from .tasks import install as do_install

    written, skipped = do_install(app.root, database)
    for path in written:
        click.echo(f"      create  {path.relative_to(app.root)}")
    for path in skipped:
        click.echo(f"        skip  {path.relative_to(app.root)} (exists)")


@main.group()
def db() -> None:
    """Database tasks."""


@db.command("migrate")
@click.pass_obj
def db_migrate(app) -> None:  # type: ignore[no-untyped-def]
    """Migrate every database of the environment: primary, queue, cache and cable."""
    from .tasks import migrate_all

    for result in migrate_all(app):
        status = ", ".join(result.applied) if result.applied else "up to date"
        click.echo(f"{result.entry:8} {result.location}: {status}")


def _register_commands() -> None:
    """Commands that live with their part."""
    from solidstack.queue.cli import jobs

    main.add_command(jobs)
    from solidstack.queue.cli.admin import queues, recurring  # also adds `jobs clear-finished`
    from solidstack.queue.cli.batches import batch  # noqa: F401  (adds `jobs batch` and `jobs batches`)

    main.add_command(recurring)
    main.add_command(queues)
    from solidstack.queue.cli import outcomes as cli_outcomes  # noqa: F401  (adds `jobs cancel` and `jobs result`)

    from .cable.cli import cable

    main.add_command(cable)
    from .dashboard.cli import dashboard  # imports the web extra only when it runs

    main.add_command(dashboard)


_register_commands()


def jobs_main(root: Path) -> None:
    """Entry point of an app's ``bin/jobs``: run the supervisor for the app in ``root``."""
    main.main(["--root", str(root), "jobs", *sys.argv[1:]], prog_name="bin/jobs")


if __name__ == "__main__":
    main()
