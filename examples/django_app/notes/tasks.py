"""The example's task: send an email with Django's mail API, then tell every open page, over the channel layer
(the Channels consumer) and over solidstack's Action Cable endpoint (the SentChannel)."""

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.mail import send_mail
from django.tasks import task

from solidstack.cable import broadcast

from .cable import STREAM


@task(queue_name="mail", retry_on=(ConnectionError,), retry_attempts=3)
def send_note(email: str, text: str) -> int:
    sent = send_mail(subject=f"A note for {email}", message=text, from_email=None, recipient_list=[email])
    async_to_sync(get_channel_layer().group_send)("notices", {"type": "notice", "text": f"Email to {email} sent"})
    broadcast(STREAM, {"email": email})
    return sent
