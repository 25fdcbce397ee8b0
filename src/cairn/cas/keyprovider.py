"""Master keys for encryption at rest, behind a three-member interface a KMS can implement.

A :class:`KeyProvider` wraps and unwraps the per-object data keys; it never sees object
content.  The built-in :class:`MasterKey` holds a 256-bit key read from
``CAIRN_MASTER_KEY`` (base64) or from the file named by ``CAIRN_MASTER_KEY_FILE``, plus
``CAIRN_MASTER_KEY_OLD`` while a rotation is under way.  ``CAIRN_KEY_PROVIDER=module:factory``
plugs in any other provider (a cloud KMS): ``factory()`` returns one provider, or a sequence
whose first member is the one new objects are written with.

The key itself must never reach a log, a ``repr``, a traceback or an error message: errors
name the setting, never its value.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import contextvars
import hashlib
import hmac
import os
import re
import secrets
import stat
from typing import Any, Iterator, Protocol, Sequence, runtime_checkable

from ..errors import EncryptionError, MissingDependency

KEY_BYTES = 32
_B64 = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")
# The wrap is AES-GCM under the master key, bound to its key id so a wrapped key cannot be
# presented as another key's.
_WRAP_NONCE = 12
_WRAP_AAD = b"cairn.dek/1\0"
# The settings (declared in cairn.settings for the docs; the storage layer reads no settings
# module, and parses these itself so that no error can echo a key).
MASTER_KEY = "CAIRN_MASTER_KEY"
MASTER_KEY_FILE = "CAIRN_MASTER_KEY_FILE"
MASTER_KEY_OLD = "CAIRN_MASTER_KEY_OLD"
KEY_PROVIDER = "CAIRN_KEY_PROVIDER"


@runtime_checkable
class KeyProvider(Protocol):
    """What the encryption layer needs from a master key (or a KMS key).

    ``unwrap`` raises :class:`ValueError` when ``blob`` was not made by ``wrap`` with this
    key (altered, or another key's); any other exception (a KMS outage) passes through.
    """

    key_id: str

    def wrap(self, dek: bytes) -> bytes:
        """``dek`` (32 bytes) encrypted and authenticated under the master key."""

    def unwrap(self, blob: bytes) -> bytes:
        """The data key in ``blob``; :class:`ValueError` if it does not authenticate."""


def aesgcm(key: bytes) -> Any:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:  # pragma: no cover - depends on the environment
        raise MissingDependency("encryption at rest needs the cryptography package: "
                                "pip install 'cairn[encryption]'") from None
    return AESGCM(key)


class MasterKey:
    """A 256-bit master key held in memory; its ``key_id`` is derived from it, one-way."""

    __slots__ = ("_aead", "_key", "key_id", "source")

    def __init__(self, key: bytes, source: str = "a master key") -> None:
        if not isinstance(key, bytes) or len(key) != KEY_BYTES:
            raise EncryptionError(f"{source} must be {KEY_BYTES} bytes (256 bits)",
                                  setting=source)
        self._key = key
        self._aead: Any = None  # made on first use: cryptography is imported lazily
        # A keyed hash of a constant: tells keys apart, reveals nothing of the key.
        self.key_id = "mk-" + hmac.new(key, b"cairn master key id", hashlib.sha256).hexdigest()[:16]
        self.source = source

    def __repr__(self) -> str:
        return f"MasterKey(key_id={self.key_id!r})"

    __str__ = __repr__

    def __reduce__(self) -> Any:  # no pickling a key into a cache or a log by accident
        raise TypeError("a MasterKey cannot be pickled")

    def _cipher(self) -> Any:
        if self._aead is None:
            self._aead = aesgcm(self._key)  # stateless, so one serves every thread
        return self._aead

    def wrap(self, dek: bytes) -> bytes:
        nonce = secrets.token_bytes(_WRAP_NONCE)
        return nonce + self._cipher().encrypt(nonce, dek, _WRAP_AAD + self.key_id.encode())

    def unwrap(self, blob: bytes) -> bytes:
        from cryptography.exceptions import InvalidTag

        if len(blob) < _WRAP_NONCE + 16:
            raise ValueError("wrapped key too short")
        try:
            return self._cipher().decrypt(blob[:_WRAP_NONCE], blob[_WRAP_NONCE:],
                                             _WRAP_AAD + self.key_id.encode())
        except InvalidTag:
            raise ValueError("wrapped key does not authenticate under this master key") from None


def new_key() -> str:
    """A fresh random master key, base64 (44 characters)."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def parse_key(text: str, source: str) -> MasterKey:
    """The key in ``text`` (base64 of 32 bytes); errors name ``source``, never the value."""
    how = ("; make one with `cairn encryption new-key FILE` and give its path in "
           "CAIRN_MASTER_KEY_FILE")
    if not isinstance(text, str):
        raise EncryptionError(f"{source} must be text (base64)", setting=source)
    stripped = text.strip()
    if not stripped.isascii() or _B64.fullmatch(stripped) is None:
        raise EncryptionError(f"{source} is not base64: a master key is 44 base64 characters "
                              f"(256 bits){how}", setting=source)
    try:
        raw = base64.b64decode(stripped.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise EncryptionError(f"{source} is not valid base64 (bad padding or length){how}",
                              setting=source) from None
    if len(raw) != KEY_BYTES:
        raise EncryptionError(f"{source} decodes to {len(raw)} bytes; a master key is "
                              f"{KEY_BYTES} bytes (256 bits){how}", setting=source)
    return MasterKey(raw, source)


def read_key_file(path: str, source: str = "CAIRN_MASTER_KEY_FILE") -> MasterKey:
    """The key in the file at ``path``, which only its owner may read."""
    where = f"{source}={path}"
    try:
        # Non-blocking: opening a FIFO (or a device) to read would otherwise wait for a
        # writer for ever; it is refused below as no regular file.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise EncryptionError(f"the master key file named by {where} does not exist",
                              setting=source, path=path) from None
    except OSError as exc:
        raise EncryptionError(f"cannot read the master key file named by {where}: "
                              f"{exc.strerror}", setting=source, path=path) from None
    except ValueError:  # a NUL or a lone surrogate in the path
        raise EncryptionError(f"{source} is not a usable file name: {ascii(path)}",
                              setting=source) from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise EncryptionError(f"{where} is not a regular file", setting=source, path=path)
        if os.name == "posix" and st.st_mode & 0o077:
            raise EncryptionError(
                f"the master key file {path} ({source}) can be read by other users (mode "
                f"{stat.S_IMODE(st.st_mode):o}); make it private with `chmod 600 {path}`",
                setting=source, path=path)
        raw = f.read(4096)
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise EncryptionError(f"the master key file {path} ({source}) is not base64 text",
                              setting=source, path=path) from None
    return parse_key(text, f"the master key file {path} ({source})")


class Keyring:
    """The providers a process holds: ``primary`` first, then older keys to read with."""

    def __init__(self, providers: Sequence[KeyProvider]) -> None:
        if not providers:
            raise EncryptionError("a keyring needs at least one key provider")
        for p in providers:
            if not isinstance(getattr(p, "key_id", None), str) or not p.key_id:
                raise EncryptionError(f"key provider {type(p).__name__} has no key_id")
        self.providers = tuple(providers)

    @property
    def primary(self) -> KeyProvider:
        return self.providers[0]

    def get(self, key_id: str) -> KeyProvider | None:
        for p in self.providers:
            if p.key_id == key_id:
                return p
        return None

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(p.key_id for p in self.providers)

    def with_first(self, provider: KeyProvider) -> "Keyring":
        return Keyring([provider, *(p for p in self.providers if p.key_id != provider.key_id)])

    def __repr__(self) -> str:
        return f"Keyring({list(self.key_ids)!r})"


_override: contextvars.ContextVar[Keyring | None] = contextvars.ContextVar(
    "cairn_keyring_override", default=None)


@contextlib.contextmanager
def using(keyring: Keyring) -> Iterator[Keyring]:
    """Open stores with ``keyring`` instead of the settings (key rotation does)."""
    token = _override.set(keyring)
    try:
        yield keyring
    finally:
        _override.reset(token)


def from_settings() -> Keyring | None:
    """The keyring the settings describe, or None when no key is configured."""
    override = _override.get()
    if override is not None:
        return override
    spec = os.environ.get(KEY_PROVIDER, "")
    text = os.environ.get(MASTER_KEY, "")
    path = os.environ.get(MASTER_KEY_FILE, "")
    old = os.environ.get(MASTER_KEY_OLD, "")
    if spec:
        if text or path:
            raise EncryptionError(f"set {KEY_PROVIDER} or {MASTER_KEY}/"
                                  f"{MASTER_KEY_FILE}, not both", setting=KEY_PROVIDER)
        providers = _from_factory(spec)
    elif text and path:
        raise EncryptionError(f"both {MASTER_KEY} and {MASTER_KEY_FILE} are set: "
                              "set one of them", setting=MASTER_KEY)
    elif text:
        providers = [parse_key(text, MASTER_KEY)]
    elif path:
        providers = [read_key_file(path, MASTER_KEY_FILE)]
    elif old:
        raise EncryptionError(f"{MASTER_KEY_OLD} is set without {MASTER_KEY} or "
                              f"{MASTER_KEY_FILE}: give the current key too",
                              setting=MASTER_KEY_OLD)
    else:
        return None
    if old:
        providers.append(parse_key(old, MASTER_KEY_OLD))
    return Keyring(providers)


def _from_factory(spec: str) -> list[KeyProvider]:
    import importlib

    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise EncryptionError(f"{KEY_PROVIDER} must be module:factory, got {spec!r}",
                              setting=KEY_PROVIDER)
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise EncryptionError(f"{KEY_PROVIDER}={spec}: cannot load the key provider "
                              f"factory ({type(exc).__name__}: {exc})",
                              setting=KEY_PROVIDER) from None
    made = factory()
    providers = list(made) if isinstance(made, (list, tuple)) else [made]
    for p in providers:
        if not isinstance(p, KeyProvider):
            raise EncryptionError(f"{KEY_PROVIDER}={spec} returned {type(p).__name__}, "
                                  "not a key provider (key_id, wrap, unwrap)",
                                  setting=KEY_PROVIDER)
    return providers
