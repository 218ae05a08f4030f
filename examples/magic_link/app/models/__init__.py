from .magic_link import MagicLink
from .session import Session

__all__ = ["MagicLink", "Session"]
