"""The ASGI application: Django for HTTP, a Channels consumer for the live notices' WebSocket, and, through
``solidstack_asgi``, solidstack's Action Cable endpoint at /cable and the jobs dashboard at /jobs/ (staff only)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

from django.core.asgi import get_asgi_application

django_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.urls import path  # noqa: E402
from notes.consumers import NoticeConsumer  # noqa: E402

from solidstack.django.asgi import solidstack_asgi  # noqa: E402

application = solidstack_asgi(
    ProtocolTypeRouter({
        # Static files (the vendored Action Cable client) served by Django in development, as runserver does.
        "http": ASGIStaticFilesHandler(django_app) if settings.DEBUG else django_app,
        "websocket": URLRouter([path("ws/notices/", NoticeConsumer.as_asgi())]),
    }),
    channels=["notes.cable.SentChannel"],     # /cable: solidstack's Action Cable server
    dashboard_options={"title": "notes"},     # /jobs/: the jobs dashboard, for staff users
)
