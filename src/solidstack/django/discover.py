"""Imported by the worker (``--require``): every installed app's ``tasks`` module, so their tasks are registered
as jobs before the first claim (Django's own ``autodiscover_modules``, as the admin finds ``admin`` modules)."""

from django.utils.module_loading import autodiscover_modules

autodiscover_modules("tasks")
