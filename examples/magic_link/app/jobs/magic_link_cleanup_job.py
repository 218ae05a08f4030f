import logging

from solidstack.queue import Job

from ..models import MagicLink

log = logging.getLogger("app")


class MagicLinkCleanupJob(Job):
    queue_as = "default"

    def perform(self) -> None:
        count = MagicLink.cleanup()
        log.info("Cleaned up %d expired magic links", count)
