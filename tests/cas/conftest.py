"""Fixtures shared by the object-store tests: every backend, and stores over them."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from cairn.cas import LocalBackend, MemoryBackend, ObjectStore
from cairn.cas.backends.base import Backend


@pytest.fixture(params=["local", "memory"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "local":
        return LocalBackend(tmp_path / "objects")
    return MemoryBackend()


@pytest.fixture
def store(backend: Backend) -> ObjectStore:
    return ObjectStore(backend)


@pytest.fixture
def local_store(tmp_path: Path) -> ObjectStore:
    return ObjectStore.local(tmp_path / "objects")


def _flip_bit(backend: Backend, oid: str, offset: int = -1) -> None:
    """Flip one bit of a stored object the way bit rot would: in place, behind the store's back."""
    if isinstance(backend, LocalBackend):
        path = backend.path(oid)
        path.chmod(0o644)
        data = bytearray(path.read_bytes())
        data[offset] ^= 0x01
        path.write_bytes(bytes(data))
    else:
        data = bytearray(backend.get(oid))
        data[offset] ^= 0x01
        backend.put(oid, bytes(data))


@pytest.fixture
def corrupt() -> Callable[..., None]:
    """``corrupt(backend, oid, offset=-1)`` flips one bit of a stored object."""
    return _flip_bit
