"""Settings of the test project. ``SOLIDSTACK_TEST_ROOT`` is the app folder (a test's tmp dir); a PostgreSQL
queue database comes from ``SOLIDSTACK_TEST_QUEUE_URL`` (a test's fresh database)."""

import os
from pathlib import Path

BASE_DIR = Path(os.environ.get("SOLIDSTACK_TEST_ROOT", Path(__file__).parent))
SECRET_KEY = "test"
DEBUG = True
USE_TZ = True
# "cache": Django's vendored cache tests (tests/django/cache), for their Poll model. auth and sessions: the
# signed-in user of solidstack.django.asgi (the cable's connection, the dashboard's staff check).
INSTALLED_APPS = ["django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions",
                  "solidstack.django", "djproject", "cache"]
ROOT_URLCONF = "djproject.urls"
_DEFAULT = str(BASE_DIR / "default.sqlite3") if "SOLIDSTACK_TEST_ROOT" in os.environ else ":memory:"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": _DEFAULT}}
_pg = os.environ.get("SOLIDSTACK_TEST_QUEUE_URL")
if _pg:
    from psycopg.conninfo import conninfo_to_dict

    _parts = conninfo_to_dict(_pg)
    for _part in ("queue", "cache", "cable"):  # every part on the test's PostgreSQL database
        DATABASES[_part] = {"ENGINE": "django.db.backends.postgresql", "NAME": _parts["dbname"],
                            "HOST": _parts.get("host", "127.0.0.1"), "PORT": str(_parts.get("port", 5432)),
                            "USER": _parts.get("user", "postgres")}
TASKS = {"default": {"BACKEND": "solidstack.django.tasks.SolidQueueBackend", "QUEUES": ["default", "mail"]}}
SOLIDSTACK = {"ENV": "test", "QUEUE": {"workers": [{"queues": "*", "threads": 2, "polling_interval": 0.05}],
                                       "dispatchers": [{"polling_interval": 0.05}],
                                       "process_heartbeat_interval": 1, "process_alive_threshold": 3}}
CACHES = {"default": {"BACKEND": "solidstack.django.cache.SolidCache"},
          "prefixed": {"BACKEND": "solidstack.django.cache.SolidCache", "KEY_PREFIX": "p", "VERSION": 2,
                       "TIMEOUT": None}}
CHANNEL_LAYERS = {"default": {"BACKEND": "solidstack.django.channels.SolidChannelLayer"}}
