"""Settings of the example: Django 6 with solidstack's tasks backend, cache and Channels layer, all on SQLite files
under storage/ (set DJANGO_APP_ROOT to keep them elsewhere, as the end-to-end test does)."""

import os
from pathlib import Path

BASE_DIR = Path(os.environ.get("DJANGO_APP_ROOT") or Path(__file__).resolve().parents[1])
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
ROOT_URLCONF = "mysite.urls"
# auth, sessions and admin: staff users sign in at /admin/ and may then open the jobs dashboard at /jobs/.
INSTALLED_APPS = ["django.contrib.admin", "django.contrib.auth", "django.contrib.contenttypes",
                  "django.contrib.sessions", "django.contrib.messages", "django.contrib.staticfiles",
                  "solidstack.django", "notes"]
MIDDLEWARE = ["django.middleware.security.SecurityMiddleware", "django.contrib.sessions.middleware.SessionMiddleware",
              "django.middleware.common.CommonMiddleware", "django.middleware.csrf.CsrfViewMiddleware",
              "django.contrib.auth.middleware.AuthenticationMiddleware",
              "django.contrib.messages.middleware.MessageMiddleware"]
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True,
              "OPTIONS": {"context_processors": ["django.template.context_processors.request",
                                                 "django.contrib.auth.context_processors.auth",
                                                 "django.contrib.messages.context_processors.messages"]}}]
STATIC_URL = "static/"
(BASE_DIR / "storage").mkdir(parents=True, exist_ok=True)  # SQLite creates files, not folders
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "storage" / "db.sqlite3"}}

# solidstack: each part keeps its own SQLite file under storage/ (no DATABASES alias, no config/database.yml).
SOLIDSTACK = {"ROOT": BASE_DIR, "ENV": "development",
              "QUEUE": {"workers": [{"queues": "*", "threads": 3}], "dispatchers": [{}]}}
TASKS = {"default": {"BACKEND": "solidstack.django.tasks.SolidQueueBackend", "QUEUES": ["default", "mail"]}}
CACHES = {"default": {"BACKEND": "solidstack.django.cache.SolidCache"}}
CHANNEL_LAYERS = {"default": {"BACKEND": "solidstack.django.channels.SolidChannelLayer"}}
# Emails are written to files under storage/mail/ (shown at /mailbox).
MAILERS = {"default": {"BACKEND": "django.core.mail.backends.filebased.EmailBackend",
                       "OPTIONS": {"file_path": str(BASE_DIR / "storage" / "mail")}}}
DEFAULT_FROM_EMAIL = "notes@example.com"
