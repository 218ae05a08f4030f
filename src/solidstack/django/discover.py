"""Imported by the worker (``--require``, after its logging is set up): every installed app's ``tasks`` module,
so their tasks are registered as jobs before the first claim (Django's own ``autodiscover_modules``, as the admin
finds ``admin`` modules).

Django logs two INFO lines per task (``django.tasks``: started, finished) from its signal receivers. Django
itself shows them only in DEBUG (its console handler); the worker's stderr handler would print both for every
task, which costs the worker most of its per-task time (decision 0706). As solidstack's own line of a succeeding
job (decision 0800), they are shown at ``--log-level debug``; a failed task's ERROR line always is. A project
that sets a level for ``django.tasks`` in ``LOGGING`` keeps it.
"""

import logging

from django.utils.module_loading import autodiscover_modules

autodiscover_modules("tasks")

_tasks_logger = logging.getLogger("django.tasks")
if _tasks_logger.level == logging.NOTSET and logging.getLogger().level > logging.DEBUG:
    _tasks_logger.setLevel(logging.WARNING)
