"""Several runs across seeds: a version's seed group and the one-sided test between groups.

A version's **seed group** is its source run and every run of the same experiment with
the same params except the ``across`` params (default ``seed``): the rule by which
``cairn runs compare --across seed`` groups runs.  Only finished, active runs count
(a crashed run's last value is not a result), and the source run must have an ``across``
param (runs that do not say their seed are not taken for replicates).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from .. import stats

TESTS = ("welch", "mann-whitney")
PAGE = 1000
MAX_PAGES = 100  # an experiment's first 100,000 runs are searched for a version's seeds


@dataclass(frozen=True, slots=True)
class SeedGroup:
    """The runs of one side: their ids and why there are no more (``note``)."""

    run_ids: tuple[str, ...]
    runs: tuple[Any, ...]
    note: str = ""

    def values(self, metric: str) -> list[float]:
        return [float(r.metrics[metric]) for r in self.runs
                if metric in r.metrics and math.isfinite(float(r.metrics[metric]))]


def seed_group(client: Any, run_id: str | None, across: Sequence[str]) -> SeedGroup:
    """The seed group of run ``run_id`` (just itself when it names no ``across`` param)."""
    from ..entities import RunStatus
    from ..lineage import REPRODUCES_TAG
    from ..errors import NotFound

    if not run_id:
        return SeedGroup((), (), "no source run")
    try:
        run = client.get_run(run_id)
    except NotFound:
        return SeedGroup((), (), f"its source run {run_id} is not in this store")
    # The source run is held to the rule of the others: a crashed, running or deleted
    # run's last values are not a result.
    done = run.status == RunStatus.FINISHED and run.lifecycle == "active"
    why = "" if done else (f"its source run {run.id} is deleted" if run.lifecycle != "active"
                           else f"its source run {run.id} is {run.status.value}, not counted")
    if not any(a in run.params for a in across):
        if not done:
            return SeedGroup((), (), why)
        return SeedGroup((run.id,), (run,), f"its run has no param {' or '.join(across)}")
    key = stats.group_key(run.params, across)
    members = [run] if done else []
    token: str | None = None
    for _ in range(MAX_PAGES):
        page = client.search_runs([run.experiment_id], "", max_results=PAGE, page_token=token)
        for other in page:
            if other.id == run.id or other.status != RunStatus.FINISHED:
                continue
            if other.tags.get(REPRODUCES_TAG):
                continue  # a rerun of one of them by `cairn reproduce`: not another seed
            if any(a in other.params for a in across) and \
                    stats.group_key(other.params, across) == key:
                members.append(other)
        token = page.token
        if not token:
            break
    return SeedGroup(tuple(r.id for r in members), tuple(members), why)


@dataclass(frozen=True, slots=True)
class Test:
    """A one-sided two-sample test: is the candidate on the rule's side of the threshold?"""

    method: str
    alternative: str  # "greater" (candidate above the threshold) or "less"
    p_value: float | None
    statistic: float | None
    n_candidate: int
    n_baseline: int
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "alternative": self.alternative, "p_value": self.p_value,
                "statistic": self.statistic, "n_candidate": self.n_candidate,
                "n_baseline": self.n_baseline, "note": self.note}


def one_sided(candidate: Sequence[float], thresholds: Sequence[float], greater: bool,
              method: str = "welch") -> Test:
    """The p-value of "the candidate's values are not above (``greater``) or below the
    thresholds'": small when the candidate's side is clear beyond seed noise.

    Welch's t is symmetric under the null hypothesis, so its one-sided p-value is half the
    two-sided one when the difference points the way asked, and one minus that half when
    it points the other way; Mann-Whitney's U is discrete, so its one tail is summed.
    Both match scipy's ``alternative="greater"`` / ``"less"``."""
    alternative = "greater" if greater else "less"
    n_a, n_b = len(candidate), len(thresholds)
    if method == "welch":
        out = stats.welch(candidate, thresholds)
        diff = out.statistic  # t has the sign of mean(candidate) - mean(thresholds)
    else:  # U is discrete: its one-sided p-value is its own tail, not half of both
        out = stats.mann_whitney(candidate, thresholds, alternative)
        if out.p_value is None:
            return Test(method, alternative, None, out.statistic, n_a, n_b,
                        out.method.partition(": ")[2] or "no p-value")
        return Test(method, alternative, out.p_value, out.statistic, n_a, n_b)
    if out.p_value is None or diff is None:
        return Test(method, alternative, None, out.statistic, n_a, n_b,
                    out.method.partition(": ")[2] or "no p-value")
    half = out.p_value / 2.0
    toward = diff > 0 if greater else diff < 0
    return Test(method, alternative, half if toward else 1.0 - half, out.statistic, n_a, n_b)
