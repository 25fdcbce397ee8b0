"""Columnar metric segments: the unit in which metric points are stored.

A segment holds one key's points from one flush as three packed little-endian
arrays (steps int64, timestamps int64, values float64), so NaN and infinities
round-trip bit for bit.  Layout (documented in docs/formats.md)::

    b"S" | codec u8 (0 raw, 1 zstd) | n u32 | body

where body is ``steps || timestamps || values`` (24*n bytes), zstd-compressed
when codec is 1.  Steps and timestamps are delta-encoded before compression
only in the compressed form (they are mostly arithmetic sequences, which zstd
then squeezes to almost nothing).
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import CorruptObject

if TYPE_CHECKING:  # pragma: no cover
    import zstandard

_HEADER = struct.Struct("<cBI")
_ONE = struct.Struct("<cBIqqd")  # the header and one point, packed at once
_RAW, _ZSTD = 0, 1
_COMPRESS_FROM = 256  # below this many points compression costs more than it saves

_local = threading.local()  # zstd contexts are not thread safe: one per thread (the server)


def _compressor() -> zstandard.ZstdCompressor:
    c = getattr(_local, "c", None)
    if c is None:
        import zstandard

        c = _local.c = zstandard.ZstdCompressor(level=1)
    return c


def _decompressor() -> zstandard.ZstdDecompressor:
    d = getattr(_local, "d", None)
    if d is None:
        import zstandard

        d = _local.d = zstandard.ZstdDecompressor()
    return d


def encode(steps: Any, timestamps: Any, values: Any) -> bytes:
    s = np.ascontiguousarray(steps, dtype="<i8")
    t = np.ascontiguousarray(timestamps, dtype="<i8")
    v = np.ascontiguousarray(values, dtype="<f8")
    n = s.shape[0]
    if not (t.shape[0] == n == v.shape[0]):
        raise ValueError("steps, timestamps and values must have the same length")
    if n < _COMPRESS_FROM:
        return _HEADER.pack(b"S", _RAW, n) + s.tobytes() + t.tobytes() + v.tobytes()
    ds = np.diff(s, prepend=np.int64(0))
    dt = np.diff(t, prepend=np.int64(0))
    body = _compressor().compress(ds.tobytes() + dt.tobytes() + v.tobytes())
    return _HEADER.pack(b"S", _ZSTD, n) + body


def decode(blob: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        magic, codec, n = _HEADER.unpack_from(blob)
    except struct.error:
        raise CorruptObject("metric segment is truncated") from None
    if magic != b"S":
        raise CorruptObject("metric segment has a bad magic byte")
    body: bytes | memoryview = memoryview(blob)[_HEADER.size:]
    if codec == _ZSTD:
        body = _decompressor().decompress(body, max_output_size=24 * n)
    elif codec != _RAW:
        raise CorruptObject(f"metric segment has unknown codec {codec}")
    if len(body) != 24 * n:
        raise CorruptObject(f"metric segment should hold {24 * n} bytes, holds {len(body)}")
    arr = np.frombuffer(body, dtype="<i8", count=2 * n)
    s, t = arr[:n], arr[n:]
    v = np.frombuffer(body, dtype="<f8", count=n, offset=16 * n)
    if codec == _ZSTD:
        s, t = np.cumsum(s), np.cumsum(t)
    return s, t, v


@dataclass(frozen=True, slots=True)
class Segment:
    """A key's points from one batch, encoded once for both the journal and the index."""

    key: str
    blob: bytes
    n: int
    step_min: int
    step_max: int
    summary: dict


_SMALL = 8


def prepare(key: str, steps: Any, timestamps: Any, values: Any) -> Segment:
    if len(steps) <= _SMALL:
        return _prepare_small(key, [int(x) for x in steps], [int(x) for x in timestamps],
                              [float(x) for x in values])
    s = np.ascontiguousarray(steps, dtype="<i8")
    t = np.ascontiguousarray(timestamps, dtype="<i8")
    v = np.ascontiguousarray(values, dtype="<f8")
    return Segment(key, encode(s, t, v), int(s.shape[0]), int(s.min()), int(s.max()),
                   summarize(s, t, v))


def from_blob(key: str, blob: bytes, arrays: tuple) -> Segment:
    """The Segment of a blob that was already encoded (and decoded into ``arrays``).

    A server receiving journal frames keeps the client's encoding instead of
    compressing the same points again (most of a 1,000-point request's CPU time).
    """
    s, t, v = (np.asarray(a) for a in arrays)
    return Segment(key, bytes(blob), int(s.shape[0]), int(s.min()), int(s.max()),
                   summarize(s, t, v))


def _prepare_small(key: str, s: list, t: list, v: list) -> Segment:
    """The same Segment without numpy: most flushes carry a handful of points per key."""
    n = len(s)
    if not (len(t) == n == len(v)) or n == 0:
        raise ValueError("steps, timestamps and values must have the same, non-zero length")
    if n == 1:  # a run's summary metrics, logged once: the common case at run creation
        x = v[0]
        m = x if x == x else None
        return Segment(key, _ONE.pack(b"S", _RAW, 1, s[0], t[0], x), 1, s[0], s[0],
                       {"value": x, "step": s[0], "timestamp": t[0], "min": m, "max": m,
                        "count": 1})
    blob = _HEADER.pack(b"S", _RAW, n) + struct.pack(f"<{n}q{n}q{n}d", *s, *t, *v)
    last = max(range(n), key=lambda i: (s[i], t[i], i))  # ties: the last logged, as lexsort
    finite = [x for x in v if x == x]
    summary = {"value": v[last], "step": s[last], "timestamp": t[last],
               "min": min(finite) if finite else None, "max": max(finite) if finite else None,
               "count": n}
    return Segment(key, blob, n, min(s), max(s), summary)


def summarize(steps: np.ndarray, timestamps: np.ndarray, values: np.ndarray) -> dict[str, Any]:
    """Latest (highest step, then latest timestamp), min, max (ignoring NaN) and count."""
    n = int(steps.shape[0])
    # lexsort's last key is primary: order by step, then timestamp.
    last = int(np.lexsort((timestamps, steps))[-1]) if n > 1 else 0
    finite = values[~np.isnan(values)]
    return {
        "value": float(values[last]), "step": int(steps[last]), "timestamp": int(timestamps[last]),
        "min": float(finite.min()) if finite.size else None,
        "max": float(finite.max()) if finite.size else None,
        "count": n,
    }
