"""Aggregation across seeds: group runs by every param but the seeds, compare the groups.

Each group's curve is the mean over its runs with a 95% t confidence band, on one step
grid (each run's value at a grid step is its last value at or before it).  Between
every two groups: Welch's t test and Mann-Whitney U on one number per run (the
metric's last, min or max value), with effect sizes and the n of each group.
"""

from __future__ import annotations

import itertools
from typing import Any, Sequence

import numpy as np

from ...entities import Run
from ...errors import InvalidArgument
from ...store.wire import jfloat
from ... import stats

MAX_GROUPS = 20


def group_runs(runs: Sequence[Run], across: Sequence[str]) -> list[dict[str, Any]]:
    """Runs grouped by their params other than ``across``, in order of first appearance."""
    ignore = set(across)
    keys = sorted({k for r in runs for k in r.params if k not in ignore})
    groups: dict[tuple, dict[str, Any]] = {}
    for r in runs:
        key = stats.group_key(r.params, ignore)
        groups.setdefault(key, {"params": dict(key), "runs": []})["runs"].append(r)
    out = list(groups.values())
    varying = [k for k in keys if len({g["params"].get(k) for g in out}) > 1]
    for i, g in enumerate(out):
        label = ", ".join(f"{k}={g['params'][k]}" for k in varying if k in g["params"])
        g["label"] = label or f"group {i + 1}"
    return out


def summary_value(run: Run, metric: str, summary: str) -> float:
    m = run.metric_summaries.get(metric)
    if m is None:
        return float("nan")
    return float({"last": m.value, "min": m.min, "max": m.max}[summary])


def curves(histories: list[Any], points: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """A shared step grid and each run's values on it (NaN before its first step)."""
    filled = [h for h in histories if len(h)]
    if not filled:
        return np.zeros(0, dtype=np.int64), [np.zeros(0) for _ in histories]
    lo = min(int(h.steps[0]) for h in filled)
    hi = max(int(h.steps[-1]) for h in filled)
    all_steps = np.unique(np.concatenate([h.steps for h in filled]))
    grid = all_steps if len(all_steps) <= points else np.unique(
        np.linspace(lo, hi, points).round().astype(np.int64))
    out = []
    for h in histories:
        if not len(h):
            out.append(np.full(len(grid), np.nan))
            continue
        idx = np.searchsorted(h.steps, grid, side="right") - 1
        vals = np.where(idx >= 0, h.values[np.clip(idx, 0, None)], np.nan)
        vals[grid > h.steps[-1]] = np.nan  # a run that stopped early says nothing later
        out.append(vals)
    return grid, out


def aggregate(runs: Sequence[Run], history, metric: str, across: Sequence[str],
              summary: str, points: int) -> dict[str, Any]:
    """The groups, their mean curves with bands, and the pairwise tests."""
    groups = group_runs(runs, across)
    if len(groups) > MAX_GROUPS:
        raise InvalidArgument(f"these runs make {len(groups)} groups; compare at most "
                              f"{MAX_GROUPS} (add the params that vary by seed to 'across')")
    out_groups = []
    finals: list[np.ndarray] = []
    for g in groups:
        members = g["runs"]
        grid, values = curves([history(r.id, metric) for r in members], points)
        matrix = np.vstack(values) if values and len(grid) else np.zeros((len(members), 0))
        mean, lo, hi, n = stats.mean_ci(matrix) if matrix.size else (grid, grid, grid, grid)
        final = np.array([summary_value(r, metric, summary) for r in members])
        finals.append(final)
        ok = final[np.isfinite(final)]
        out_groups.append({
            "label": g["label"], "params": g["params"], "runs": [r.id for r in members],
            "n": len(members),
            "seeds": {k: sorted({r.params[k] for r in members if k in r.params})
                      for k in across},
            "final": {"mean": jfloat(float(ok.mean())) if len(ok) else None,
                      "std": jfloat(float(ok.std(ddof=1))) if len(ok) > 1 else None,
                      "n": int(len(ok))},
            "curve": {"steps": grid.tolist(), "mean": _floats(mean), "lo": _floats(lo),
                      "hi": _floats(hi), "n": np.asarray(n).astype(int).tolist()},
        })
    tests = []
    for (i, a), (j, b) in itertools.combinations(enumerate(finals), 2):
        w, u = stats.welch(a, b), stats.mann_whitney(a, b)
        tests.append({"a": i, "b": j, "n_a": int(np.isfinite(a).sum()),
                      "n_b": int(np.isfinite(b).sum()),
                      "welch": {"t": _f(w.statistic), "p": _f(w.p_value), "cohen_d": _f(w.effect),
                                "method": w.method},
                      "mann_whitney": {"u": _f(u.statistic), "p": _f(u.p_value),
                                       "rank_biserial": _f(u.effect), "method": u.method}})
    return {"metric": metric, "across": list(across), "summary": summary,
            "groups": out_groups, "tests": tests}


def _f(x: float | None) -> Any:
    return None if x is None else jfloat(float(x))


def _floats(a: np.ndarray) -> list[Any]:
    return [None if x != x else jfloat(x) for x in np.asarray(a, dtype=np.float64).tolist()]
