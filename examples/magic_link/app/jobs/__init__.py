from .magic_link_cleanup_job import MagicLinkCleanupJob
from .send_magic_link_email_job import SendMagicLinkEmailJob

__all__ = ["MagicLinkCleanupJob", "SendMagicLinkEmailJob"]
