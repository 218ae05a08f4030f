from .magic_link import MagicLink

__all__ = ["MagicLink"]
