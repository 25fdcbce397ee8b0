"""In-memory backend: the twin of :class:`LocalBackend` for fast tests."""

from __future__ import annotations

import threading
import time
from typing import Iterator

from ...errors import NotFound
from .base import check_oid


class MemoryBackend:
    """Objects in a dict; behaves like :class:`~cairn.cas.backends.local.LocalBackend`."""

    def __init__(self) -> None:
        self._objects: dict[str, bytes] = {}
        self._times: dict[str, int] = {}  # oid -> ns it was last put or freshened (for GC)
        self._lock = threading.Lock()  # iter_oids snapshots while writers run

    def __repr__(self) -> str:
        return f"MemoryBackend({len(self._objects)} objects)"

    def put(self, oid: str, data: bytes) -> None:
        check_oid(oid)
        blob = bytes(data)  # copy: a caller's bytearray must not alias a stored object
        with self._lock:
            self._objects[oid] = blob
            self._times[oid] = time.time_ns()

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
            self._times.pop(oid, None)

    def size(self, oid: str) -> int:
        return len(self.get(oid))

    # -- garbage collection (cairn.cas.backends.base.Sweepable) ------------------

    def freshen(self, oid: str) -> bool:
        with self._lock:
            if check_oid(oid) not in self._objects:
                return False
            self._times[oid] = time.time_ns()
            return True

    def scan(self) -> Iterator[tuple[str, int, int]]:
        with self._lock:
            rows = [(o, len(d), self._times.get(o, 0)) for o, d in self._objects.items()]
        return iter(rows)

    def ages(self, oids: list[str]) -> Iterator[tuple[str, int, int]]:
        """``(oid, size, modified ns)`` of those ``oids`` still stored."""
        with self._lock:
            rows = [(o, len(self._objects[o]), self._times.get(o, 0)) for o in oids
                    if o in self._objects]
        return iter(rows)

    def remove_old(self, oids: list[str], before_ns: int) -> list[tuple[str, int]]:
        removed = []
        with self._lock:  # checked and deleted under one lock: no writer in between
            for oid in oids:
                if oid in self._objects and self._times.get(oid, 0) < before_ns:
                    removed.append((oid, len(self._objects.pop(oid))))
                    self._times.pop(oid, None)
        return removed

    def clean_temp(self, before_ns: int) -> tuple[int, int]:
        return 0, 0  # puts are atomic in memory: nothing half-written to clean
