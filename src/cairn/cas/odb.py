"""The object database: files in, files out, addressed by SHA-256.

An object's id (oid) is the SHA-256 hex digest of its uncompressed content, so
identical content is stored once wherever it comes from (a run's artifact, a
data-set file, a model weight).  Small files are one object whose oid is the
file's digest; files above ``chunk_threshold`` are cut into content-defined
chunks (see :mod:`.chunking`), one object each, listed in ``FileEntry.chunks``.
Every read re-hashes what it got, so corruption surfaces as
:class:`~cairn.errors.CorruptObject` instead of wrong bytes.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

from ..entities import FileEntry
from ..errors import CorruptObject, InvalidArgument, NotFound
from . import codec
from ._pool import default_workers, ordered_map
from .backends.base import Backend, check_oid, freshen
from .backends.local import LocalBackend
from .chunking import MiB, iter_chunks
from .packs import PackCache, PackIndex, SqlitePackIndex, member_bytes
from .tree import check_path, decode_tree, encode_tree
from .verify import VerifyResult
from .verify import verify as verify_objects

CHUNK_THRESHOLD = 4 * MiB
# The pack index of a local store: a file in the store's root, which object listing skips.
PACK_INDEX_NAME = "pack-index.sqlite"
StrPath = str | os.PathLike[str]


class ObjectStore:
    """Content-addressed storage of bytes, files and trees on top of a :class:`Backend`."""

    def __init__(self, backend: Backend, *, chunk_threshold: int = CHUNK_THRESHOLD,
                 workers: int | None = None, packs: PackIndex | None = None) -> None:
        self.backend = backend
        self.chunk_threshold = chunk_threshold
        self.workers = workers or default_workers()
        # Where packed objects are (see packs.py); None: this store has only loose objects.
        self.packs = packs
        self._pack_cache = PackCache()

    @classmethod
    def local(cls, root: StrPath, *, chunk_threshold: int = CHUNK_THRESHOLD,
              workers: int | None = None) -> "ObjectStore":
        """A store in a local directory (created on first write), with its pack index."""
        from .layers import layered

        return cls(layered(LocalBackend(root)), chunk_threshold=chunk_threshold, workers=workers,
                   packs=SqlitePackIndex(Path(root) / PACK_INDEX_NAME))

    def __repr__(self) -> str:
        return f"ObjectStore({self.backend!r})"

    # -- objects -----------------------------------------------------------

    def put_bytes(self, data: bytes | bytearray | memoryview) -> str:
        """Store ``data`` as one object and return its oid (a no-op if already stored)."""
        oid = hashlib.sha256(data).hexdigest()
        self._store(oid, data)
        return oid

    def get_bytes(self, oid: str, *, verify: bool = True) -> bytes:
        """Content of object ``oid``; :class:`CorruptObject` if it does not hash to ``oid``.

        An object that is not stored loose is looked up in the packs (always verified).
        """
        try:
            stored = self.backend.get(check_oid(oid))
        except NotFound:
            loc = self.packs.locate([oid]).get(oid) if self.packs is not None else None
            if loc is None:
                raise
            return member_bytes(self, oid, loc, self._pack_cache)
        data = codec.decode(oid, stored)
        if verify and hashlib.sha256(data).hexdigest() != oid:
            raise CorruptObject(f"object {oid} is corrupt: content does not match its id", oid=oid)
        return data

    def has(self, oid: str) -> bool:
        if self.backend.exists(check_oid(oid)):
            return True
        return self.packs is not None and bool(self.packs.locate([oid]))

    def missing(self, oids: Iterable[str]) -> set[str]:
        """The subset of ``oids`` stored neither loose nor packed (what a pull must fetch).

        Whoever asks is about to refer to the ones present instead of storing them, so
        those (and the packs holding them) are freshened, as a put that finds its object
        is: garbage collection spares them (docs/lifecycle.md, "Garbage collection")."""
        wanted = {check_oid(oid) for oid in oids}
        if self.packs is not None and wanted:
            located = self.packs.locate(wanted)
            fresh = {p for p in {loc.pack for loc in located.values()}
                     if freshen(self.backend, p)}
            # Garbage collection unlocates a pack's dead members, then reads the pack's
            # time: a member still located in its pack after the freshen is safe to refer
            # to; one unlocated meanwhile (or in a pack gone) is stored again.
            again = self.packs.locate(o for o, loc in located.items() if loc.pack in fresh) \
                if fresh else {}
            wanted -= {o for o, loc in again.items() if loc.pack in fresh}
        return {oid for oid in wanted if not freshen(self.backend, oid)}

    def verify(self, oids: Iterable[str] | None = None, *,
               progress: bool | None = False) -> VerifyResult:
        """Re-hash ``oids`` (all objects when ``None``); reports damage instead of raising.
        ``progress``: a bar on stderr (None: when stderr is a terminal)."""
        self.drop_caches()  # packed objects are re-read from the backend, not from memory
        return verify_objects(self, oids, workers=self.workers, progress=progress)

    def drop_caches(self) -> None:
        """Forget the decoded packs kept in memory (the next read goes to the backend)."""
        self._pack_cache.clear()

    def _store(self, oid: str, data: bytes | bytearray | memoryview) -> None:
        # Skipping existing objects is what makes storage dedup and re-puts cheap.
        # It trusts the stored copy: `verify` finds one that rotted, and deleting it
        # lets the next put restore it.  Finding it freshens it: garbage collection
        # spares young objects, and this writer is about to refer to it.
        if not freshen(self.backend, oid):
            self.backend.put(oid, codec.encode(data))

    # -- files -------------------------------------------------------------

    def put_file(self, path: StrPath, rel_path: str) -> FileEntry:
        """Store the file at ``path`` and describe it as ``rel_path`` in a tree.

        The entry describes the bytes actually read, so a file that changes while
        being stored yields a self-consistent entry rather than a corrupt one.
        """
        check_path(rel_path)
        with _open_regular(path) as f:
            if os.fstat(f.fileno()).st_size <= self.chunk_threshold:
                data = f.read()
                return FileEntry(rel_path, len(data), self.put_bytes(data))
            return self._put_chunked(f, rel_path)

    def _put_chunked(self, f: BinaryIO, rel_path: str) -> FileEntry:
        whole = hashlib.sha256()
        size = 0

        def hashed_chunks() -> Iterator[bytes]:
            nonlocal size
            for data in iter_chunks(f):
                whole.update(data)  # releases the GIL: overlaps with the workers
                size += len(data)
                yield data

        chunks = tuple(ordered_map(self._put_chunk, hashed_chunks(), workers=self.workers))
        digest = whole.hexdigest()
        # A file that shrank while read may give 0 or 1 chunks: keep "no chunks = one
        # object whose oid is the digest" (a lone chunk's oid already is the digest).
        if not chunks:
            self._store(digest, b"")
        if len(chunks) <= 1:
            return FileEntry(rel_path, size, digest)
        return FileEntry(rel_path, size, digest, chunks)

    def _put_chunk(self, data: bytes) -> tuple[str, int]:
        return self.put_bytes(data), len(data)

    def put_dir(self, directory: StrPath, prefix: str = "") -> list[FileEntry]:
        """Store every regular file under ``directory``; entries sorted by path.

        Paths are relative to ``directory`` with ``/`` separators, under
        ``prefix`` if given.  Symbolic links and special files are skipped: a
        tree records content, and a link's target may be outside the directory.
        """
        root = Path(directory)
        if not root.exists():
            raise NotFound(f"no such directory: {root}", path=str(root))
        if not root.is_dir():
            raise InvalidArgument(f"not a directory: {root}", path=str(root))
        prefix = prefix.strip("/")
        if prefix:
            check_path(prefix)

        def raise_error(exc: OSError) -> None:
            raise exc

        entries = []
        for dirpath, dirnames, filenames in os.walk(root, onerror=raise_error):
            dirnames.sort()
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                if not stat.S_ISREG(os.lstat(full).st_mode):
                    continue
                rel = Path(full).relative_to(root).as_posix()
                entries.append(self.put_file(full, f"{prefix}/{rel}" if prefix else rel))
        entries.sort(key=lambda e: e.path)
        return entries

    def read_file(self, entry: FileEntry, *, verify: bool = True) -> Iterator[bytes]:
        """Yield the file's content in pieces (one per object), without loading it whole.

        With ``verify`` every object is re-hashed and, for chunked files, the
        whole-file digest and size are checked at the end, so a wrong or
        tampered manifest is caught too.  ``verify=False`` trusts the store.
        """
        if not entry.chunks:
            data = self._get_for(entry, entry.digest, entry.size, verify)
            yield data
            return
        whole = hashlib.sha256() if verify else None
        total = 0
        pieces = ordered_map(lambda c: self._get_for(entry, c[0], c[1], verify), entry.chunks,
                             workers=self.workers)
        for data in pieces:
            if whole is not None:
                whole.update(data)
            total += len(data)
            yield data
        if whole is not None and (total != entry.size or whole.hexdigest() != entry.digest):
            raise CorruptObject(
                f"{entry.path}: content of chunks does not match file digest {entry.digest}",
                oid=entry.digest, path=entry.path)

    def _get_for(self, entry: FileEntry, oid: str, size: int, verify: bool) -> bytes:
        """Read one object of ``entry``, naming the file in any error."""
        try:
            data = self.get_bytes(oid, verify=verify)
        except CorruptObject as exc:
            raise CorruptObject(f"{entry.path}: {exc.message}", oid=oid, path=entry.path) from None
        except NotFound:
            raise NotFound(f"{entry.path}: object {oid} is missing", oid=oid,
                           path=entry.path) from None
        if len(data) != size:
            raise CorruptObject(f"{entry.path}: object {oid} has {len(data)} bytes, "
                                f"expected {size}", oid=oid, path=entry.path)
        return data

    def read_bytes(self, entry: FileEntry, *, verify: bool = True) -> bytes:
        """The whole file in memory; prefer :meth:`read_file` or :meth:`checkout` for big files."""
        return b"".join(self.read_file(entry, verify=verify))

    def checkout(self, entry: FileEntry, dest: StrPath, *, verify: bool = True) -> Path:
        """Write the file to ``dest`` atomically (temp file + rename) and return the path.

        On :class:`CorruptObject` nothing is left at ``dest`` (an existing file
        there is untouched), so a failed checkout never looks like a good one.
        """
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f".{dest.name}.{secrets.token_hex(6)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                     0o666)
        try:
            with os.fdopen(fd, "wb") as f:
                for data in self.read_file(entry, verify=verify):
                    f.write(data)
            os.replace(tmp, dest)
        except CorruptObject as exc:
            _unlink_quietly(tmp)
            raise CorruptObject(f"cannot check out {dest}: {exc.message}",
                                **{**exc.details, "dest": str(dest)}) from None
        except BaseException:
            _unlink_quietly(tmp)
            raise
        return dest

    # -- trees -------------------------------------------------------------

    def put_tree(self, entries: Iterable[FileEntry]) -> str:
        """Store a manifest of ``entries`` and return its oid.

        The referenced objects are not checked here (that would be a request
        per file on remote backends); ``missing(referenced_oids(entries))`` does.
        """
        return self.put_bytes(encode_tree(entries))

    def get_tree(self, oid: str) -> list[FileEntry]:
        """Entries of tree ``oid``, sorted by path."""
        return decode_tree(oid, self.get_bytes(oid))


def _open_regular(path: StrPath) -> BinaryIO:
    """Open ``path`` for reading, refusing non-files before ``open`` can block on a FIFO."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise NotFound(f"no such file: {os.fspath(path)}", path=os.fspath(path)) from None
    if not stat.S_ISREG(st.st_mode):
        raise InvalidArgument(f"not a regular file: {os.fspath(path)}", path=os.fspath(path))
    return open(path, "rb")


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
