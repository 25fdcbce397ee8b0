"""Run reads that every store with a SQL index answers the same way (local and server).

A mixin for stores with ``self.index`` (a SqlIndex), ``self.open()`` and
``self._stale_before()`` (the heartbeat cut-off below which a RUNNING run reads as KILLED).
"""

from __future__ import annotations

from typing import Sequence

from ...entities import MetricHistory, Run
from ...errors import InvalidArgument


class IndexedRunReads:
    def search_runs(self, experiment_ids: Sequence[str] | None, filter: str = "",
                    order_by: Sequence[str] = (), max_results: int = 1000,
                    page_token: str | None = None) -> tuple[list[Run], str | None]:
        from ... import search

        if not isinstance(max_results, int) or isinstance(max_results, bool) or max_results < 1:
            raise InvalidArgument(f"max_results must be a positive integer, got {max_results!r}")
        flt = search.parse_filter(filter or "")
        order = search.parse_order_by(order_by or ())
        offset = search.decode_page_token(page_token) if page_token else 0
        self.open()
        runs, more = self.index.search(experiment_ids, flt, order, offset, max_results,
                                       self._stale_before())
        return runs, (search.encode_page_token(offset + max_results) if more else None)

    def get_metric_history(self, run_id: str, key: str) -> MetricHistory:
        self.open()
        return self.index.metric_history(run_id, key)
