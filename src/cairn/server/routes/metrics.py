"""Metric history: exact, or downsampled to a min/max envelope per step bucket.

``GET /api/v1/runs/{run_id}/metrics/history?key=loss`` returns every point.  With
``buckets=N`` the step range (or ``step_min``..``step_max``, for zooming) is cut into N
equal step buckets and each non-empty one reports first/last step, min, max (NaN
ignored), the last value and the count: a chart drawn from it hides no spike.
``Accept: application/vnd.cairn.segment`` returns the exact points as one columnar
segment (``docs/formats.md``), lossless and compact: what the Python client uses.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ...entities import MetricHistory
from ...errors import InvalidArgument
from ...store import segments as seglib
from ...store.wire import INT64_MAX, INT64_MIN, SEGMENT_TYPE, jfloat
from ..auth import Principal
from ..context import ctx, principal
from ._common import require_run

router = APIRouter(tags=["metrics"])
User = Annotated[Principal, Depends(principal)]


class History(BaseModel):
    key: str
    count: int
    steps: list[int]
    timestamps: list[int]
    values: list[Any]


class Envelope(BaseModel):
    key: str
    count: int
    buckets: int
    step_start: list[int]
    step_end: list[int]
    min: list[Any]
    max: list[Any]
    last: list[Any]
    n: list[int]


def envelope(h: MetricHistory, buckets: int) -> dict[str, Any]:
    """Equal-width step buckets over ``h``; per non-empty bucket: steps, min, max, last, n."""
    s, v = h.steps, h.values
    n = len(h)
    if n == 0:
        return {"step_start": [], "step_end": [], "min": [], "max": [], "last": [], "n": []}
    lo, hi = int(s[0]), int(s[-1])
    width = (hi - lo) / buckets if hi > lo else 1.0
    if hi > lo:  # float math: steps may span the whole int64 range
        idx = np.clip(((s.astype(np.float64) - float(lo)) / width).astype(np.int64), 0, buckets - 1)
    else:
        idx = np.zeros(n, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, idx[1:] != idx[:-1]])  # s is sorted: runs of a bucket
    ends = np.r_[starts[1:], n] - 1
    with np.errstate(invalid="ignore"):
        mins = np.fmin.reduceat(v, starts)
        maxs = np.fmax.reduceat(v, starts)
    return {"step_start": s[starts].tolist(), "step_end": s[ends].tolist(),
            "min": [jfloat(x) for x in mins.tolist()], "max": [jfloat(x) for x in maxs.tolist()],
            "last": [jfloat(x) for x in v[ends].tolist()], "n": (ends - starts + 1).tolist()}


@router.get("/runs/{run_id}/metrics/history", response_model=History | Envelope,
            responses={200: {"content": {SEGMENT_TYPE: {}}}},
            summary="One metric's history: exact, or a min/max envelope with buckets=N")
def history(request: Request, p: User, run_id: str,
            key: Annotated[str, Query(min_length=1, max_length=250)],
            buckets: Annotated[int | None, Query(ge=1, le=100_000)] = None,
            step_min: Annotated[int | None, Query(ge=INT64_MIN, le=INT64_MAX)] = None,
            step_max: Annotated[int | None, Query(ge=INT64_MIN, le=INT64_MAX)] = None):
    c = ctx(request)
    if len(run_id) > 64:
        raise InvalidArgument("run id is longer than 64 characters")
    require_run(c, p, run_id)
    h = c.store.get_metric_history(run_id, key)
    if step_min is not None or step_max is not None:
        lo = INT64_MIN if step_min is None else step_min
        hi = INT64_MAX if step_max is None else step_max
        if lo > hi:
            raise InvalidArgument(f"step_min {lo} is greater than step_max {hi}")
        keep = (h.steps >= lo) & (h.steps <= hi)
        h = MetricHistory(key, h.steps[keep], h.timestamps[keep], h.values[keep])
    if buckets is not None:
        return JSONResponse({"key": key, "count": len(h), "buckets": buckets,
                             **envelope(h, buckets)})
    if SEGMENT_TYPE in request.headers.get("accept", ""):
        return Response(seglib.encode(h.steps, h.timestamps, h.values), media_type=SEGMENT_TYPE)
    return JSONResponse({"key": key, "count": len(h), "steps": h.steps.tolist(),
                         "timestamps": h.timestamps.tolist(),
                         "values": [jfloat(x) for x in h.values.tolist()]})
