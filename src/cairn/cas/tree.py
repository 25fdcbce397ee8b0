"""Trees: the manifest of a set of files, stored as an ordinary object.

A run's artifacts, a data-set version and a model version are each a tree, so
files shared between them are stored once.  The encoding is canonical (one
byte string per set of entries) so that equal trees get equal oids::

    {"entries":[{"chunks":[[oid,size],...],"digest":"…","path":"a/b.txt","size":12},...],
     "format":"cairn.tree/1"}

JSON with sorted keys, no whitespace, UTF-8, entries sorted by path; ``chunks``
is ``[]`` for a file stored as one object.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

from ..entities import FileEntry
from ..errors import InvalidArgument
from .backends.base import check_oid

FORMAT = "cairn.tree/1"


def check_path(path: str) -> str:
    """Validate a tree path: relative, POSIX separators, no ``.``/``..`` parts.

    Paths are joined onto a checkout directory later, so anything that could
    escape it or mean different files on different systems is refused here.
    """
    if not isinstance(path, str) or not path:
        raise InvalidArgument(f"file path must be a non-empty string, got {path!r}", path=path)
    if path.startswith("/") or "\\" in path or "\x00" in path:
        raise InvalidArgument(f"file path must be relative and use '/': {path!r}", path=path)
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise InvalidArgument(f"file path has an empty, '.' or '..' part: {path!r}", path=path)
    return path


def check_entry(entry: FileEntry) -> FileEntry:
    """Validate one entry's fields, so a bad manifest fails when written, not when read."""
    if not isinstance(entry, FileEntry):
        raise InvalidArgument(f"expected a FileEntry, got {type(entry).__name__}")
    check_path(entry.path)
    check_oid(entry.digest)
    if not _is_int(entry.size) or not 0 <= entry.size <= _MAX_SIZE:
        raise InvalidArgument(f"{entry.path}: size must be a non-negative 64-bit int",
                              path=entry.path)
    if entry.chunks:
        for oid, size in entry.chunks:
            check_oid(oid)
            if not _is_int(size) or not 0 < size <= _MAX_SIZE:
                raise InvalidArgument(f"{entry.path}: chunk sizes must be positive ints",
                                      path=entry.path)
        if sum(size for _, size in entry.chunks) != entry.size:
            raise InvalidArgument(f"{entry.path}: chunk sizes do not add up to the file size",
                                  path=entry.path)
    return entry


_MAX_SIZE = (1 << 63) - 1  # what every index's BIGINT size column holds


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def encode_tree(entries: Iterable[FileEntry]) -> bytes:
    """Canonical bytes of a tree; duplicate paths are an error."""
    ordered = sorted((check_entry(e) for e in entries), key=lambda e: e.path)
    for prev, cur in zip(ordered, ordered[1:]):
        if prev.path == cur.path:
            raise InvalidArgument(f"duplicate path in tree: {cur.path!r}", path=cur.path)
    doc = {
        "format": FORMAT,
        "entries": [
            {"path": e.path, "size": e.size, "digest": e.digest,
             "chunks": [[oid, size] for oid, size in e.chunks]}
            for e in ordered
        ],
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def decode_tree(oid: str, data: bytes) -> list[FileEntry]:
    """Entries of a tree object, sorted by path; :class:`InvalidArgument` if not a tree."""
    try:
        doc: Any = json.loads(data)
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError("no tree format marker")
        return [
            check_entry(FileEntry(path=e["path"], size=e["size"], digest=e["digest"],
                                  chunks=tuple((c[0], c[1]) for c in e["chunks"])))
            for e in doc["entries"]
        ]
    except (ValueError, KeyError, TypeError, IndexError, InvalidArgument) as exc:
        raise InvalidArgument(f"object {oid} is not a tree ({exc})", oid=oid) from None


def referenced_oids(entries: Iterable[FileEntry]) -> set[str]:
    """Every object the entries need: what a push, pull or GC must keep together."""
    oids: set[str] = set()
    for e in entries:
        if e.chunks:
            oids.update(oid for oid, _ in e.chunks)
        else:
            oids.add(e.digest)
    return oids
