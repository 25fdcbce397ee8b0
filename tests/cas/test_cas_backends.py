"""Conformance suite: every Backend behaves the same (plus local-only layout checks)."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from pathlib import Path

import pytest

from cairn.cas import LocalBackend, MemoryBackend
from cairn.cas.backends.base import Backend
from cairn.errors import InvalidArgument, NotFound


def oid_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


A = oid_of(b"a")
B = oid_of(b"b")


def test_backends_satisfy_protocol(backend: Backend) -> None:
    assert isinstance(backend, Backend)


def test_put_get_round_trip(backend: Backend) -> None:
    backend.put(A, b"stored bytes")
    assert backend.get(A) == b"stored bytes"
    assert backend.exists(A)
    assert backend.size(A) == len(b"stored bytes")


def test_put_accepts_bytearray_and_memoryview_without_aliasing(backend: Backend) -> None:
    buf = bytearray(b"mutable")
    backend.put(A, buf)  # type: ignore[arg-type]
    buf[0:1] = b"X"
    backend.put(B, memoryview(b"view"))  # type: ignore[arg-type]
    assert backend.get(A) == b"mutable"
    assert backend.get(B) == b"view"


def test_empty_object(backend: Backend) -> None:
    backend.put(A, b"")
    assert backend.get(A) == b""
    assert backend.size(A) == 0


def test_put_existing_oid_replaces_harmlessly(backend: Backend) -> None:
    backend.put(A, b"one")
    backend.put(A, b"one")
    assert backend.get(A) == b"one"
    assert list(backend.iter_oids()) == [A]


def test_missing_object_is_not_found(backend: Backend) -> None:
    assert not backend.exists(A)
    for call in (backend.get, backend.size, backend.delete):
        with pytest.raises(NotFound, match=A):
            call(A)


def test_iter_oids_and_delete(backend: Backend) -> None:
    assert list(backend.iter_oids()) == []
    backend.put(A, b"a")
    backend.put(B, b"b")
    assert sorted(backend.iter_oids()) == sorted([A, B])
    backend.delete(A)
    assert not backend.exists(A)
    assert list(backend.iter_oids()) == [B]


@pytest.mark.parametrize("bad", ["", "ab", "../" + "a" * 61, A.upper(), A + "0", A[:-1] + "g"])
def test_malformed_oid_is_rejected(backend: Backend, bad: str) -> None:
    for call in (backend.get, backend.exists, backend.size, backend.delete):
        with pytest.raises(InvalidArgument):
            call(bad)
    with pytest.raises(InvalidArgument):
        backend.put(bad, b"x")


def test_concurrent_puts_of_one_oid(backend: Backend) -> None:
    data = os.urandom(100_000)
    threads = [threading.Thread(target=backend.put, args=(A, data)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert backend.get(A) == data
    assert list(backend.iter_oids()) == [A]


# -- local layout ------------------------------------------------------------


def test_local_constructor_does_no_io(tmp_path: Path) -> None:
    root = tmp_path / "not" / "yet"
    backend = LocalBackend(root)
    assert list(backend.iter_oids()) == []
    assert not backend.exists(A)
    assert not root.exists()
    backend.put(A, b"x")
    assert root.is_dir()


def test_local_layout_is_sharded_and_read_only(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path)
    backend.put(A, b"content")
    path = tmp_path / A[:2] / A[2:]
    assert backend.path(A) == path
    assert path.read_bytes() == b"content"
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode & 0o222 == 0
    assert os.listdir(path.parent) == [A[2:]]  # no temp file left behind


def test_local_iter_oids_ignores_foreign_files(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path)
    backend.put(A, b"a")
    (tmp_path / A[:2] / ".tmp-leftover").write_bytes(b"half")
    (tmp_path / "README").write_text("not an object")
    (tmp_path / "zz").mkdir()
    (tmp_path / "zz" / ("0" * 62)).write_bytes(b"not hex shard")
    assert list(backend.iter_oids()) == [A]


def test_local_fsync_option(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path, fsync=True)
    backend.put(A, b"durable")
    assert backend.get(A) == b"durable"


def test_local_failed_write_leaves_no_temp_file(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path)

    with pytest.raises(TypeError):
        backend.put(A, object())  # type: ignore[arg-type]
    shard = tmp_path / A[:2]
    assert not shard.exists() or os.listdir(shard) == []


def test_memory_repr_counts_objects() -> None:
    backend = MemoryBackend()
    backend.put(A, b"a")
    assert "1 objects" in repr(backend)
