"""Local-directory backend: one read-only file per object, sharded ``ab/cdef…``.

Sharding by the first two hex digits keeps directories to ~1/256 of the store,
which file systems and ``ls`` handle well.  Each object is written to a
uniquely named temporary file in its shard directory and renamed into place,
so readers never see a partial object and concurrent writers of the same oid
simply race to install identical bytes.  Objects are created mode 0444 as a
guard against tools that edit files in place.

A write that fails (a full disk above all) removes its temporary file and raises
:class:`~cairn.errors.StorageFull` (ENOSPC, EDQUOT) or
:class:`~cairn.errors.StoreUnavailable` (EIO, EROFS, EFBIG ...) naming the object's
path, never a bare ``OSError``.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Iterator

from ...errors import NotFound, from_os_error
from .base import check_oid, is_oid

_TMP_PREFIX = ".tmp-"
# An object garbage collection is deleting: renamed aside first, so a writer that
# freshens it meanwhile finds it gone and stores it again (see freshen / remove_old).
_GC_PREFIX = ".gc-"
_CLOCK = ".cairn-gc-clock"  # in the root, beside the shards: touched to read the file system's time


class LocalBackend:
    """Objects as files under ``root``; directories are created on first write."""

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = False) -> None:
        # No I/O here: a store object may be built for a directory that does not exist yet.
        self.root = Path(root)
        self.fsync = fsync

    def __repr__(self) -> str:
        return f"LocalBackend({str(self.root)!r})"

    def path(self, oid: str) -> Path:
        """Where ``oid`` lives (whether or not it exists); useful to tools and tests."""
        check_oid(oid)
        return self.root / oid[:2] / oid[2:]

    def put(self, oid: str, data: bytes) -> None:
        dest = self.path(oid)
        try:
            self._put(dest, oid, data)
        except OSError as exc:
            # A full disk (ENOSPC, EDQUOT), an I/O error, a read-only file system: the
            # temporary file is gone already, so nothing of the object is visible.
            raise from_os_error(exc, "could not write object", dest,
                                "nothing half-written was kept; once the disk holding the "
                                "store has room (or works) again, the same call succeeds") \
                from exc

    def _put(self, dest: Path, oid: str, data: bytes) -> None:
        shard = dest.parent
        tmp = shard / f"{_TMP_PREFIX}{oid[2:10]}-{secrets.token_hex(6)}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o444)
        except FileNotFoundError:
            shard.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o444)
        try:
            with os.fdopen(fd, "wb", buffering=0) as f:
                view = memoryview(data)
                while view:  # os.write may write less than asked for
                    view = view[f.write(view):]
                if self.fsync:
                    os.fsync(f.fileno())
            os.replace(tmp, dest)
        except BaseException:
            _unlink_quietly(tmp)
            raise

    def get(self, oid: str) -> bytes:
        path = self.path(oid)
        try:
            with open(path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise NotFound(f"object {oid} not found in {self.root}", oid=oid) from None

    def exists(self, oid: str) -> bool:
        return self.path(oid).is_file()

    def iter_oids(self) -> Iterator[str]:
        try:
            shards = sorted(os.scandir(self.root), key=lambda e: e.name)
        except FileNotFoundError:
            return
        for shard in shards:
            if len(shard.name) != 2 or not shard.is_dir(follow_symlinks=False):
                continue
            with os.scandir(shard.path) as entries:
                for entry in entries:
                    oid = shard.name + entry.name
                    if is_oid(oid) and entry.is_file(follow_symlinks=False):
                        yield oid

    def delete(self, oid: str) -> None:
        path = self.path(oid)
        try:
            os.chmod(path, 0o644)  # Windows refuses to unlink read-only files
            os.unlink(path)
        except FileNotFoundError:
            raise NotFound(f"object {oid} not found in {self.root}", oid=oid) from None

    def size(self, oid: str) -> int:
        try:
            return self.path(oid).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"object {oid} not found in {self.root}", oid=oid) from None


    # -- garbage collection (cairn.cas.backends.base.Sweepable) ------------------

    def freshen(self, oid: str) -> bool:
        """Make ``oid`` young again (its mtime now); ``False`` when it is not stored."""
        path = self.path(oid)
        try:
            os.utime(path)
        except FileNotFoundError:
            return False
        except OSError:  # another user's object, a read-only mount: answer as exists did
            return path.is_file()
        return True

    def scan(self) -> Iterator[tuple[str, int, int]]:
        """``(oid, stored size, mtime ns)`` of every object, one ``stat`` each."""
        for shard in self._shards():
            with os.scandir(shard.path) as entries:
                for entry in entries:
                    if len(entry.name) != 62 or entry.name[0] == ".":
                        continue  # temporary files, objects set aside
                    oid = shard.name + entry.name
                    if not is_oid(oid):
                        continue
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:  # deleted meanwhile
                        continue
                    yield oid, st.st_size, st.st_mtime_ns

    def clock_ns(self) -> int:
        """Now, as this file system stamps files: the kernel's coarse clock a few ms behind
        ``time.time_ns()``, or a file server's clock.  Garbage collection compares mtimes
        with it, so a file written just after a collection started never looks older."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / _CLOCK
        with open(path, "ab"):
            pass
        os.utime(path)
        return os.stat(path).st_mtime_ns

    def names(self) -> Iterator[tuple[str, list[str]]]:
        """``(shard, entry names)`` of every shard: one ``listdir`` each and no ``stat``, the
        listing garbage collection uses here (it reads times only of what nothing refers to).
        Names are objects' ``oid[2:]``, ``.tmp-…`` files and objects set aside (``.gc-…``)."""
        for shard in self._shards():
            try:
                yield shard.name, os.listdir(shard.path)
            except FileNotFoundError:
                continue

    def ages(self, oids: list[str]) -> Iterator[tuple[str, int, int]]:
        """``(oid, stored size, mtime ns)`` of those ``oids`` still stored."""
        root = os.fspath(self.root)
        for oid in oids:
            try:
                st = os.stat(f"{root}/{oid[:2]}/{oid[2:]}")
            except FileNotFoundError:
                continue
            yield oid, st.st_size, st.st_mtime_ns

    def _shards(self) -> list[os.DirEntry[str]]:
        try:
            with os.scandir(self.root) as it:
                shards = [e for e in it if len(e.name) == 2 and e.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            return []
        return sorted(shards, key=lambda e: e.name)

    def remove_old(self, oids: list[str], before_ns: int) -> list[tuple[str, int]]:
        """Delete each of ``oids`` unless it was modified at or after ``before_ns``.

        The file is renamed aside first and its time read there: a writer freshening it
        before the rename made it young (it is put back), one after the rename finds it
        absent and stores it again.  Either way no object a writer relies on is lost."""
        removed = []
        root = os.fspath(self.root)
        tag = secrets.token_hex(4)
        for oid in oids:
            check_oid(oid)
            path = f"{root}/{oid[:2]}/{oid[2:]}"
            grave = f"{root}/{oid[:2]}/{_GC_PREFIX}{oid[2:]}-{tag}"
            try:
                os.rename(path, grave)
            except FileNotFoundError:
                continue
            try:
                st = os.stat(grave)
            except FileNotFoundError:  # another collection settled it meanwhile
                continue
            if st.st_mtime_ns >= before_ns:
                _restore(Path(grave), Path(path))
                continue
            try:
                _unlink_object(grave)
            except FileNotFoundError:
                continue
            removed.append((oid, st.st_size))
        return removed

    def graves(self) -> Iterator[tuple[str, str]]:
        """``(oid, path)`` of objects a killed collection left renamed aside."""
        for shard in self._shards():
            with os.scandir(shard.path) as entries:
                for entry in entries:
                    if entry.name.startswith(_GC_PREFIX):
                        oid = shard.name + entry.name[len(_GC_PREFIX):].split("-", 1)[0]
                        if is_oid(oid):
                            yield oid, entry.path

    def settle_grave(self, oid: str, grave: str, keep: bool,
                     before_ns: int | None = None) -> int | None:
        """Put a renamed-aside object back (``keep``, or modified at or after
        ``before_ns``: returns None) or delete it (returns the bytes freed, 0 when another
        collection settled it already)."""
        try:
            st = os.stat(grave)
        except FileNotFoundError:
            return 0
        # A collection that renamed it aside re-reads its time before deleting it; found
        # here (that one killed, or still running), a writer may have freshened it first.
        if keep or (before_ns is not None and st.st_mtime_ns >= before_ns):
            _restore(Path(grave), self.path(oid))
            return None
        try:
            _unlink_object(grave)
        except FileNotFoundError:
            return 0
        return st.st_size

    def clean_temp(self, before_ns: int, found: list[tuple[str, str]] | None = None, *,
                   dry_run: bool = False) -> tuple[int, int]:
        """Remove ``.tmp-*`` files (writers killed mid-put) last modified before ``before_ns``:
        every shard's, or those ``found`` as ``(shard, name)`` by :meth:`names`.  Returns
        ``(count, bytes)`` (``dry_run``: of those that would go)."""
        if found is None:
            found = [(shard, name) for shard, names in self.names() for name in names
                     if name.startswith(_TMP_PREFIX)]
        count = size = 0
        root = os.fspath(self.root)
        for shard, name in found:
            path = f"{root}/{shard}/{name}"
            try:
                st = os.stat(path)
                if st.st_mtime_ns >= before_ns:
                    continue
                if not dry_run:
                    _unlink_object(path)
            except FileNotFoundError:
                continue
            count += 1
            size += st.st_size
        return count, size


def _unlink_object(path: str) -> None:
    if os.name == "nt":  # Windows refuses to unlink read-only files; POSIX does not care
        os.chmod(path, 0o644)
    os.unlink(path)


def _restore(grave: Path, path: Path) -> None:
    """Put an object renamed aside back, unless a writer has stored it again meanwhile."""
    # A copy a writer stored meanwhile has the same bytes by construction: replacing it is harmless.
    try:
        os.replace(grave, path)
    except FileNotFoundError:  # another collection put it back already
        pass


_O_BINARY = getattr(os, "O_BINARY", 0)


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
