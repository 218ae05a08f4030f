"""``manage.py solidstack jobs [options]``: solidstack's worker and its admin commands inside the Django project.

The same supervisor and options as the ``solidstack jobs`` CLI (``--mode fork|async``, ``--skip-recurring``,
``status``, ``failed``, ``retry``, ``discard``, ``check``), configured from Django's settings (see
:mod:`solidstack.django.conf`), with every installed app's ``tasks`` module imported first.
"""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError

COMMANDS = ("jobs",)


class Command(BaseCommand):
    help = "Run solidstack's workers (manage.py solidstack jobs) or its job admin commands (jobs --help)."
    requires_system_checks: list[str] = []  # the worker checks its own configuration at start-up

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("part", choices=COMMANDS, help="jobs: the supervisor and its admin commands")
        parser.add_argument("rest", nargs=argparse.REMAINDER, help="options and subcommands of `solidstack jobs`")

    def handle(self, *args: Any, part: str, rest: list[str], **options: Any) -> None:
        from django.db import connections

        from solidstack.config import current_app
        from solidstack.queue.cli import jobs

        # Forked workers must not share the parent's database connections (they reconnect on first use).
        connections.close_all()
        argv = ["--require", "solidstack.django.discover", *rest]
        try:
            code = jobs.main(argv, prog_name="manage.py solidstack jobs", obj=current_app(), standalone_mode=False)
        except Exception as exc:  # click's usage errors and ConfigError: one line, as the CLI prints them
            raise CommandError(str(exc)) from exc
        if code:
            raise CommandError(f"solidstack jobs exited with {code}", returncode=int(code))
