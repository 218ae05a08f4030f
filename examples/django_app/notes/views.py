"""The pages: the form (index), enqueueing on commit (send), a cached page (stats) and the mailbox."""

from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import cache_page
from django.views.decorators.http import require_POST

from solidstack.django.tasks import enqueue_on_commit

from .tasks import send_note


def index(request: HttpRequest) -> HttpResponse:
    return render(request, "notes/index.html")


@require_POST
def send(request: HttpRequest) -> JsonResponse:
    email = request.POST.get("email", "").strip()
    if "@" not in email:
        return JsonResponse({"error": "an email address, please"}, status=400)
    with transaction.atomic():
        # (The app's own rows would be written here.) The task is enqueued once they are committed.
        enqueue_on_commit(send_note, email, request.POST.get("text", "Hello from solidstack"))
    return JsonResponse({"queued": email})


def _mail_files() -> list[Path]:
    folder = Path(settings.MAILERS["default"]["OPTIONS"]["file_path"])
    return sorted(folder.glob("*.log")) if folder.exists() else []


@cache_page(60)
def stats(request: HttpRequest) -> HttpResponse:
    """Cached for a minute in solidstack's cache: the time it was built stays the same on reload."""
    return HttpResponse(f"<p>Built at <span id='built'>{timezone.now().isoformat()}</span>; "
                        f"<span id='count'>{len(_mail_files())}</span> email file(s).</p>")


def mailbox(request: HttpRequest) -> HttpResponse:
    subjects = [line for path in _mail_files() for line in path.read_text().splitlines()
                if line.startswith("Subject:")]
    return HttpResponse("<ul>" + "".join(f"<li>{s[9:]}</li>" for s in subjects) + "</ul>")
