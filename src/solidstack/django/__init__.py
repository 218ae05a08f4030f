"""solidstack for Django (``pip install 'solidstack[django]'``, Django >= 6.0, Python >= 3.12).

Add ``"solidstack.django"`` to ``INSTALLED_APPS``, then set what you use:

- ``TASKS``: ``solidstack.django.tasks.SolidQueueBackend`` (Django's ``django.tasks`` on solidstack's queue);
- ``CACHES``: ``solidstack.django.cache.SolidCache``;
- ``SOLIDSTACK``: optional, see :mod:`solidstack.django.conf`.

``manage.py migrate`` creates solidstack's tables in each part's database, ``manage.py solidstack jobs`` runs the
workers and ``manage.py check`` validates the whole configuration. Nothing outside this package imports Django.
"""
