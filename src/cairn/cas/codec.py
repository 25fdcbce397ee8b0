"""How an object's content is encoded in its stored bytes.

Stored bytes are a one-byte codec tag followed by the payload::

    b"r" + content                    raw
    b"z" + zstd_frame(content)        zstandard, frame carries the content size

The tag lets readers decode without guessing (raw content may itself start with
zstd's magic) and leaves room for new codecs.  An object's id is always the
SHA-256 of the *decoded* content, so the same content has one id whatever codec
stored it, and a reader can check what it got.
"""

from __future__ import annotations

import threading

import zstandard

from ..errors import CorruptObject

RAW = b"r"
ZSTD = b"z"
LEVEL = 3
# Store compressed only when it saves at least this fraction: decompressing costs
# CPU on every read, so a few percent is not worth it.
MIN_SAVING = 0.10
# Below this, a zstd frame's own overhead eats any saving.
MIN_COMPRESS_SIZE = 64

_local = threading.local()  # zstd contexts are not thread safe; one per thread


def _compressor() -> zstandard.ZstdCompressor:
    c = getattr(_local, "c", None)
    if c is None:
        c = _local.c = zstandard.ZstdCompressor(level=LEVEL, write_content_size=True)
    return c


def _decompressor() -> zstandard.ZstdDecompressor:
    d = getattr(_local, "d", None)
    if d is None:
        d = _local.d = zstandard.ZstdDecompressor()
    return d


def encode(data: bytes | bytearray | memoryview) -> bytes:
    """Stored bytes for ``data``: zstd when it saves ``MIN_SAVING``, else raw."""
    n = len(data)
    if n >= MIN_COMPRESS_SIZE:
        packed = _compressor().compress(data)
        if len(packed) <= n * (1.0 - MIN_SAVING):
            return ZSTD + packed
    return b"".join((RAW, data))  # one copy, whatever bytes-like type data is


def decode(oid: str, stored: bytes) -> bytes:
    """Content of a stored object; :class:`CorruptObject` if it cannot be decoded."""
    tag = stored[:1]
    if tag == RAW:
        return stored[1:]
    if tag == ZSTD:
        try:
            return _decompressor().decompress(memoryview(stored)[1:])
        except zstandard.ZstdError as exc:
            raise CorruptObject(f"object {oid} is corrupt: bad zstd data ({exc})", oid=oid) from None
    raise CorruptObject(f"object {oid} is corrupt: unknown codec tag {tag!r}", oid=oid)


def is_compressed(stored: bytes) -> bool:
    return stored[:1] == ZSTD
