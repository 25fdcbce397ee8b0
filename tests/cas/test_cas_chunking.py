"""Content-defined chunking: block reading must not change where cuts fall."""

from __future__ import annotations

import io
import random

import pytest

from cairn.cas.chunking import iter_chunks

SMALL = dict(min_size=256, avg_size=1024, max_size=4096)


def chunk(data: bytes, **kwargs: int) -> list[bytes]:
    return list(iter_chunks(io.BytesIO(data), **{**SMALL, **kwargs}))


class Trickle(io.RawIOBase):
    """A reader that returns at most 1000 bytes per read, like a pipe."""

    def __init__(self, data: bytes) -> None:
        self._buf = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._buf.read(min(size, 1000) if size >= 0 else 1000)


@pytest.mark.parametrize("length", [0, 1, 255, 4096, 8191, 8192, 8193, 65_536, 100_003])
def test_block_reading_gives_whole_buffer_cuts(length: int) -> None:
    data = random.Random(length).randbytes(length)
    whole = chunk(data, block_size=1 << 20)  # one block: the reference cuts
    for block_size in (8192, 8192 + 17, 20_000):
        assert chunk(data, block_size=block_size) == whole
    assert b"".join(whole) == data


def test_chunk_sizes_within_bounds() -> None:
    data = random.Random(1).randbytes(200_000)
    sizes = [len(c) for c in chunk(data, block_size=8192)]
    assert all(s <= 4096 for s in sizes)
    assert all(s >= 256 for s in sizes[:-1])
    assert 200_000 / 1024 / 3 < len(sizes) < 200_000 / 1024 * 3


def test_short_reads_give_the_same_cuts() -> None:
    data = random.Random(2).randbytes(50_000)
    got = list(iter_chunks(Trickle(data), block_size=8192, **SMALL))  # type: ignore[arg-type]
    assert got == chunk(data)


def test_local_change_only_changes_nearby_chunks() -> None:
    rng = random.Random(3)
    data = bytearray(rng.randbytes(300_000))
    before = set(chunk(bytes(data), block_size=8192))
    data[150_000:150_100] = rng.randbytes(100)
    after = chunk(bytes(data), block_size=8192)
    new = [c for c in after if c not in before]
    assert sum(map(len, new)) < 3 * 4096


def test_block_must_hold_two_max_chunks() -> None:
    with pytest.raises(ValueError):
        chunk(b"x" * 10, block_size=4096)
