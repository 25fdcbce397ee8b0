"""The one seam between the object store and where its bytes live.

The protocol is deliberately narrow (six whole-object verbs, no paths, no
partial reads, no listing by prefix) so that an S3-compatible backend maps onto
it one call per method: ``put_object``, ``get_object``, ``head_object``,
``list_objects_v2``, ``delete_object``.  Backends store opaque bytes; encoding,
compression and hashing belong to :mod:`cairn.cas.odb`.
"""

from __future__ import annotations

import re
from typing import Iterator, Protocol, runtime_checkable

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
