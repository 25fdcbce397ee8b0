"""Ed25519 signing of model versions (needs the ``cryptography`` package: ``cairn[signing]``).

Private keys stay on the machine of whoever signs, in the keys directory
(``$CAIRN_KEYS_DIR``, default ``~/.config/cairn/keys``): ``NAME.key`` (PKCS#8 PEM,
mode 0600) and ``NAME.pub``.  Public keys are registered in the store as trusted
(``cairn keys create`` does both; ``cairn keys trust FILE`` adds someone else's).
A new version is signed with the key ``default`` when it exists.

What is signed is the canonical JSON of ``{name, version, tree, source_run,
created_at, digest}``, where ``digest`` covers every immutable field of the
version's record: so the signature binds the files and the whole description.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ..errors import AlreadyExists, InvalidArgument, InvalidSignature, MissingDependency, NotFound
from ..settings import Setting

KEYS_DIR = Setting("CAIRN_KEYS_DIR", str, "",
                   "Directory of Ed25519 signing keys; empty means ~/.config/cairn/keys.")
DEFAULT_KEY = "default"


def keys_dir() -> Path:
    configured = KEYS_DIR.get()
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "cairn" / "keys"


def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise MissingDependency("signing needs the cryptography package: "
                                "pip install 'cairn[signing]'", package="cryptography") from None
    return ed25519


def _serialization() -> Any:
    _crypto()
    from cryptography.hazmat.primitives import serialization

    return serialization


def key_id(public_pem: str | bytes) -> str:
    """16 hex digits of the SHA-256 of the raw public key."""
    ser = _serialization()
    pem = public_pem.encode() if isinstance(public_pem, str) else public_pem
    try:
        pub = ser.load_pem_public_key(pem)
        raw = pub.public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)
    except (ValueError, TypeError) as exc:
        raise InvalidArgument(f"not an Ed25519 public key in PEM format: {exc}") from None
    if len(raw) != 32:
        raise InvalidArgument("not an Ed25519 public key")
    return hashlib.sha256(raw).hexdigest()[:16]


def check_key_name(name: str) -> str:
    if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_." for c in name) \
            or name.startswith("."):
        raise InvalidArgument(f"key name {name!r} must be letters, digits, '-', '_' or '.'")
    return name


def create_key_files(name: str = DEFAULT_KEY, directory: Path | None = None,
                     overwrite: bool = False) -> tuple[Path, str]:
    """Write a new key pair; returns (private key path, public key PEM)."""
    ed = _crypto()
    ser = _serialization()
    directory = directory or keys_dir()
    check_key_name(name)
    priv_path, pub_path = directory / f"{name}.key", directory / f"{name}.pub"
    if priv_path.exists() and not overwrite:
        raise AlreadyExists(f"a key named {name!r} already exists at {priv_path}; pick another "
                            "--name or delete it first")
    key = ed.Ed25519PrivateKey.generate()
    priv = key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption())
    pub = key.public_key().public_bytes(ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = priv_path.with_name(f".{priv_path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(priv)
    os.replace(tmp, priv_path)
    pub_path.write_bytes(pub)
    return priv_path, pub.decode()


def signing_key_path(explicit: str | os.PathLike | None = None) -> Path | None:
    """The private key new versions are signed with: ``explicit``, else ``default.key`` if present."""
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            path = keys_dir() / f"{explicit}.key"
        if not path.is_file():
            raise NotFound(f"signing key {str(explicit)!r} not found (a path, or a name in "
                           f"{keys_dir()}); create one with `cairn keys create`")
        return path
    path = keys_dir() / f"{DEFAULT_KEY}.key"
    return path if path.is_file() else None


def load_private(path: Path) -> tuple[Any, str]:
    """(private key, key id) from a PEM file."""
    ser = _serialization()
    try:
        key = ser.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise InvalidArgument(f"{path} is not an unencrypted Ed25519 private key: {exc}") from None
    pub = key.public_key().public_bytes(ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo)
    return key, key_id(pub)


def public_pem_of(path: Path) -> str:
    ser = _serialization()
    key, _ = load_private(path)
    return key.public_key().public_bytes(ser.Encoding.PEM,
                                         ser.PublicFormat.SubjectPublicKeyInfo).decode()


def payload(name: str, version: str, tree_oid: str, source_run: str | None, created_at: int,
            digest: str) -> bytes:
    doc = {"name": name, "version": version, "tree": tree_oid, "source_run": source_run,
           "created_at": created_at, "digest": digest}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign(private_key: Any, message: bytes) -> bytes:
    return private_key.sign(message)


def verify(public_pem: str, signature: bytes, message: bytes, what: str) -> None:
    ser = _serialization()
    from cryptography.exceptions import InvalidSignature as _Bad

    pub = ser.load_pem_public_key(public_pem.encode())
    try:
        pub.verify(signature, message)
    except _Bad:
        raise InvalidSignature(f"the signature of {what} does not verify: its record or "
                               "signature was altered after signing; do not use it") from None


def trusted_from(items: Any) -> dict[str, str]:
    """key id -> PEM from paths or PEM strings/bytes given by a caller (``trusted_keys=``)."""
    out: dict[str, str] = {}
    for item in items or ():
        if isinstance(item, bytes):
            pem = item.decode()
        elif isinstance(item, str) and item.lstrip().startswith("-----BEGIN"):
            pem = item
        else:
            path = Path(item)
            if not path.is_file():
                raise NotFound(f"trusted key file {str(path)!r} does not exist")
            pem = path.read_text()
        out[key_id(pem)] = pem
    return out
