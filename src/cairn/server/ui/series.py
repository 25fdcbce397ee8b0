"""Metric series for charts: exact when they fit the chart, a min/max envelope when not.

A chart ``points`` pixels wide never needs more than about ``points`` values per
series; past that the server sends, per step bucket, the min and the max (so no spike
is hidden) and the last value (the line).  Zooming asks again for the visible step
range only, which soon fits and comes back exact.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...entities import MetricHistory
from ...store.wire import jfloat
from ..routes.metrics import envelope


def window(h: MetricHistory, step_min: int | None, step_max: int | None) -> MetricHistory:
    """The points of ``h`` with step_min <= step <= step_max (either end open)."""
    if step_min is None and step_max is None:
        return h
    keep = np.ones(len(h), dtype=bool)
    if step_min is not None:
        keep &= h.steps >= step_min
    if step_max is not None:
        keep &= h.steps <= step_max
    return MetricHistory(h.key, h.steps[keep], h.timestamps[keep], h.values[keep])


def series(h: MetricHistory, points: int, total: int) -> dict[str, Any]:
    """One key's chart data: ``exact`` with steps/timestamps/values, or an envelope.

    ``total`` is the whole series' length (before any zoom window), for the legend.
    """
    out: dict[str, Any] = {"key": h.key, "count": len(h), "total": total}
    if len(h) <= points:
        out.update(exact=True, steps=h.steps.tolist(), timestamps=h.timestamps.tolist(),
                   values=[jfloat(x) for x in h.values.tolist()])
        return out
    env = envelope(h, points)
    # Each bucket is drawn at its last point, in steps or in wall-clock time.
    last = np.searchsorted(h.steps, np.asarray(env["step_end"], dtype=h.steps.dtype),
                           side="right") - 1
    out.update(exact=False, steps=env["step_end"], timestamps=h.timestamps[last].tolist(),
               values=env["last"], min=env["min"], max=env["max"], n=env["n"])
    return out
