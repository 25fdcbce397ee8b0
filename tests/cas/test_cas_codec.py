"""The stored-bytes format: a one-byte codec tag, then raw or zstd content."""

from __future__ import annotations

import hashlib
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.cas import codec
from cairn.errors import CorruptObject

OID = hashlib.sha256(b"x").hexdigest()


def test_compressible_content_is_stored_zstd() -> None:
    data = b"metric,value\n" * 10_000
    stored = codec.encode(data)
    assert stored[:1] == b"z"
    assert len(stored) < len(data) // 10
    assert codec.decode(OID, stored) == data


def test_incompressible_content_is_stored_raw() -> None:
    data = os.urandom(100_000)
    stored = codec.encode(data)
    assert stored == b"r" + data
    assert codec.decode(OID, stored) == data


@pytest.mark.parametrize("data", [b"", b"a", b"ab" * 10])
def test_tiny_content_is_stored_raw(data: bytes) -> None:
    assert codec.encode(data) == b"r" + data


def test_small_saving_is_not_worth_compressing() -> None:
    # ~5% compressible: random bytes with a short repeated run.
    data = os.urandom(95_000) + b"\x00" * 5_000
    assert codec.encode(data)[:1] == b"r"


def test_accepts_memoryview() -> None:
    data = b"abc" * 1000
    assert codec.decode(OID, codec.encode(memoryview(data))) == data


@pytest.mark.parametrize("stored", [b"", b"x123", b"z" + b"not a zstd frame"])
def test_undecodable_bytes_are_corrupt(stored: bytes) -> None:
    with pytest.raises(CorruptObject, match=OID):
        codec.decode(OID, stored)


def test_truncated_zstd_frame_is_corrupt() -> None:
    stored = codec.encode(b"hello world " * 1000)
    with pytest.raises(CorruptObject):
        codec.decode(OID, stored[:-5])


@given(st.binary(max_size=4096) | st.text(max_size=2000).map(lambda s: s.encode() * 3))
def test_round_trip(data: bytes) -> None:
    assert codec.decode(OID, codec.encode(data)) == data
