"""The one seam between the object store and where its bytes live.

The protocol is deliberately narrow (six whole-object verbs, no paths, no
partial reads, no listing by prefix) so that an S3-compatible backend maps onto
it one call per method: ``put_object``, ``get_object``, ``head_object``,
``list_objects_v2``, ``delete_object``.  Backends store opaque bytes; encoding,
compression and hashing belong to :mod:`cairn.cas.odb`.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterator, Protocol, runtime_checkable

from ...errors import InvalidArgument

_OID_RE = re.compile(r"[0-9a-f]{64}")


def check_oid(oid: str) -> str:
    """Reject anything that is not a lowercase SHA-256 hex digest.

    Backends turn oids into paths and keys, so a malformed oid (``"../x"``) must
    never reach them.
    """
    if not isinstance(oid, str) or _OID_RE.fullmatch(oid) is None:
        raise InvalidArgument(f"not an object id (64 lowercase hex characters): {oid!r}", oid=oid)
    return oid


def is_oid(name: str) -> bool:
    return _OID_RE.fullmatch(name) is not None


@runtime_checkable
class Backend(Protocol):
    """Where stored objects live.  Every method takes a validated oid.

    ``put`` must be atomic: a concurrent or later ``get`` sees either nothing or
    the whole object, never a torn write.  Writing an oid that exists is allowed
    and harmless (the content is the same by construction).
    """

    def put(self, oid: str, data: bytes) -> None:
        """Store ``data`` under ``oid`` atomically."""

    def get(self, oid: str) -> bytes:
        """Return the stored bytes; raise :class:`~cairn.errors.NotFound` if absent."""

    def exists(self, oid: str) -> bool:
        """Whether ``oid`` is stored."""

    def iter_oids(self) -> Iterator[str]:
        """Every stored oid, in no particular order."""

    def delete(self, oid: str) -> None:
        """Remove ``oid``; raise :class:`~cairn.errors.NotFound` if absent."""

    def size(self, oid: str) -> int:
        """Stored (encoded) size in bytes; raise :class:`~cairn.errors.NotFound` if absent."""


# -- what garbage collection needs beyond the protocol ---------------------------------
# Optional, so third-party backends and the layers (encryption, tiering) keep the six
# verbs above; cairn.lifecycle.gc looks these up with :func:`capability`.

@runtime_checkable
class Sweepable(Protocol):
    """A backend that can tell objects' ages and remove old ones safely (local, S3, memory).

    ``scan`` yields ``(oid, stored size, modified time in ns)``; ``freshen`` makes an object
    young again (``False`` when it is absent); ``remove_old`` deletes each oid whose modified
    time is still before ``before_ns`` at the moment of deletion and returns the
    ``(oid, size)`` it deleted; ``clean_temp`` removes temporary files of killed writers
    older than ``before_ns`` and returns ``(count, bytes)``.
    """

    def scan(self) -> Iterator[tuple[str, int, int]]: ...

    def freshen(self, oid: str) -> bool: ...

    def remove_old(self, oids: list[str], before_ns: int) -> list[tuple[str, int]]: ...

    def clean_temp(self, before_ns: int) -> tuple[int, int]: ...


# Attribute names under which a wrapping backend (a layer) keeps the one it wraps.
_INNER = ("inner", "backend", "base", "hot")


def capability(backend: object, name: str) -> Callable[..., Any] | None:
    """``backend``'s method ``name``, or that of the backend it wraps, and so on down.

    Keys are oids at every level (a layer changes bytes, not names), so an inner
    backend's listing and deletes are the outer one's."""
    seen = 0
    while backend is not None and seen < 8:
        method = getattr(backend, name, None)
        if callable(method):
            return method
        backend = next((getattr(backend, a) for a in _INNER if getattr(backend, a, None)
                        is not None), None)
        seen += 1
    return None


def freshen(backend: object, oid: str) -> bool:
    """Whether ``oid`` is stored; if so its modified time becomes now where the backend
    can (a put that finds its object already there calls this: see docs/lifecycle.md,
    "Garbage collection", on why a deduplicated write must make the object young)."""
    method = capability(backend, "freshen")
    if method is not None and method(oid):
        return True
    if method is not None and getattr(method, "__self__", None) is backend:
        return False
    # Absent where its time is kept (a tier above?): ask the outer backend as before.
    return bool(backend.exists(oid))  # type: ignore[attr-defined]
