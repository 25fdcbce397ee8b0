"""Object-store backends: where encoded objects live (see :class:`Backend`)."""

from .base import Backend
from .local import LocalBackend
from .memory import MemoryBackend

__all__ = ["Backend", "LocalBackend", "MemoryBackend"]
