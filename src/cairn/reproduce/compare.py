"""The original and its rerun side by side: every metric with its tolerance, params, data.

Tolerances: ``KEY=TOL`` where KEY is a metric name or an fnmatch pattern (``val_*``, ``*``)
and TOL an absolute difference (``1e-6``, ``0``), a relative one (``0.1%``), or ``inf`` /
``ignore`` (shown, not judged).  A metric's tolerance is the one naming it exactly, else
the first pattern that matches, else the default: exact (``0``) for a seeded run (a param
whose name contains "seed", or ``random_state``), else :data:`DEFAULT_RELATIVE`.  System
metrics (``system/...``) are shown and not judged unless a tolerance names them.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Sequence

from ..entities import Run
from ..errors import InvalidArgument

DEFAULT_RELATIVE = 1e-6


@dataclass(frozen=True, slots=True)
class Tolerance:
    absolute: float = 0.0
    relative: float = 0.0
    judged: bool = True
    source: str = "default"      # the option that set it, or "default"

    def __str__(self) -> str:
        if not self.judged:
            return "not judged"
        if self.relative:
            return f"{self.relative:.3g} relative"
        return "exact" if self.absolute == 0 else f"{self.absolute:.3g}"

    def ok(self, a: float, b: float) -> bool:
        if not self.judged or (math.isnan(a) and math.isnan(b)) or a == b:
            return True
        if math.isnan(a) or math.isnan(b) or math.isinf(a) or math.isinf(b):
            return False
        return abs(a - b) <= self.absolute + self.relative * max(abs(a), abs(b))


def parse_tolerances(items: Iterable[str]) -> list[tuple[str, Tolerance]]:
    """``["val_loss=1e-6", "*=0.5%"]`` as (pattern, tolerance) pairs, in order."""
    out = []
    for item in items:
        if not isinstance(item, str) or "=" not in item:
            raise InvalidArgument(f"a tolerance is KEY=TOL (e.g. val_loss=1e-6, '*=0.1%', "
                                  f"time=ignore), got {item!r}")
        key, _, text = item.rpartition("=")
        key, text = key.strip(), text.strip().lower()
        if not key:
            raise InvalidArgument(f"tolerance {item!r} names no metric")
        try:
            if text in ("inf", "ignore", "skip"):
                tol = Tolerance(judged=False, source=item)
            elif text.endswith("%"):
                tol = Tolerance(relative=float(text[:-1]) / 100, source=item)
            else:
                tol = Tolerance(absolute=float(text), source=item)
        except ValueError:
            raise InvalidArgument(f"tolerance {item!r}: {text!r} is not a number, a "
                                  "percentage or 'ignore'") from None
        if math.isnan(tol.absolute) or tol.absolute < 0 or tol.relative < 0 \
                or math.isnan(tol.relative):
            raise InvalidArgument(f"tolerance {item!r} must be a non-negative number")
        out.append((key, tol))
    return out


def seeded(run: Run) -> bool:
    return any("seed" in k.lower() or k.lower() == "random_state" for k in run.params)


def tolerance_for(key: str, rules: Sequence[tuple[str, Tolerance]], seeded_run: bool) -> Tolerance:
    for pattern, tol in rules:
        if pattern == key:
            return tol
    system = key.startswith("system/")
    for pattern, tol in rules:
        # A system metric (CPU, memory) is judged only by a pattern that names system/...:
        # "*=0" is about the model's metrics.
        if (not system or pattern.startswith("system/")) and fnmatch.fnmatchcase(key, pattern):
            return tol
    if system:
        return Tolerance(judged=False, source="system metric")
    if seeded_run:
        return Tolerance(source="default (seeded run: exact)")
    return Tolerance(relative=DEFAULT_RELATIVE, source="default (unseeded run)")


@dataclass(frozen=True, slots=True)
class MetricRow:
    key: str
    original: float | None        # the last value
    rerun: float | None
    max_diff: float | None        # the largest |difference| over the aligned history
    points: int                   # points compared
    tolerance: str
    ok: bool
    judged: bool
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        # Strict JSON (no NaN or Infinity): a value that is not a finite number is null, and
        # ``problem`` says why when that matters to the verdict.
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in asdict(self).items()}


def compare_metrics(real: Any, original: Run, rerun_client: Any, rerun: Run,
                    rules: Sequence[tuple[str, Tolerance]]) -> list[MetricRow]:
    import numpy as np

    seeded_run = seeded(original)
    rows = []
    for key in sorted(set(original.metrics) | set(rerun.metrics)):
        tol = tolerance_for(key, rules, seeded_run)
        if key not in rerun.metrics or key not in original.metrics:
            where = "the rerun" if key not in rerun.metrics else "the original"
            rows.append(MetricRow(key, original.metrics.get(key), rerun.metrics.get(key), None,
                                  0, str(tol), not tol.judged, tol.judged,
                                  f"not logged by {where}"))
            continue
        a = real.get_metric_history(original.id, key)
        b = rerun_client.get_metric_history(rerun.id, key)
        last_a = float(a.values[-1]) if len(a) else None
        last_b = float(b.values[-1]) if len(b) else None
        if len(a) != len(b) or not np.array_equal(a.steps, b.steps):
            rows.append(MetricRow(key, last_a, last_b, None, 0, str(tol), not tol.judged,
                                  tol.judged, f"steps differ: {len(a)} points vs {len(b)}"))
            continue
        diffs = np.abs(a.values - b.values)
        both_nan = np.isnan(a.values) & np.isnan(b.values)
        diffs = np.where(both_nan | (a.values == b.values), 0.0, diffs)
        one_nan = np.isnan(a.values) != np.isnan(b.values)
        worst = float(np.nanmax(diffs)) if len(diffs) and not np.isnan(diffs).all() else 0.0
        if one_nan.any():
            worst = math.inf
        ok = all(tol.ok(float(x), float(y)) for x, y in zip(a.values, b.values))
        problem = None
        if one_nan.any() and not ok:
            problem = f"NaN in one run only, at {int(one_nan.sum())} of {len(a)} points"
        rows.append(MetricRow(key, last_a, last_b, worst, len(a), str(tol), ok, tol.judged,
                              problem))
    return rows


def compare_params(original: Run, rerun: Run) -> list[dict[str, Any]]:
    keys = sorted(set(original.params) | set(rerun.params))
    return [{"key": k, "original": original.params.get(k), "rerun": rerun.params.get(k)}
            for k in keys if original.params.get(k) != rerun.params.get(k)]


def compare_data(real: Any, original: Run, rerun_client: Any, rerun: Run) -> list[dict[str, Any]]:
    """Inputs by role and content digest, and the versions each run produced, by name."""
    from ..errors import CairnError

    def inputs(client: Any, run_id: str) -> list[tuple[str, str, str]]:
        try:
            rows = client.data.catalog.run_inputs(run_id)
        except (CairnError, AttributeError):
            return []
        return sorted((role, f"{n}@{v}", client.data.version(f"{n}@{v}").tree)
                      for n, v, role in rows)

    def outputs(client: Any, run_id: str) -> dict[str, str]:
        try:
            return {v.name: v.tree for v in client.data.catalog.versions_by_run(run_id)}
        except (CairnError, AttributeError):
            return {}

    out = []
    a, b = inputs(real, original.id), inputs(rerun_client, rerun.id)
    if sorted((r, t) for r, _, t in a) != sorted((r, t) for r, _, t in b):
        out.append({"what": "inputs", "original": [f"{ref} ({role}) {t[:12]}" for role, ref, t in a],
                    "rerun": [f"{ref} ({role}) {t[:12]}" for role, ref, t in b]})
    oa, ob = outputs(real, original.id), outputs(rerun_client, rerun.id)
    for name in sorted(set(oa) & set(ob)):
        if oa[name] != ob[name]:
            out.append({"what": f"output {name}", "original": oa[name], "rerun": ob[name]})
    return out
