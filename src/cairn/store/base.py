"""The storage protocol every backend implements (memory, local, SQL, HTTP).

Narrow on purpose: one batch write primitive, paginated search, a handful of
reads.  A conformance suite (tests/store/test_conformance.py) runs over every
implementation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Protocol, Sequence, runtime_checkable

from ..entities import Experiment, FileEntry, MetricHistory, RecordBatch, Run

if TYPE_CHECKING:  # pragma: no cover
    from ..cas.odb import ObjectStore


@runtime_checkable
class Store(Protocol):
    uri: str

    @property
    def objects(self) -> "ObjectStore": ...

    def create_experiment(self, name: str, tags: Mapping[str, str] | None = None) -> Experiment: ...

    def get_experiment(self, experiment_id: str) -> Experiment: ...

    def get_experiment_by_name(self, name: str) -> Experiment | None: ...

    def list_experiments(self) -> list[Experiment]: ...

    def write(self, batch: RecordBatch) -> None:
        """Apply one batch durably; a (writer_id, seq) already applied is ignored."""

    def heartbeat(self, run_ids: Sequence[str], when: int) -> None: ...

    def get_run(self, run_id: str) -> Run: ...

    def search_runs(self, experiment_ids: Sequence[str] | None, filter: str = "",
                    order_by: Sequence[str] = (), max_results: int = 1000,
                    page_token: str | None = None) -> tuple[list[Run], str | None]: ...

    def get_metric_history(self, run_id: str, key: str) -> MetricHistory: ...

    def list_artifacts(self, run_id: str) -> list[FileEntry]: ...

    def close(self) -> None: ...
