"""Encryption at rest: a Backend wrapper that seals every stored object with AES-256-GCM.

Envelope encryption: each object gets a random 256-bit data key (DEK); the DEK is wrapped
by the master key (a :class:`~cairn.cas.keyprovider.KeyProvider`) and the wrapped DEK
travels in the object's own header, so a put stays one write and rotating the master key
rewrites headers only, never re-encrypts content.  The object id stays the SHA-256 of the
plaintext and is the GCM associated data: an object's ciphertext moved under another id
fails authentication.

Stored bytes of an encrypted object (what the inner backend holds)::

    b"CAE" 0x01                       magic and format version
    u8 k, key id (k bytes, UTF-8)     the master key that wrapped the DEK
    u16 w (big endian), wrapped DEK   provider-specific (MasterKey: nonce + GCM(dek))
    12-byte nonce
    GCM(codec bytes) || 16-byte tag   the plaintext is the codec's output (``r``/``z`` + ...)

A store knows it is encrypted from ``encryption.json`` next to its objects (an object
``<prefix>/encryption.json`` on S3), written by the first put made with a key.  Opening an
encrypted store without a key, or with a key that is not the store's, raises
:class:`~cairn.errors.EncryptionError` before anything is read or written.

``cryptography`` is imported when a key is first used, never by ``import cairn``.
"""

from __future__ import annotations

import json
import os
import secrets
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from ..errors import CorruptObject, EncryptionError, NotFound
from .backends.base import Backend
from .keyprovider import KeyProvider, Keyring, aesgcm

MAGIC = b"CAE\x01"
FORMAT = "cairn.encryption/1"
ALGORITHM = "AES-256-GCM"
MARKER_NAME = "encryption.json"
NONCE = 12
TAG = 16
_AAD = b"cairn.object/1\0"
_KEY_HELP = ("set CAIRN_MASTER_KEY (base64) or CAIRN_MASTER_KEY_FILE (a file holding it) to "
             "the store's master key")


# -- the object format ---------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Header:
    key_id: str
    wrapped: bytes
    nonce: bytes
    body: int  # offset of the ciphertext in the stored bytes


def is_encrypted(stored: bytes | bytearray | memoryview) -> bool:
    return bytes(stored[:len(MAGIC)]) == MAGIC


def _header_bytes(key_id: str, wrapped: bytes, nonce: bytes) -> bytes:
    kid = key_id.encode("utf-8")
    if not 0 < len(kid) < 256 or len(wrapped) >= 65536:
        raise EncryptionError(f"key id {key_id!r} or its wrapped key is too long for the format")
    return b"".join((MAGIC, bytes((len(kid),)), kid, struct.pack(">H", len(wrapped)), wrapped,
                     nonce))


def parse_header(oid: str, stored: bytes | bytearray | memoryview) -> Header:
    view = memoryview(stored)
    try:
        if bytes(view[:4]) != MAGIC:
            raise ValueError
        k = view[4]
        key_id = bytes(view[5:5 + k]).decode("utf-8")
        at = 5 + k
        (w,) = struct.unpack(">H", view[at:at + 2])
        wrapped = bytes(view[at + 2:at + 2 + w])
        at += 2 + w
        nonce = bytes(view[at:at + NONCE])
        body = at + NONCE
        if k == 0 or len(wrapped) != w or len(nonce) != NONCE or len(view) < body + TAG:
            raise ValueError
    except (ValueError, IndexError, struct.error, UnicodeDecodeError):
        raise CorruptObject(f"object {oid} is corrupt: its encryption header is damaged "
                            "(truncated or altered)", oid=oid) from None
    return Header(key_id, wrapped, nonce, body)


def seal(oid: str, data: bytes | bytearray | memoryview, provider: KeyProvider) -> bytearray:
    """The stored bytes of ``data`` under a fresh data key wrapped by ``provider``.

    One buffer, one GCM call: the ciphertext is written straight after the header."""
    dek = secrets.token_bytes(32)
    nonce = secrets.token_bytes(NONCE)
    header = _header_bytes(provider.key_id, provider.wrap(dek), nonce)
    out = bytearray(len(header) + len(data) + TAG)
    out[:len(header)] = header
    aesgcm(dek).encrypt_into(nonce, data, _AAD + oid.encode("ascii"),
                             memoryview(out)[len(header):])
    return out


def rewrap(oid: str, stored: bytes, header: Header, dek: bytes, provider: KeyProvider) -> bytes:
    """``stored`` with its data key wrapped by ``provider``; the ciphertext is kept as is."""
    return b"".join((_header_bytes(provider.key_id, provider.wrap(dek), header.nonce),
                     memoryview(stored)[header.body:]))


def unwrap_dek(oid: str, header: Header, keyring: Keyring | None,
               known: Callable[[str], bool]) -> bytes:
    provider = keyring.get(header.key_id) if keyring is not None else None
    if provider is None:
        if known(header.key_id):
            raise EncryptionError(
                f"object {oid} is encrypted with master key {header.key_id}, which was not "
                "given: set CAIRN_MASTER_KEY_OLD to that key (a rotation has not re-wrapped "
                "this object yet; `cairn encryption rotate` finishes it)",
                oid=oid, key_id=header.key_id)
        raise CorruptObject(f"object {oid} is corrupt: its header names master key "
                            f"{header.key_id!r}, which this store never used (altered, or "
                            "copied from another store)", oid=oid)
    try:
        dek = provider.unwrap(header.wrapped)
    except ValueError:
        raise CorruptObject(f"object {oid} failed authentication: its data key does not verify "
                            f"under master key {header.key_id} (altered or damaged)",
                            oid=oid) from None
    if len(dek) != 32:
        raise CorruptObject(f"object {oid} is corrupt: its data key has {len(dek)} bytes",
                            oid=oid)
    return dek


def open_sealed(oid: str, stored: bytes, keyring: Keyring | None,
                known: Callable[[str], bool]) -> bytes:
    """The codec bytes inside ``stored``; :class:`CorruptObject` if anything was altered."""
    from cryptography.exceptions import InvalidTag

    header = parse_header(oid, stored)
    dek = unwrap_dek(oid, header, keyring, known)
    try:
        return aesgcm(dek).decrypt(header.nonce, memoryview(stored)[header.body:],
                                   _AAD + oid.encode("ascii"))
    except InvalidTag:
        raise CorruptObject(f"object {oid} failed authentication (AES-256-GCM): its content or "
                            "header was altered or damaged, or it is another object's",
                            oid=oid) from None


# -- the marker ----------------------------------------------------------------------

class MarkerFile:
    """Reads and writes ``encryption.json`` where the backend keeps its objects."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def read(self) -> dict[str, Any] | None:
        raw = self._read()
        if raw is None:
            return None
        try:
            doc = json.loads(raw)
            if not isinstance(doc, dict) or doc.get("format") != FORMAT \
                    or not isinstance(doc.get("key_id"), str):
                raise ValueError
        except ValueError:
            raise EncryptionError(f"the encryption marker {MARKER_NAME} of {self.backend!r} is "
                                  f"damaged or of an unknown format (expected {FORMAT})") \
                from None
        return doc

    def write(self, doc: dict[str, Any]) -> None:
        self._write(json.dumps(doc, indent=1, sort_keys=True).encode() + b"\n")

    def _read(self) -> bytes | None:
        from .backends.local import LocalBackend
        from .backends.memory import MemoryBackend

        b: Any = self.backend
        if isinstance(b, LocalBackend):
            try:
                return (b.root / MARKER_NAME).read_bytes()
            except (FileNotFoundError, NotADirectoryError):
                return None
        if isinstance(b, MemoryBackend):
            return getattr(b, "_cairn_marker", None)
        if _is_s3(b):
            try:
                resp = b._call(b.client.get_object, None, Key=_s3_key(b))
            except NotFound:
                return None
            return resp["Body"].read()
        return None

    def _write(self, data: bytes) -> None:
        from .backends.local import LocalBackend
        from .backends.memory import MemoryBackend

        b: Any = self.backend
        if isinstance(b, LocalBackend):
            b.root.mkdir(parents=True, exist_ok=True)
            tmp = b.root / f".tmp-{MARKER_NAME}-{secrets.token_hex(6)}"
            try:
                tmp.write_bytes(data)
                os.replace(tmp, b.root / MARKER_NAME)
            finally:
                tmp.unlink(missing_ok=True)
        elif isinstance(b, MemoryBackend):
            b._cairn_marker = data  # type: ignore[attr-defined]
        elif _is_s3(b):
            b._call(b.client.put_object, None, Key=_s3_key(b), Body=data)
        else:
            raise EncryptionError(f"{b!r} cannot record that it is encrypted (no "
                                  f"{MARKER_NAME}); encryption works on local, in-memory and "
                                  "S3 object stores")


def _is_s3(b: Backend) -> bool:
    return type(b).__name__ == "S3Backend" and hasattr(b, "client")


def _s3_key(b: Any) -> str:
    return f"{b.prefix}/{MARKER_NAME}" if b.prefix else MARKER_NAME


def new_marker(key_id: str, plaintext_objects: bool) -> dict[str, Any]:
    return {"format": FORMAT, "algorithm": ALGORITHM, "key_id": key_id,
            "previous_key_ids": [], "retired_key_ids": [],
            "plaintext_objects": plaintext_objects,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def known_ids(marker: dict[str, Any] | None) -> set[str]:
    if marker is None:
        return set()
    return {marker["key_id"], *marker.get("previous_key_ids", ()),
            *marker.get("retired_key_ids", ())}


# -- the layer -----------------------------------------------------------------------

# Optional methods other layers add (listing with times, batch delete) pass through; any
# that moves content in or out must not bypass encryption, so those are not forwarded.
_NOT_FORWARDED = ("put", "get", "read", "write", "open", "copy", "path")


class EncryptedBackend:
    """``inner`` with every object sealed on put and authenticated on get."""

    def __init__(self, inner: Backend, marker_file: MarkerFile, marker: dict[str, Any] | None,
                 keyring: Keyring) -> None:
        self.inner = inner
        self.marker_file = marker_file
        self.marker = marker
        self.keyring = keyring
        self._lock = threading.Lock()
        self._every = _PlaintextGuard.S3_EVERY_S if _is_s3(marker_file.backend) else 0.0
        self._looked = time.monotonic()

    def __repr__(self) -> str:
        return f"EncryptedBackend({self.inner!r})"

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or any(w in name for w in _NOT_FORWARDED):
            raise AttributeError(name)
        return getattr(self.inner, name)

    def writer(self) -> KeyProvider:
        """The key new objects are sealed with: the store's current one."""
        marker = self.marker
        if marker is None:
            with self._lock:
                if self.marker is None:
                    # A store that already holds objects, unsealed, keeps them readable.
                    found = self.marker_file.read()
                    if found is None:
                        found = new_marker(self.keyring.primary.key_id,
                                           next(iter(self.inner.iter_oids()), None) is not None)
                        self.marker_file.write(found)
                    self.marker = check_key(found, self.keyring, self.marker_file.backend)
                marker = self.marker
        assert marker is not None
        provider = self.keyring.get(marker["key_id"])
        assert provider is not None  # check_key made sure
        return provider

    def put(self, oid: str, data: bytes) -> None:
        self._follow_rotation()
        self.inner.put(oid, seal(oid, data, self.writer()))  # type: ignore[arg-type]

    def _follow_rotation(self) -> None:
        """Take up a marker another process changed (a rotation) before sealing: an object
        sealed with the key being retired would be left behind by that rotation, readable
        only with a key its owner may destroy.  Without the new key this refuses."""
        now = time.monotonic()
        if self.marker is None or now - self._looked < self._every:
            return
        found = self.marker_file.read()
        self._looked = now
        if found is not None and found != self.marker:
            with self._lock:
                self.marker = check_key(found, self.keyring, self.marker_file.backend)

    def get(self, oid: str) -> bytes:
        stored = self.inner.get(oid)
        if is_encrypted(stored):
            return open_sealed(oid, stored, self.keyring, self._known)
        if self.marker is None or self.marker.get("plaintext_objects", False):
            return stored
        raise CorruptObject(f"object {oid} is corrupt: it is stored unencrypted in an encrypted "
                            f"store ({MARKER_NAME} says every object is sealed); it was replaced "
                            "or written without the key", oid=oid)

    def _known(self, key_id: str) -> bool:
        return key_id in known_ids(self.marker)

    def exists(self, oid: str) -> bool:
        return self.inner.exists(oid)

    def iter_oids(self) -> Iterator[str]:
        return self.inner.iter_oids()

    def delete(self, oid: str) -> None:
        self.inner.delete(oid)

    def size(self, oid: str) -> int:
        return self.inner.size(oid)


class _PlaintextGuard:
    """The put and get of an unencrypted store opened without a key.  Another process may
    give the store a key meanwhile (and ``cairn encryption encrypt-existing`` then says every
    object is sealed): from then on a plaintext object written here would read as corrupt,
    so a put first looks for the marker and refuses with a clear error once it is there."""

    # Looking costs a stat on a disk but a request on S3: there, once in a while.
    S3_EVERY_S = 5.0

    def __init__(self, inner: Backend, marker_file: MarkerFile) -> None:
        self._put, self._get = inner.put, inner.get
        self.marker_file = marker_file
        self._every = self.S3_EVERY_S if _is_s3(marker_file.backend) else 0.0
        self._looked = float("-inf")

    def _refuse(self) -> EncryptionError:
        return EncryptionError(f"the object store {self.marker_file.backend!r} was encrypted "
                               f"after this process opened it without a key: {_KEY_HELP}, "
                               "and start it again")

    def put(self, oid: str, data: bytes) -> None:
        now = time.monotonic()
        if now - self._looked >= self._every:
            if self.marker_file._read() is not None:
                raise self._refuse()
            self._looked = now
        self._put(oid, data)

    def get(self, oid: str) -> bytes:
        stored = self._get(oid)
        if is_encrypted(stored):
            raise self._refuse()
        return stored


def check_key(marker: dict[str, Any], keyring: Keyring, where: Backend) -> dict[str, Any]:
    """``marker`` if ``keyring`` holds the store's current key; else a clear error."""
    if keyring.get(marker["key_id"]) is not None:
        return marker
    previous = marker.get("previous_key_ids") or []
    if any(keyring.get(k) is not None for k in previous):
        raise EncryptionError(
            f"the master key of the object store {where!r} is being rotated to "
            f"{marker['key_id']}: give that key in CAIRN_MASTER_KEY (or CAIRN_MASTER_KEY_FILE) "
            "and the old one in CAIRN_MASTER_KEY_OLD until `cairn encryption rotate` finishes",
            key_id=marker["key_id"])
    raise EncryptionError(
        f"wrong master key for the object store {where!r}: it is encrypted with master key "
        f"{marker['key_id']}, the key given is {', '.join(keyring.key_ids)}; {_KEY_HELP}",
        key_id=marker["key_id"])


def encryption_layer(raw: Backend, inner: Backend) -> Backend:
    """``inner`` sealed when the store is encrypted or a key is configured; ``raw`` is where
    the marker lives (the hot store, beneath any tiering)."""
    from .keyprovider import from_settings

    marker_file = MarkerFile(raw)
    marker = marker_file.read()
    keyring = from_settings()
    if marker is None and keyring is None:
        if inner is not raw and hasattr(inner, "__dict__"):
            # On the instance, not as one more wrapper: the layer beneath (tiering) stays the
            # backend callers find.  ``inner`` is this store's own (tiering made it just now).
            guard = _PlaintextGuard(inner, marker_file)
            inner.put, inner.get = guard.put, guard.get  # type: ignore[method-assign]
        return inner
    if keyring is None:
        assert marker is not None
        raise EncryptionError(f"the object store {raw!r} is encrypted (master key "
                              f"{marker['key_id']}) and no key was given: {_KEY_HELP}",
                              key_id=marker["key_id"])
    if marker is not None:
        check_key(marker, keyring, raw)
    return EncryptedBackend(inner, marker_file, marker, keyring)
