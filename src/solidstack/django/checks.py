"""``manage.py check``: solidstack's whole configuration, through Django's system checks."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from django.core import checks

if TYPE_CHECKING:
    from .tasks import SolidQueueBackend


@checks.register("solidstack")
def check_configuration(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The config (queue, recurring, cache, cable; files or settings) parses, each part's database answers and is
    migrated, and recurring tasks name tasks or jobs this process knows."""
    from solidstack.config import ConfigError, current_app
    from solidstack.db import DatabaseError
    from solidstack.queue.config import load_queue_config
    from solidstack.queue.recurring import load_recurring_tasks, validate_tasks
    from solidstack.tasks import check_databases

    errors: list[checks.CheckMessage] = []
    app = current_app()
    try:
        load_queue_config(app)
    except ConfigError as exc:
        errors.append(checks.Error(str(exc), id="solidstack.E001"))
    # `manage.py migrate` runs the checks before it migrates: unmigrated databases are what it is about to fix.
    if sys.argv[1:2] != ["migrate"]:
        try:
            statuses = check_databases(app)
        except (ConfigError, DatabaseError) as exc:
            errors.append(checks.Error(f"databases: {exc}", id="solidstack.E002"))
        else:
            errors += [checks.Error(f"{status.entry} database: {status.problem}", hint="run manage.py migrate",
                                    id="solidstack.E002") for status in statuses if status.problem]
    try:
        _import_tasks()
        tasks = load_recurring_tasks(app)
        validate_tasks(tasks, file=app.config_file("recurring.yml"), env=app.env)
    except ConfigError as exc:
        errors.append(checks.Error(str(exc), id="solidstack.E003"))
    return errors


def _import_tasks() -> None:
    """Import every installed app's ``tasks`` module, as the worker does, so their tasks are registered."""
    from django.utils.module_loading import autodiscover_modules

    autodiscover_modules("tasks")


def backend_checks(backend: SolidQueueBackend) -> list[checks.CheckMessage]:
    """The backend's QUEUES against the workers of the queue config: a queue no worker takes never runs."""
    from solidstack.config import ConfigError, current_app
    from solidstack.queue.config import load_queue_config

    try:
        config = load_queue_config(current_app())
    except ConfigError:
        return []  # reported once by check_configuration
    taken = [name for worker in config.workers for name in worker.queues]
    messages: list[checks.CheckMessage] = []
    for queue in sorted(backend.queues):
        if not any(name == "*" or name == queue or (name.endswith("*") and queue.startswith(name[:-1]))
                   for name in taken):
            messages.append(checks.Warning(
                f"TASKS[{backend.alias!r}]: queue {queue!r} is taken by no worker of {config.file}",
                hint="add it to a worker's queues", id="solidstack.W001"))
    return messages
