import logging
import os
from email.message import EmailMessage

from solidstack.queue import Job

from .. import mailer

log = logging.getLogger("app")

BASE_URL = os.environ.get("APP_URL", "http://127.0.0.1:8000")


class SendMagicLinkEmailJob(Job):
    queue_as = "default"

    def perform(self, email: str, token: str) -> None:
        message = EmailMessage()
        message["From"] = "sign-in@example.com"
        message["To"] = email
        message["Subject"] = "Your sign-in link"
        message.set_content(f"Sign in: {BASE_URL}/session/{token}\n\nThe link works once, for 15 minutes.\n")
        path = mailer.deliver(message)
        log.info("Sent magic link to %s (%s)", email, path.name)
