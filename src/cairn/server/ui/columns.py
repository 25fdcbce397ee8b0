"""Which params, metrics and tags the runs of some experiments have (the column chooser).

Asked lazily, with a substring and a limit, so that an experiment with 10,000 metric
keys never sends them all at once.  SQL-backed stores answer with one DISTINCT query;
others (the in-memory store) from a sample of runs.
"""

from __future__ import annotations

from typing import Any, Sequence

KINDS = ("params", "metrics", "tags")
SAMPLE_RUNS = 2000


def list_keys(store: Any, engine: Any, experiment_ids: Sequence[str] | None, kind: str,
              contains: str, limit: int) -> tuple[list[str], bool]:
    """Sorted keys of ``kind`` containing ``contains``; and whether more were left out."""
    keys = (_sql_keys(engine, experiment_ids, kind, contains, limit + 1) if engine is not None
            else _sampled_keys(store, experiment_ids, kind, contains, limit + 1))
    return keys[:limit], len(keys) > limit


def _sql_keys(engine, experiment_ids, kind: str, contains: str, n: int) -> list[str]:
    import sqlalchemy as sa

    from ...store.sql import tables as t
    from ...store.sql.engine import session

    table = {"params": t.params, "metrics": t.latest_metrics, "tags": t.tags}[kind]
    q = sa.select(table.c.key).distinct()
    if experiment_ids is not None:
        q = q.join(t.runs, t.runs.c.id == table.c.run_id).where(
            t.runs.c.experiment_id.in_(list(experiment_ids)))
    if contains:
        q = q.where(table.c.key.contains(contains, autoescape=True))
    q = q.order_by(table.c.key).limit(n)
    with session(engine) as conn:
        return [row[0] for row in conn.execute(q)]


def _sampled_keys(store, experiment_ids, kind: str, contains: str, n: int) -> list[str]:
    runs, _ = store.search_runs(experiment_ids, "", (), SAMPLE_RUNS)
    seen: set[str] = set()
    for r in runs:
        seen.update({"params": r.params, "metrics": r.metrics, "tags": r.tags}[kind])
    return sorted(k for k in seen if contains in k)[:n]
