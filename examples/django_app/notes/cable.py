"""The example's Action Cable channel: every index page streams the count of emails sent, over solidstack's own
cable endpoint (``/cable``, mounted in mysite/asgi.py by ``solidstack_asgi``), with the ``@rails/actioncable``
client. The task broadcasts from the worker process; any process may (``solidstack.cable.broadcast``)."""

from solidstack.cable import Channel

STREAM = "emails_sent"


class SentChannel(Channel):
    """``{"channel": "SentChannel"}``: the stream of "an email was sent" messages."""

    def subscribed(self) -> None:
        # Who is at the other end: self.connection.current_user (the Django user of the session, or None). The
        # count of sent emails is public in this example; a private stream would check it and self.reject().
        self.stream_from(STREAM)
