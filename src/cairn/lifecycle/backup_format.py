"""What a backup directory holds, and the file trees a backup reads and a restore writes.

A backup is a plain directory (docs/lifecycle.md, "Backup and restore")::

    DEST/
      manifest.json          format version, source, schema revision, counts, checksums
      index.db               the index (SQLite, Cairn's schema): a consistent snapshot
      objects.txt            one line per object: "<oid> <stored size> <sha256 of stored bytes>"
      objects/ab/cdef...     the objects, byte for byte as stored (ciphertext stays ciphertext)
      objects/<other>        the object store's own files (pack index, marker files)
      runs/, experiments/, quarantine/   a local store's journals and files, as they were

``manifest.json`` is written last and removed first, so a directory without one is not
a backup (an interrupted one) and a restore refuses it.  Objects are checked against
``objects.txt`` by the SHA-256 of their *stored* bytes, which needs no key for an
encrypted store.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..cas.backends.base import is_oid
from ..errors import CorruptObject, InvalidArgument, NotFound

FORMAT = "cairn-backup"
VERSION = 1
MANIFEST = "manifest.json"
INDEX = "index.db"
OBJECT_LIST = "objects.txt"
OBJECTS = "objects"
# A local store's directories besides its index and objects, in the order a backup copies
# them: journals before experiment files (a run names its experiment), both before objects.
STORE_DIRS = ("runs", "experiments", "quarantine")
_SKIP_SUFFIXES = ("-wal", "-shm", "-journal")
_TMP = ".tmp-"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class Entry:
    """One file of an object store's tree: an object (``oid`` set) or another file."""

    rel: str
    size: int
    # When the store last wrote it: an object rewritten in place keeps its id and often its
    # size (a key rotation re-wraps its header), so a later backup needs this to see it.
    mtime_ns: int = 0

    @property
    def oid(self) -> str | None:
        name = self.rel.replace("/", "", 1)
        return name if len(self.rel) == 65 and self.rel[2] == "/" and is_oid(name) else None


class LocalTree:
    """An object store's directory, every file in it (not only objects)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __repr__(self) -> str:
        return str(self.root)

    def entries(self) -> Iterator[Entry]:
        if not self.root.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames.sort()
            for name in sorted(filenames):
                if name.startswith(_TMP) or name.endswith(_SKIP_SUFFIXES):
                    continue  # a write in progress, or SQLite's own side files
                path = Path(dirpath) / name
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue  # removed meanwhile (GC)
                yield Entry(path.relative_to(self.root).as_posix(), st.st_size, st.st_mtime_ns)

    def read(self, rel: str) -> bytes:
        try:
            return (self.root / rel).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"{self.root / rel} is gone") from None

    def write(self, rel: str, data: bytes) -> None:
        dest = self.root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f"{_TMP}{secrets.token_hex(6)}"
        with open(tmp, "wb") as f:
            f.write(data)
        if Entry(rel, 0).oid is not None:
            os.chmod(tmp, 0o444)  # as the store writes its objects
        os.replace(tmp, dest)

    def is_empty(self) -> bool:
        return next(self.entries(), None) is None


class S3Tree:
    """Every key under an S3 prefix (objects and any marker files)."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.start = f"{backend.prefix}/" if backend.prefix else ""

    def __repr__(self) -> str:
        return f"s3://{self.backend.bucket}/{self.backend.prefix}"

    def entries(self) -> Iterator[Entry]:
        b = self.backend
        token = None
        while True:
            kw: dict[str, Any] = {"Prefix": self.start, "MaxKeys": 1000}
            if token:
                kw["ContinuationToken"] = token
            page = b._call(b.client.list_objects_v2, **kw)
            for item in page.get("Contents", ()):
                modified = item.get("LastModified")
                yield Entry(item["Key"][len(self.start):], int(item["Size"]),
                            int(modified.timestamp() * 1e9) if modified is not None else 0)
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")

    def read(self, rel: str) -> bytes:
        b = self.backend
        return b._call(b.client.get_object, rel, Key=self.start + rel)["Body"].read()

    def write(self, rel: str, data: bytes) -> None:
        b = self.backend
        b._call(b.client.put_object, rel, Key=self.start + rel, Body=data)

    def is_empty(self) -> bool:
        return next(self.entries(), None) is None


def object_tree(spec: str | os.PathLike[str], endpoint_url: str | None = None
                ) -> LocalTree | S3Tree:
    """The raw tree of an object store named as ``cairn server --objects`` names one: no
    layer (decryption, tiering) in the way, so bytes are copied as they are stored."""
    spec = str(spec)
    if spec.startswith("s3://"):
        from ..cas.backends.s3 import S3Backend

        return S3Tree(S3Backend.from_url(spec, endpoint_url=endpoint_url))
    if "://" in spec and not spec.startswith("file://"):
        raise InvalidArgument(f"--objects must be a directory or s3://bucket/prefix, got {spec!r}")
    path = spec[len("file://"):] if spec.startswith("file://") else spec
    return LocalTree(Path(os.path.abspath(os.path.expanduser(path))))


def write_manifest(dest: Path, manifest: dict[str, Any]) -> None:
    tmp = dest / f"{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    os.replace(tmp, dest / MANIFEST)


def read_manifest(src: Path) -> dict[str, Any]:
    """The manifest of the backup at ``src``, checked for its shape; a clear error if it is
    not a (whole) backup."""
    path = src / MANIFEST
    if not src.is_dir():
        raise NotFound(f"no backup at {src}: not a directory")
    if not path.is_file():
        raise CorruptObject(f"{src} is not a complete Cairn backup: {MANIFEST} is missing (a "
                            "backup that was interrupted has none); take the backup again")
    try:
        m = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptObject(f"{path} is damaged: not JSON ({exc})") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise CorruptObject(f"{path} is not a Cairn backup manifest")
    if m.get("version") != VERSION:
        raise CorruptObject(f"{path} is backup format version {m.get('version')!r}; this Cairn "
                            f"reads version {VERSION}: restore with the release that wrote it")
    files, objects = m.get("files"), m.get("objects")
    ok = (isinstance(files, dict) and INDEX in files
          and all(isinstance(v, dict) and isinstance(v.get("size"), int)
                  and isinstance(v.get("sha256"), str) and _safe_rel(k) for k, v in files.items())
          and isinstance(objects, dict) and isinstance(objects.get("count"), int)
          and isinstance(objects.get("sha256"), str)
          and isinstance(m.get("source"), dict) and m["source"].get("kind") in ("local", "sql")
          and isinstance(m.get("schema_revision"), str))
    if not ok:
        raise CorruptObject(f"{path} is damaged: a field is missing or has the wrong type")
    return m


def _safe_rel(rel: Any) -> bool:
    """A path inside the backup: relative, no '..', no empty parts (a manifest edited to
    point outside must not make a restore read or write there)."""
    if not isinstance(rel, str) or not rel or rel.startswith("/") or "\\" in rel:
        return False
    return all(part not in ("", ".", "..") for part in rel.split("/"))


def parse_object_line(line: str, where: str) -> tuple[str, int, str]:
    parts = line.split()
    if len(parts) != 3 or not is_oid(parts[0]) or not parts[1].isdigit() or len(parts[2]) != 64:
        raise CorruptObject(f"{where} is damaged: bad line {line[:120]!r}")
    return parts[0], int(parts[1]), parts[2]
