"""Settings of the comparison (compare.py): one Django project, its task backend chosen by BENCH_BACKEND, every
backend's tables in the same SQLite file (BENCH_ROOT/db.sqlite3, Django's recommended WAL settings) or the same
PostgreSQL database (BENCH_PG_URL)."""

import os
from pathlib import Path

BACKEND = os.environ["BENCH_BACKEND"].replace("solidstack-job", "solidstack")
BASE_DIR = Path(os.environ["BENCH_ROOT"])
SECRET_KEY = "bench-only"
DEBUG = False
USE_TZ = True
_BACKENDS = {
    "solidstack": ("solidstack.django", "solidstack.django.tasks.SolidQueueBackend"),
    "django-tasks-db": ("django_tasks_db", "django_tasks_db.DatabaseBackend"),
    "dj_queue": ("dj_queue", "dj_queue.backend.DjQueueBackend"),
}
_app, _backend = _BACKENDS[BACKEND]
INSTALLED_APPS = ["django.contrib.contenttypes", _app, "benchproject"]
_pg = os.environ.get("BENCH_PG_URL")
if _pg:
    from psycopg.conninfo import conninfo_to_dict

    _parts = conninfo_to_dict(_pg)
    DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": _parts["dbname"],
                             "HOST": _parts.get("host", "127.0.0.1"), "PORT": str(_parts.get("port", 5432)),
                             "USER": _parts.get("user", "postgres")}}
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3",
                             "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                                         "transaction_mode": "IMMEDIATE", "timeout": 20}}}
if BACKEND == "dj_queue":
    DATABASE_ROUTERS = ["dj_queue.routers.DjQueueRouter"]
TASKS = {"default": {"BACKEND": _backend, "QUEUES": []}}
# solidstack's queue tables in Django's default database too (its queue.yml defaults: one worker, 3 threads).
SOLIDSTACK = {"ROOT": BASE_DIR, "ENV": "bench", "DATABASES": {"queue": "default"}}
if os.environ.get("BENCH_SOLID_QUEUE"):  # another queue.yml section, for experiments
    import json

    SOLIDSTACK["QUEUE"] = json.loads(os.environ["BENCH_SOLID_QUEUE"])
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
