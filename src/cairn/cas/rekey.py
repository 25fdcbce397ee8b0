"""Changing what an encrypted store's objects are sealed with, resumably.

:func:`rotate` re-wraps every object's data key under a new master key: only headers
change, the ciphertext is copied as is.  :func:`encrypt_existing` seals the objects a store
held before it got a key.  Both first record the intent in ``encryption.json`` (so readers
given the new key and the old one read every object however far the work got), then
rewrite one object at a time with an atomic put, and record completion last: killed
half-way, running the same command again finishes the job.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import CorruptObject, EncryptionError, NotFound
from . import codec
from ._pool import ordered_map
from .crypto import EncryptedBackend, is_encrypted, new_marker, open_sealed, parse_header, \
    rewrap, seal, unwrap_dek
from .keyprovider import KeyProvider


@dataclass
class RekeyReport:
    """What a rotation or an encryption pass did; ``complete`` once nothing is left to do."""

    key_id: str
    total: int = 0
    rewritten: int = 0
    already: int = 0
    unencrypted: int = 0
    corrupt: list[str] = field(default_factory=list)
    need_key: dict[str, list[str]] = field(default_factory=dict)  # key id -> oids

    @property
    def complete(self) -> bool:
        return not self.corrupt and not self.need_key

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "complete": self.complete}


def _target(objects: Any) -> EncryptedBackend:
    backend = getattr(objects, "backend", objects)
    if not isinstance(backend, EncryptedBackend):
        raise EncryptionError("this object store is not encrypted and no master key was given: "
                              "set CAIRN_MASTER_KEY or CAIRN_MASTER_KEY_FILE")
    return backend


def rotate(objects: Any, new: KeyProvider, *, workers: int = 8,
           progress: bool | None = False) -> RekeyReport:
    """Re-wrap every object's data key under ``new``.  ``objects``: an ObjectStore (or its
    EncryptedBackend) opened with a keyring holding the store's current key."""
    enc = _target(objects)
    marker = enc.marker_file.read()
    if marker is None:
        raise EncryptionError(f"{enc.inner!r} holds no encrypted objects yet: there is no key "
                              "to rotate")
    if enc.keyring.get(marker["key_id"]) is None and marker["key_id"] != new.key_id:
        raise EncryptionError(f"the store's master key is {marker['key_id']}, which was not "
                              "given: set CAIRN_MASTER_KEY to it")
    if marker["key_id"] != new.key_id:
        old = marker["key_id"]
        marker = {**marker, "key_id": new.key_id,
                  "previous_key_ids": _dedupe([*marker.get("previous_key_ids", ()), old]),
                  "retired_key_ids": [k for k in marker.get("retired_key_ids", ())
                                      if k != new.key_id]}
        enc.marker_file.write(marker)  # from here on new objects are sealed with ``new``
    enc.marker = marker
    enc.keyring = enc.keyring.with_first(new)
    report = RekeyReport(new.key_id)

    def one(oid: str) -> tuple[str, str, str | None]:
        try:
            stored = enc.inner.get(oid)
        except NotFound:  # collected meanwhile
            return oid, "gone", None
        if not is_encrypted(stored):
            return oid, "unencrypted", None
        try:
            header = parse_header(oid, stored)
            if header.key_id == new.key_id:
                return oid, "already", None
            dek = unwrap_dek(oid, header, enc.keyring, enc._known)
        except CorruptObject:
            return oid, "corrupt", None
        except EncryptionError:
            return oid, "need_key", header.key_id
        _put_back(enc, oid)(oid, rewrap(oid, stored, header, dek, new))
        return oid, "rewritten", None

    seen = _run(enc, one, report, "re-wrapping data keys", workers, progress)
    # A writer that sealed with the old key just before it saw the new marker may have
    # landed its object after the listing: one more look.
    late = [oid for oid in enc.inner.iter_oids() if oid not in seen]
    if late:
        _run(enc, one, report, "re-wrapping data keys", workers, progress, late)
    if report.complete:
        previous = marker.get("previous_key_ids", [])
        enc.marker = {**marker, "previous_key_ids": [],
                      "retired_key_ids": _dedupe([*marker.get("retired_key_ids", ()),
                                                  *previous])}
        enc.marker_file.write(enc.marker)
    return report


def encrypt_existing(objects: Any, *, workers: int = 8,
                     progress: bool | None = False) -> RekeyReport:
    """Seal the objects stored before the store got its key, after checking each one."""
    enc = _target(objects)
    marker = enc.marker_file.read()
    if marker is None:
        marker = new_marker(enc.keyring.primary.key_id, True)
        enc.marker_file.write(marker)
    enc.marker = marker
    provider = enc.writer()
    report = RekeyReport(provider.key_id)

    def one(oid: str) -> tuple[str, str, str | None]:
        try:
            stored = enc.inner.get(oid)
        except NotFound:
            return oid, "gone", None
        if is_encrypted(stored):
            return oid, "already", None
        try:
            content = codec.decode(oid, stored)
        except CorruptObject:
            return oid, "corrupt", None
        if hashlib.sha256(content).hexdigest() != oid:
            return oid, "corrupt", None
        sealed = seal(oid, stored, provider)
        open_sealed(oid, bytes(sealed), enc.keyring, enc._known)  # never replace with worse
        _put_back(enc, oid)(oid, sealed)
        return oid, "rewritten", None

    seen = _run(enc, one, report, "encrypting objects", workers, progress)
    # A process without the key that put an object just before the marker appeared (its
    # check came first) may have landed it after the listing: one more look.
    late = [oid for oid in enc.inner.iter_oids() if oid not in seen]
    if late:
        _run(enc, one, report, "encrypting objects", workers, progress, late)
    if report.complete and marker.get("plaintext_objects", False):
        enc.marker = {**marker, "plaintext_objects": False}
        enc.marker_file.write(enc.marker)
    return report


def _put_back(enc: EncryptedBackend, oid: str) -> Any:
    """Where a rewritten object goes: back to the cold tier if that is where it was, so a
    rotation does not warm up the whole store."""
    try:
        from .tiering import find_tiered
    except ImportError:  # pragma: no cover - a build without tiering
        return enc.inner.put
    tb = find_tiered(enc.inner)
    if tb is not None and not tb.hot.exists(oid) and tb.in_cold(oid):
        return tb.cold().put
    return enc.inner.put


def _not_a_read() -> Any:
    """Rotation reads every object: that must not count as use for tiering."""
    import contextlib

    try:
        from .tiering import untracked
    except ImportError:  # pragma: no cover
        return contextlib.nullcontext()
    return untracked()


def _run(enc: EncryptedBackend, one: Any, report: RekeyReport, label: str, workers: int,
         progress: bool | None, oids: list[str] | None = None) -> set[str]:
    from ..progress import bar

    if oids is None:
        oids = list(enc.inner.iter_oids())
    report.total += len(oids)
    with _not_a_read(), bar(label, len(oids), enabled=progress, unit="objects") as advance:
        for oid, outcome, key_id in ordered_map(one, oids, workers=workers):
            advance(1)
            if outcome == "rewritten":
                report.rewritten += 1
            elif outcome == "already":
                report.already += 1
            elif outcome == "unencrypted":
                report.unencrypted += 1
            elif outcome == "corrupt":
                report.corrupt.append(oid)
            elif outcome == "need_key":
                report.need_key.setdefault(key_id or "?", []).append(oid)
    return set(oids)


def _dedupe(ids: Any) -> list[str]:
    return list(dict.fromkeys(ids))
