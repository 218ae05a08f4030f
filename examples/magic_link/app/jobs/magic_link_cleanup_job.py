import logging

from solidstack.queue import Job

from ..models import MagicLink, Session

log = logging.getLogger("app")


class MagicLinkCleanupJob(Job):
    queue_as = "default"

    def perform(self) -> None:
        count = MagicLink.cleanup()
        sessions = Session.cleanup()
        log.info("Cleaned up %d expired magic links and %d expired sessions", count, sessions)
