"""The storage protocol every backend implements (memory, local, SQL, HTTP).

Narrow on purpose: one batch write primitive, paginated search, a handful of
reads.  A conformance suite (tests/store/test_conformance.py) runs over every
implementation.  What only some stores can do (an SQL index, a ping, a local
directory, a server's REST API) is declared below as small capability protocols;
callers ask ``isinstance(store, Indexed)`` and so on.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Protocol, Sequence, runtime_checkable

from ..entities import Experiment, FileEntry, MetricHistory, RecordBatch, Run

if TYPE_CHECKING:  # pragma: no cover
    from ..cas.odb import ObjectStore
    from .sql.index import SqlIndex


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


# -- optional abilities ---------------------------------------------------------------
# Services, the server and the UI ask ``isinstance(store, Capability)`` on these instead of
# probing attributes by name.  Runtime checks only see that the members exist; the
# signatures are for readers and type checkers.


@runtime_checkable
class Openable(Protocol):
    """A store that prepares itself (creates or checks its index, replays journals) on
    ``open()``; idempotent, and every store's reads call it themselves."""

    def open(self) -> Any: ...


@runtime_checkable
class Indexed(Protocol):
    """A store whose runs, registry, data sets and users live in an SQL index
    (:class:`~cairn.store.sql.index.SqlIndex`: SQLite locally, PostgreSQL on a server)."""

    @property
    def index(self) -> "SqlIndex": ...

    def open(self) -> Any: ...


@runtime_checkable
class Pingable(Protocol):
    """A store that can check its database answers (the server's readiness probe)."""

    def ping(self) -> None: ...


@runtime_checkable
class RunExperimentLookup(Protocol):
    """run id -> experiment id for many runs in one query (the server's role checks)."""

    def run_experiment_ids(self, run_ids: Sequence[str]) -> dict[str, str]: ...


@runtime_checkable
class RunStateLookup(Protocol):
    """run id -> (experiment id, lifecycle) for many runs in one query: what a write
    through MLflow's routes checks first (MLflow refuses writes to a deleted run)."""

    def run_states(self, run_ids: Sequence[str]) -> dict[str, tuple[str, str]]: ...


@runtime_checkable
class PreparedWrites(Protocol):
    """A store that applies a batch whose metric segments were already encoded (off the
    request's event loop); returns False when the batch was a replay."""

    def write_prepared(self, batch: RecordBatch, segs: list) -> bool: ...


@runtime_checkable
class Directory(Protocol):
    """A store kept in a local directory (its caches and data set remotes live there)."""

    root: Path


@runtime_checkable
class DeferredIndex(Protocol):
    """A store that may apply index writes a little later than the journal (group commit);
    ``index_delay = 0.0`` applies them before each write returns."""

    index_delay: float | None


@runtime_checkable
class ExperimentUpdates(Protocol):
    """Rename, delete/restore (lifecycle) and retag experiments, and set run columns that
    no record batch carries (MLflow's run name and lifecycle)."""

    def update_experiment(self, exp: Experiment, name: str, lifecycle: str,
                          tags: Mapping[str, str]) -> Experiment: ...

    def update_run_row(self, run_id: str, **values: Any) -> None: ...


@runtime_checkable
class ExperimentChanges(Protocol):
    """Rename an experiment, and delete or restore it (soft: ``lifecycle`` "deleted" or
    "active"; its runs follow).  Every store has these; a server checks the caller's role."""

    def rename_experiment(self, experiment_id: str, name: str) -> Experiment: ...

    def set_experiment_lifecycle(self, experiment_id: str, lifecycle: str) -> Experiment: ...


@runtime_checkable
class LifecycleSearch(Protocol):
    """Search runs of one lifecycle ("active", "deleted") or of both (None), with a parsed
    filter and order (:mod:`cairn.search`); ``(runs, more)``."""

    def search_runs_page(self, experiment_ids: Sequence[str], flt: Any, order: Any, offset: int,
                         limit: int, lifecycle: str | None = None) -> tuple[list[Run], bool]: ...


@runtime_checkable
class KeyListing(Protocol):
    """Up to ``limit`` sorted param, metric or tag keys (``kind``) of some experiments' runs
    that contain a substring (the UI's column chooser)."""

    def list_keys(self, experiment_ids: Sequence[str] | None, kind: str, contains: str,
                  limit: int) -> list[str]: ...


@runtime_checkable
class OfflineExperiments(Protocol):
    """A store that can name an experiment while its server is out of reach, so that a run
    starts offline: its records (its creation first) wait in a spool, and on arrival the
    run joins the server's experiment of that name, or creates it."""

    def offline_experiment(self, name: str) -> Experiment: ...


@runtime_checkable
class RemoteServer(Protocol):
    """A client of a Cairn server: REST calls and a local spool (:class:`HttpStore`)."""

    @property
    def spool(self) -> Any: ...

    def call(self, method: str, path: str, **kw: Any) -> Any: ...
