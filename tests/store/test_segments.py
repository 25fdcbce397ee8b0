"""Metric segments round-trip bit for bit, and the small-batch fast path equals the numpy path."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.errors import CorruptObject
from cairn.store import segments as S

finite_or_not = st.floats(allow_nan=True, allow_infinity=True)
ints = st.integers(min_value=-(2**62), max_value=2**62)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(ints, ints, finite_or_not), min_size=1, max_size=600))
def test_round_trip_and_fast_path(points):
    s, t, v = (list(x) for x in zip(*points))
    seg = S.prepare("k", s, t, v)
    ds, dt, dv = S.decode(seg.blob)
    assert ds.tolist() == s and dt.tolist() == t
    assert np.array_equal(dv.view(np.int64), np.asarray(v, dtype=np.float64).view(np.int64))
    ref = S.summarize(np.asarray(s), np.asarray(t), np.asarray(v, dtype=np.float64))
    fast = S._prepare_small("k", s, t, v).summary if len(s) <= S._SMALL else ref
    for summary in (seg.summary, fast):
        assert summary["count"] == ref["count"] and summary["step"] == ref["step"]
        assert summary["timestamp"] == ref["timestamp"]
        assert (math.isnan(summary["value"]) and math.isnan(ref["value"])) or summary["value"] == ref["value"]
        assert summary["min"] == ref["min"] and summary["max"] == ref["max"]
    assert (seg.step_min, seg.step_max) == (min(s), max(s))


def test_corrupt_segments_raise():
    blob = S.prepare("k", list(range(1000)), list(range(1000)), [1.0] * 1000).blob
    with pytest.raises(CorruptObject):
        S.decode(blob[:3])
    with pytest.raises(CorruptObject):
        S.decode(b"X" + blob[1:])
    with pytest.raises(Exception):  # noqa: B017  (a truncated zstd frame: zstd's own ZstdError today)
        S.decode(blob[:-10])
