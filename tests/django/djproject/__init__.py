"""A Django project for solidstack.django's tests (settings, tasks, manage.py for worker subprocesses)."""
