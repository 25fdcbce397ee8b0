"""Run reads that every store with a SQL index answers the same way (local and server).

A mixin for stores with ``self.index`` (a SqlIndex), ``self.open()`` and
``self._stale_before()`` (the heartbeat cut-off below which a RUNNING run reads as KILLED).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, Sequence

from ...entities import MetricHistory, Run
from ...errors import InvalidArgument

if TYPE_CHECKING:
    from .index import SqlIndex


class _IndexedStore(Protocol):
    """What the mixin needs of the store it is mixed into."""

    @property
    def index(self) -> SqlIndex: ...

    def open(self) -> object: ...

    def _stale_before(self) -> int: ...


class IndexedRunReads:
    def search_runs(self: _IndexedStore, experiment_ids: Sequence[str] | None, filter: str = "",
                    order_by: Sequence[str] = (), max_results: int = 1000,
                    page_token: str | None = None,
                    lifecycle: str | None = "active") -> tuple[list[Run], str | None]:
        """A page of runs of ``lifecycle`` ("active", "deleted"; None: both)."""
        from ... import search

        if not isinstance(max_results, int) or isinstance(max_results, bool) or max_results < 1:
            raise InvalidArgument(f"max_results must be a positive integer, got {max_results!r}")
        flt = search.parse_filter(filter or "")
        order = search.parse_order_by(order_by or ())
        offset = search.decode_page_token(page_token) if page_token else 0
        self.open()
        runs, more = self.index.search(experiment_ids, flt, order, offset, max_results,
                                       self._stale_before(), _lifecycle(lifecycle))
        return runs, (search.encode_page_token(offset + max_results) if more else None)

    def get_metric_history(self: _IndexedStore, run_id: str, key: str) -> MetricHistory:
        self.open()
        return self.index.metric_history(run_id, key)

    def search_runs_page(self: _IndexedStore, experiment_ids: Sequence[str], flt: Any, order: Any,
                         offset: int, limit: int,
                         lifecycle: str | None = None) -> tuple[list[Run], bool]:
        """One page of runs for a parsed filter and order, of one ``lifecycle`` ("active",
        "deleted") or of both (None); and whether more follow.
        (:class:`~cairn.store.base.LifecycleSearch`: MLflow's ``run_view_type``.)"""
        from ... import search
        from . import tables as T

        self.open()
        query = search.compile_query(experiment_ids, flt, order, T, lifecycle=lifecycle,
                                     limit=limit + 1, offset=offset).with_only_columns(
            T.runs.c.id, maintain_column_froms=True)
        with self.index.session() as conn:
            found = [row[0] for row in conn.execute(query)]
            runs = self.index.load_runs(conn, found[:limit], stale_before=self._stale_before())
        return runs, len(found) > limit

    def run_states(self: _IndexedStore, run_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """run id -> (experiment id, lifecycle) for the runs the index has, in one query
        (:class:`~cairn.store.base.RunStateLookup`).  A local store may hold a run another
        process wrote that its index has not caught up with: callers read such a missing
        run with ``get_run``, which recovers it."""
        self.open()
        return self.index.run_states(run_ids)

    def update_run_row(self: _IndexedStore, run_id: str, **values: Any) -> None:
        """Set columns of a run's index row that no record batch carries (its name, its
        lifecycle, its heartbeat)."""
        import sqlalchemy as sa

        from . import tables as T

        self.open()
        with self.index.session(write=True) as conn:
            conn.execute(sa.update(T.runs).where(T.runs.c.id == run_id).values(**values))

    def list_keys(self: _IndexedStore, experiment_ids: Sequence[str] | None, kind: str, contains: str,
                  limit: int) -> list[str]:
        """Up to ``limit`` sorted param, metric or tag keys (``kind``) of the runs of
        ``experiment_ids`` (all when None) that contain ``contains``: one DISTINCT query.
        (:class:`~cairn.store.base.KeyListing`, the UI's column chooser.)"""
        import sqlalchemy as sa

        from . import tables as t

        tables = {"params": t.params, "metrics": t.latest_metrics, "tags": t.tags}
        if kind not in tables:
            raise InvalidArgument(f"kind must be one of {sorted(tables)}, got {kind!r}")
        table = tables[kind]
        q = sa.select(table.c.key).distinct()
        if experiment_ids is not None:
            q = q.join(t.runs, t.runs.c.id == table.c.run_id).where(
                t.runs.c.experiment_id.in_(list(experiment_ids)))
        if contains:
            q = q.where(table.c.key.contains(contains, autoescape=True))
        q = q.order_by(table.c.key).limit(limit)
        self.open()
        with self.index.session() as conn:
            return [row[0] for row in conn.execute(q)]


def _lifecycle(lifecycle: str | None) -> str | None:
    from ...entities import LIFECYCLES

    if lifecycle is not None and lifecycle not in LIFECYCLES:
        raise InvalidArgument(f"lifecycle must be one of {list(LIFECYCLES)} or None, "
                              f"got {lifecycle!r}")
    return lifecycle
