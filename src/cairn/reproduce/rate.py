"""The reproducibility rate: of the runs ``cairn reproduce`` tried, the share whose latest
attempt reproduced them (what ``cairn kpi`` shows)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable

from .report import REPRODUCES_TAG, VERDICT_TAG


@dataclass(frozen=True, slots=True)
class Rate:
    runs: int = 0             # original runs with at least one attempt
    reproduced: int = 0
    differs: int = 0
    failed: int = 0

    @property
    def rate(self) -> float | None:
        return None if self.runs == 0 else self.reproduced / self.runs

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rate": self.rate}


def attempts(client: Any, experiments: Any = None, since: int | None = None,
             until: int | None = None) -> dict[str, tuple[int, str]]:
    """original run id -> (start time, verdict) of its latest attempt in the window."""
    flt = f"tags.`{REPRODUCES_TAG}` IS NOT NULL"
    if since is not None:
        flt += f" AND attributes.start_time >= {int(since)}"
    if until is not None:
        flt += f" AND attributes.start_time <= {int(until)}"
    latest: dict[str, tuple[int, str]] = {}
    token = None
    while True:
        page = client.search_runs(experiments, flt, max_results=1000, page_token=token)
        for r in page:
            original, verdict = r.tags.get(REPRODUCES_TAG), r.tags.get(VERDICT_TAG, "failed")
            if original and (original not in latest or latest[original][0] <= r.start_time):
                latest[original] = (r.start_time, verdict)
        token = page.token
        if not token:
            return latest


def rate_of(latest: dict[str, tuple[int, str]], originals: Iterable[str] | None = None) -> Rate:
    """The rate over ``latest`` (from :func:`attempts`), or over the ``originals`` in it."""
    keep = set(latest) if originals is None else set(originals) & set(latest)
    verdicts = [latest[o][1] for o in keep]
    return Rate(len(verdicts), verdicts.count("reproduced"), verdicts.count("differs"),
                sum(1 for v in verdicts if v not in ("reproduced", "differs")))


def reproducibility(client: Any, experiments: Any = None, since: int | None = None,
                    until: int | None = None) -> Rate:
    return rate_of(attempts(client, experiments, since, until))
