"""Reading a user's files into the object store: scan, hash (or trust the cache), pack, store.

User files are only ever opened for reading.  Each file is read in one snapshot:
its ``fstat`` before and after the read must agree with the scan (size, mtime,
ctime, inode), otherwise it is read again, and a file that keeps changing is an error
rather than a version that mixes old and new bytes.

Small files (up to ``PACK_MEMBER_MAX``) are read and hashed by a few threads in
batches and, when the store lacks them, written into packs; bigger files go
through :meth:`ObjectStore.put_file` (content-defined chunks above 4 MiB).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

from ..cas._pool import ordered_map
from ..cas.odb import ObjectStore
from ..cas.packs import PACK_MEMBER_MAX, PackWriter
from ..cas.tree import FORMAT as TREE_FORMAT
from ..cas.tree import check_path, referenced_oids
from ..entities import FileEntry
from ..errors import CairnError, Conflict, InvalidArgument, NotFound, PermissionDenied, StoreUnavailable
from ..store.validation import surrogate_error
from .hashcache import RACY_NS, HashCache, chunks_of

_BATCH = 256
_ATTEMPTS = 3
Progress = Callable[[int], None]  # called with bytes done since the last call


class Scanned(NamedTuple):
    """A regular file found by :func:`scan`: where it is and what ``stat`` said.

    A named tuple rather than a dataclass: a scan of 100k files makes 100k of them.
    """

    rel: str  # path inside the data set, '/'-separated
    path: str  # absolute path on disk
    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int


@dataclass(slots=True)
class IngestResult:
    entries: list[FileEntry]
    hashed: int = 0  # files read and hashed
    cached: int = 0  # files taken from the hash cache
    stored: int = 0  # objects that were not in the store before (files or packs)
    packs: list[str] = field(default_factory=list)  # packs written


def scan(path: str | os.PathLike[str], *, exclude: Sequence[str] = ()) -> tuple[list[Scanned], bool]:
    """Every regular file at ``path`` (a file or a directory), sorted; and whether it is a directory.

    Symbolic links and special files inside a directory are skipped (a version
    records content, and a link may point outside).  Directories in ``exclude``
    (absolute, resolved) are not entered: the store itself may live inside ``path``.
    """
    root = Path(path).expanduser()
    try:
        st = os.stat(root)
    except FileNotFoundError:
        raise NotFound(f"no such file or directory: {root}", path=str(root)) from None
    except PermissionError:
        raise PermissionDenied(f"cannot read {root}: permission denied", path=str(root)) from None
    root = root.resolve()
    if stat.S_ISREG(st.st_mode):
        _check_name(str(root))
        name = check_path(root.name)
        return [Scanned(name, str(root), *_key(st))], False
    if not stat.S_ISDIR(st.st_mode):
        raise InvalidArgument(f"not a regular file or directory: {root}", path=str(root))
    skip = {os.path.realpath(e) for e in exclude}
    found: list[Scanned] = []
    stack = [(str(root), "")]
    while stack:
        directory, prefix = stack.pop()
        try:
            it = os.scandir(directory)
        except PermissionError:
            raise PermissionDenied(f"cannot read directory {directory}: permission denied",
                                   path=directory) from None
        except FileNotFoundError:
            raise Conflict(f"directory {directory} disappeared while it was scanned",
                           path=directory) from None
        with it:
            for entry in it:
                if "\\" in entry.name:
                    raise InvalidArgument(f"cannot version {entry.path}: a '\\' in a file name "
                                          "means different paths on different systems",
                                          path=entry.path)
                if not entry.name.isascii():
                    _check_name(entry.path)
                rel = f"{prefix}{entry.name}"
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if entry.path not in skip:
                            stack.append((entry.path, rel + "/"))
                        continue
                    if not entry.is_file(follow_symlinks=False):
                        continue
                    est = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # removed while scanning: it is not part of this version
                found.append(Scanned(rel, entry.path, *_key(est)))
    found.sort(key=lambda s: s.rel)
    return found, True


def ingest(objects: ObjectStore, files: Sequence[Scanned], *, cache: HashCache | None = None,
           cached: dict | None = None, pack: bool = True,
           progress: Progress | None = None) -> IngestResult:
    """Store ``files`` (those the cache does not vouch for) and return their entries in order."""
    t0 = time.time_ns()
    cached = cached or {}
    entries: list[FileEntry | None] = [None] * len(files)
    small: list[int] = []
    big: list[int] = []
    use_packs = pack and objects.packs is not None
    result = IngestResult([])
    for i, f in enumerate(files):
        hit = cached.get(f.path)
        if hit is not None and hit[:4] == (f.size, f.mtime_ns, f.ctime_ns, f.ino):
            entries[i] = FileEntry(f.rel, f.size, hit[4], chunks_of(hit[5]))
            result.cached += 1
        elif f.size <= PACK_MEMBER_MAX:
            small.append(i)
        else:
            big.append(i)
    if progress is not None and result.cached:
        progress(sum(files[i].size for i in range(len(files)) if entries[i] is not None))
    fresh: list[tuple[str, int, int, int, int, FileEntry]] = []  # rows for the hash cache

    def read_batch(batch: list[int]) -> list[tuple[int, Scanned, bytes, str]]:
        out = []
        for i in batch:
            snap, data = read_stable(files[i])
            out.append((i, snap, data, hashlib.sha256(data).hexdigest()))
        return out

    batches = [small[k:k + _BATCH] for k in range(0, len(small), _BATCH)]
    try:
        writer = PackWriter(objects) if use_packs else None
        for done in ordered_map(read_batch, batches, workers=objects.workers):
            need = objects.missing({oid for _, _, _, oid in done})
            for i, snap, data, oid in done:
                entry = entries[i] = FileEntry(snap.rel, len(data), oid)
                fresh.append((snap.path, snap.size, snap.mtime_ns, snap.ctime_ns, snap.ino, entry))
                if oid in need:
                    need.discard(oid)
                    result.stored += 1
                    if writer is not None:
                        writer.add(oid, data)
                    else:
                        objects.put_bytes(data)
            result.hashed += len(done)
            if progress is not None:
                progress(sum(len(d) for _, _, d, _ in done))
        if writer is not None:
            writer.flush()
            result.packs = list(writer.written)
        for i in big:
            snap, entry = put_stable(objects, files[i])
            entries[i] = entry
            fresh.append((snap.path, snap.size, snap.mtime_ns, snap.ctime_ns, snap.ino, entry))
            result.hashed += 1
            if progress is not None:
                progress(entry.size)
    except OSError as exc:
        raise storage_error(exc) from None
    if cache is not None:
        cache.store(row for row in fresh if row[2] < t0 - RACY_NS)
    result.entries = [e for e in entries if e is not None]
    return result


def restore_missing(objects: ObjectStore, files: Sequence[Scanned], entries: list[FileEntry], *,
                    cache: HashCache | None, pack: bool) -> int:
    """Store again any file whose objects the store lacks (e.g. cached but since deleted)."""
    refs = {e.path: referenced_oids([e]) for e in entries}
    missing = objects.missing(set().union(*refs.values())) if refs else set()
    if not missing:
        return 0
    again = [f for f in files if refs.get(f.rel, set()) & missing]
    res = ingest(objects, again, cache=cache, pack=pack)
    by_path = {e.path: e for e in res.entries}
    for k, e in enumerate(entries):
        if e.path in by_path:
            entries[k] = by_path[e.path]
    return len(again)


def read_stable(f: Scanned) -> tuple[Scanned, bytes]:
    """The whole content of ``f`` as one consistent snapshot, and the stat it belongs to."""
    for _ in range(_ATTEMPTS):
        try:
            fd = os.open(f.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        except FileNotFoundError:
            raise Conflict(f"{f.path} disappeared while it was being added; nothing was "
                           "recorded", path=f.path) from None
        except PermissionError:
            raise PermissionDenied(f"cannot read {f.path}: permission denied; nothing was "
                                   "recorded", path=f.path) from None
        try:
            before = os.fstat(fd)
            data = _read_all(fd, before.st_size)
            after = os.fstat(fd)
        finally:
            os.close(fd)
        same = _key(before) == _key(after) and after.st_size == len(data)
        if same:
            return _snap(f, after), data
        f = _snap(f, after)
    raise Conflict(f"{f.path} changed while it was being read ({_ATTEMPTS} attempts); stop the "
                   "program writing it and add again. Nothing was recorded.", path=f.path)


def _read_all(fd: int, size: int) -> bytes:
    parts: list[bytes] = []
    want = max(size, 1)
    while True:
        chunk = os.read(fd, max(want, 65536))
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)
        want = 1 << 20


def put_stable(objects: ObjectStore, f: Scanned) -> tuple[Scanned, FileEntry]:
    """Store a big file through the object store, checking it did not change meanwhile."""
    for _ in range(_ATTEMPTS):
        before = _stat(f.path)
        try:
            entry = objects.put_file(f.path, f.rel)
        except NotFound:
            raise Conflict(f"{f.path} disappeared while it was being added; nothing was "
                           "recorded", path=f.path) from None
        except PermissionError:
            raise PermissionDenied(f"cannot read {f.path}: permission denied; nothing was "
                                   "recorded", path=f.path) from None
        after = _stat(f.path)
        if _key(before) == _key(after) and entry.size == after.st_size:
            return _snap(f, after), entry
    raise Conflict(f"{f.path} changed while it was being read ({_ATTEMPTS} attempts); stop the "
                   "program writing it and add again. Nothing was recorded.", path=f.path)


def _check_name(path: str) -> None:
    """A file name that is not UTF-8 (os.fsdecode's lone surrogates) cannot be recorded."""
    err = surrogate_error(path, f"the file name {path!r}")
    if err is not None:
        raise InvalidArgument(f"cannot version {path!r}: its name is not valid UTF-8; "
                              f"rename it ({err.message})")


def _key(st: os.stat_result) -> tuple[int, int, int, int]:
    """What says a file is unchanged: size, mtime, ctime and inode, in ``Scanned``'s order."""
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino


def _snap(f: Scanned, st: os.stat_result) -> Scanned:
    return Scanned(f.rel, f.path, *_key(st))


def _stat(path: str) -> os.stat_result:
    try:
        return os.stat(path)
    except FileNotFoundError:
        raise Conflict(f"{path} disappeared while it was being added; nothing was recorded",
                       path=path) from None


def storage_error(exc: OSError) -> CairnError:
    """A clear error for an OS failure while writing to the store (a full disk above all)."""
    if isinstance(exc, PermissionError):
        return PermissionDenied(f"permission denied: {exc}")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StoreUnavailable(
            f"the disk holding the store is full ({exc.strerror}); nothing was recorded and "
            "your files were not touched. Free some space and run the command again.",
            errno=exc.errno)
    return StoreUnavailable(f"writing to the store failed: {exc}; nothing was recorded",
                            errno=exc.errno)


def checkout_error(exc: OSError, dest: str | os.PathLike[str]) -> CairnError:
    """A clear error for an OS failure while writing a checkout into ``dest``."""
    done = ("files written so far are complete (each is written to a temporary file and "
            "renamed); none is half-written")
    if isinstance(exc, PermissionError):
        return PermissionDenied(f"cannot write into {dest}: {exc.strerror}; {done}",
                                path=str(dest))
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StoreUnavailable(f"the disk holding {dest} is full ({exc.strerror}); {done}. "
                                "Free some space and run the checkout again.", errno=exc.errno)
    return StoreUnavailable(f"checkout into {dest} failed: {exc}; {done}", errno=exc.errno)


def encode_entries(entries: Sequence[FileEntry]) -> bytes:
    """The canonical tree bytes of ``entries`` (:func:`cairn.cas.tree.encode_tree`), fast.

    For entries built from a directory scan, whose paths and digests are already
    valid: a re-add of 100k unchanged files spends its time here otherwise.  The
    output is byte for byte that of ``encode_tree`` (a test checks it).
    """
    ordered = sorted(entries, key=lambda e: e.path)
    dumps = json.JSONEncoder(ensure_ascii=False).encode
    parts = []
    prev = None
    for e in ordered:
        if e.path == prev:
            raise InvalidArgument(f"duplicate path in tree: {e.path!r}", path=e.path)
        prev = e.path
        chunks = ",".join(f'["{oid}",{size}]' for oid, size in e.chunks)
        parts.append(f'{{"chunks":[{chunks}],"digest":"{e.digest}","path":{dumps(e.path)},'
                     f'"size":{e.size}}}')
    return f'{{"entries":[{",".join(parts)}],"format":"{TREE_FORMAT}"}}'.encode()
