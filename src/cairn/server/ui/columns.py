"""Which params, metrics and tags the runs of some experiments have (the column chooser).

Asked lazily, with a substring and a limit, so that an experiment with 10,000 metric
keys never sends them all at once.  The store answers
(:class:`~cairn.store.base.KeyListing`): SQL-backed stores with one DISTINCT query, the
in-memory store from a sample of runs; any other store from a sample of its runs here.
"""

from __future__ import annotations

from typing import Any, Sequence

from ...store.base import KeyListing

KINDS = ("params", "metrics", "tags")
SAMPLE_RUNS = 2000


def list_keys(store: Any, experiment_ids: Sequence[str] | None, kind: str,
              contains: str, limit: int) -> tuple[list[str], bool]:
    """Sorted keys of ``kind`` containing ``contains``; and whether more were left out."""
    keys = (store.list_keys(experiment_ids, kind, contains, limit + 1)
            if isinstance(store, KeyListing)
            else _sampled_keys(store, experiment_ids, kind, contains, limit + 1))
    return keys[:limit], len(keys) > limit


def _sampled_keys(store: Any, experiment_ids: Sequence[str] | None, kind: str, contains: str,
                  n: int) -> list[str]:
    runs, _ = store.search_runs(experiment_ids, "", (), SAMPLE_RUNS)
    seen: set[str] = set()
    for r in runs:
        seen.update({"params": r.params, "metrics": r.metrics, "tags": r.tags}[kind])
    return sorted(k for k in seen if contains in k)[:n]
