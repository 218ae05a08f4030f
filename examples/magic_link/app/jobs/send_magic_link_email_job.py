import logging
import os
from email.message import EmailMessage

from solidstack.cable import broadcast
from solidstack.queue import Job, retry_on

from .. import mailer
from ..models import MagicLink

log = logging.getLogger("app")


def base_url() -> str:
    """Where links point: the web app's URL (``APP_URL``; ``bin/dev`` sets it to the address it serves)."""
    return os.environ.get("APP_URL", "http://127.0.0.1:8000").rstrip("/")


# SMTP errors are OSErrors too: a mail server that is down or busy gets the email later, not never.
@retry_on(OSError, wait="polynomially_longer", attempts=5)
class SendMagicLinkEmailJob(Job):
    queue_as = "default"

    def perform(self, email: str, token: str) -> None:
        link = MagicLink.find_by_token(token)
        if link is None:
            log.warning("Not sending a magic link to %s: the link is gone (cleaned up before the job ran)", email)
            return
        message = EmailMessage()
        message["From"] = "sign-in@example.com"
        message["To"] = email
        message["Subject"] = "Your sign-in link"
        message.set_content(f"Sign in: {base_url()}/session/{token}\n\n"
                            f"The link works once, for {round((link.expires_at - link.created_at) / 60)} minutes.\n")
        where = mailer.deliver(message)
        link = link.mark_sent()
        # The "check your inbox" page of this link is listening: tell it the email is on its way.
        broadcast(link.stream, {"status": "sent", "email": email, "sent_at": link.sent_at})
        log.info("Sent magic link to %s (%s)", email, where)
