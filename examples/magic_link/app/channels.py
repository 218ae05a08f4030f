"""The app's cable channels: the "check your inbox" page listens for its email being sent."""

from __future__ import annotations

from solidstack.cable import Channel, Connection

from .models import MagicLink


class AppConnection(Connection):
    """A browser tab; who it is comes from its session (``CurrentSession`` looked it up for the handshake)."""

    identified_by = ("session_email",)

    def connect(self) -> None:
        self.session_email = getattr(self.request.state, "email", None)


class InboxChannel(Channel):
    """Streams the delivery of the link this session asked for last, and nobody else's."""

    def subscribed(self) -> None:
        link_id = self.connection.request.session.get("pending_link")
        if not isinstance(link_id, int):
            self.reject()
            return
        self.stream_from(MagicLink.stream_for(link_id))
        # The job may have sent the email before this page subscribed: say so now rather than never.
        link = MagicLink.find(link_id)
        if link is not None and link.sent_at is not None:
            self.transmit({"status": "sent", "email": link.email, "sent_at": link.sent_at})
