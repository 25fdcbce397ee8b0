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


_O_BINARY = getattr(os, "O_BINARY", 0)


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
