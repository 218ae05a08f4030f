"""solidstack for Django (``pip install 'solidstack[django]'``, Django >= 6.0, Python >= 3.12).

Add ``"solidstack.django"`` to ``INSTALLED_APPS``, then set what you use:

- ``TASKS``: ``solidstack.django.tasks.SolidQueueBackend`` (Django's ``django.tasks`` on solidstack's queue);
- ``CACHES``: ``solidstack.django.cache.SolidCache``;
- ``CHANNEL_LAYERS``: ``solidstack.django.channels.SolidChannelLayer``;
- ``SOLIDSTACK``: optional, see :mod:`solidstack.django.conf`.

In ``asgi.py``, :func:`solidstack.django.asgi.solidstack_asgi` mounts solidstack's Action Cable endpoint
(``/cable``) and the jobs dashboard (``/jobs/``) in Django's ASGI application.

``manage.py migrate`` creates solidstack's tables in each part's database, ``manage.py solidstack jobs`` runs the
workers and ``manage.py check`` validates the whole configuration. Nothing outside this package imports Django.
"""
