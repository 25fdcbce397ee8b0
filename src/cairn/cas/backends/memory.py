"""In-memory backend: the twin of :class:`LocalBackend` for fast tests."""

from __future__ import annotations

import threading
from typing import Iterator

from ...errors import NotFound
from .base import check_oid


class MemoryBackend:
    """Objects in a dict; behaves like :class:`~cairn.cas.backends.local.LocalBackend`."""

    def __init__(self) -> None:
        self._objects: dict[str, bytes] = {}
        self._lock = threading.Lock()  # iter_oids snapshots while writers run

    def __repr__(self) -> str:
        return f"MemoryBackend({len(self._objects)} objects)"

    def put(self, oid: str, data: bytes) -> None:
        check_oid(oid)
        blob = bytes(data)  # copy: a caller's bytearray must not alias a stored object
        with self._lock:
            self._objects[oid] = blob

    def get(self, oid: str) -> bytes:
        check_oid(oid)
        try:
            return self._objects[oid]
        except KeyError:
            raise NotFound(f"object {oid} not found", oid=oid) from None

    def exists(self, oid: str) -> bool:
        return check_oid(oid) in self._objects

    def iter_oids(self) -> Iterator[str]:
        with self._lock:
            oids = list(self._objects)
        return iter(oids)

    def delete(self, oid: str) -> None:
        check_oid(oid)
        with self._lock:
            if self._objects.pop(oid, None) is None:
                raise NotFound(f"object {oid} not found", oid=oid)

    def size(self, oid: str) -> int:
        return len(self.get(oid))
