"""The in-memory twin of the store protocol: for tests and ``memory://`` URIs.

Same semantics as the SQL-backed stores (the conformance suite checks that), no
persistence.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from .. import clock
from ..entities import (
    LIFECYCLES, RUN_LIFECYCLE_TAG, RUN_NAME_TAG, Experiment, FileEntry, LatestMetric, MetricHistory,
    RecordBatch, Run, RunStatus, split_row_tags,
)
from ..errors import AlreadyExists, InvalidArgument, NotFound, RunFinished
from . import options
from .validation import check_batch_text, check_experiment_name, check_json

if TYPE_CHECKING:
    from ..cas.odb import ObjectStore


class MemoryStore:
    def __init__(self, name: str = "", *, heartbeat_timeout: float | None = None) -> None:
        self.uri = f"memory://{name}"
        self.heartbeat_timeout = heartbeat_timeout  # None: options.DEFAULTS, at each use
        self._lock = threading.RLock()
        self._experiments: dict[str, Experiment] = {}
        self._runs: dict[str, Run] = {}
        self._series: dict[tuple[str, str], list[tuple]] = {}
        self._artifacts: dict[str, dict[str, FileEntry]] = {}
        self._applied: dict[str, int] = {}
        # (run, "name"/"lifecycle") -> (time, writer) of the change applied (SqlIndex's "r")
        self._stamps: dict[tuple[str, str], tuple[int, str]] = {}
        self._own_deletes: set[str] = set()  # runs deleted on their own (not by experiment)
        self._objects: ObjectStore | None = None

    @property
    def objects(self) -> ObjectStore:
        if self._objects is None:
            from ..cas.backends.memory import MemoryBackend
            from ..cas.odb import ObjectStore

            self._objects = ObjectStore(MemoryBackend())
        return self._objects

    def open(self) -> "MemoryStore":
        """Nothing to prepare (:class:`~cairn.store.base.Openable`)."""
        return self

    def ping(self) -> None:
        """Always answers (:class:`~cairn.store.base.Pingable`)."""

    def close(self) -> None:
        pass

    # -- experiments -----------------------------------------------------
    def create_experiment(self, name: str, tags: Mapping[str, str] | None = None,
                          experiment_id: str | None = None) -> Experiment:
        check_experiment_name(name)
        check_json(dict(tags or {}), "experiment tags")
        with self._lock:
            if any(e.name == name for e in self._experiments.values()):
                raise AlreadyExists(f"an experiment named {name!r} already exists")
            exp = Experiment(experiment_id or clock.new_experiment_id(), name, clock.now_ms(), "active",
                             dict(tags or {}))
            self._experiments[exp.id] = exp
            return exp

    def get_experiment(self, experiment_id: str) -> Experiment:
        try:
            return self._experiments[str(experiment_id)]
        except KeyError:
            raise NotFound(f"experiment {experiment_id!r} does not exist") from None

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        return next((e for e in self._experiments.values() if e.name == name), None)

    def list_experiments(self) -> list[Experiment]:
        return sorted(self._experiments.values(), key=lambda e: (e.created_at, e.name))

    def rename_experiment(self, experiment_id: str, name: str) -> Experiment:
        """(:class:`~cairn.store.base.ExperimentChanges`.)"""
        check_experiment_name(name)
        with self._lock:
            exp = self.get_experiment(experiment_id)
            if any(e.name == name and e.id != exp.id for e in self._experiments.values()):
                raise AlreadyExists(f"Experiment(name={name}) already exists")
            new = self._experiments[exp.id] = dataclasses.replace(exp, name=name)
            for rid, run in self._runs.items():
                if run.experiment_id == exp.id:
                    self._runs[rid] = dataclasses.replace(run, experiment=name)
            return new

    def set_experiment_lifecycle(self, experiment_id: str, lifecycle: str) -> Experiment:
        """(:class:`~cairn.store.base.ExperimentChanges`; its runs follow.)"""
        if lifecycle not in LIFECYCLES:
            raise InvalidArgument(f"lifecycle must be one of {list(LIFECYCLES)}, got {lifecycle!r}")
        with self._lock:
            exp = self.get_experiment(experiment_id)
            new = self._experiments[exp.id] = dataclasses.replace(exp, lifecycle=lifecycle)
            for rid, run in self._runs.items():
                # A run deleted on its own stays deleted when its experiment is restored.
                if run.experiment_id == exp.id and not (lifecycle == "active"
                                                        and rid in self._own_deletes):
                    self._runs[rid] = dataclasses.replace(run, lifecycle=lifecycle)
            return new

    # -- writes ----------------------------------------------------------
    def write(self, batch: RecordBatch, fsync: bool | None = None) -> None:
        check_batch_text(batch)
        with self._lock:
            if self._applied.get(batch.writer_id, 0) >= batch.seq:
                return
            rid = batch.run_id
            run = self._runs.get(rid)
            if batch.create is not None:
                c = batch.create
                if run is None:
                    exp = self.get_experiment(c["experiment_id"])
                    run = Run(id=rid, name=c.get("name") or rid[:8], experiment_id=exp.id,
                              experiment=exp.name, status=RunStatus.RUNNING,
                              start_time=c.get("start_time", batch.time), end_time=None,
                              user=c.get("user", ""), parent_id=c.get("parent_id"),
                              heartbeat=batch.time)
            elif run is None:
                raise NotFound(f"run {rid!r} does not exist")
            else:
                if (batch.params or batch.metrics or batch.status is not None) and run.end_time is not None:
                    raise RunFinished(f"run {rid} is {run.status}: its params, metrics and status "
                                      "are immutable (tags and notes stay editable)")
                for k, v in batch.params.items():
                    if k in run.params and run.params[k] != v:
                        raise InvalidArgument(
                            f"param {k!r} of run {rid} is already {run.params[k]!r}; params are "
                            f"immutable and cannot be changed to {v!r}")
            row: dict[str, Any] = {}
            if RUN_NAME_TAG in batch.tags or RUN_LIFECYCLE_TAG in batch.tags:
                batch, name, lifecycle = split_row_tags(batch)  # a rename, a delete/restore
                for k, change in (("name", name), ("lifecycle", lifecycle)):
                    # The latest change wins, whatever order batches come in (SqlIndex too).
                    when = (batch.time, batch.writer_id)
                    if change is not None and self._stamps.get((rid, k), when) <= when:
                        row[k] = change
                        self._stamps[rid, k] = when
                if "lifecycle" in row:
                    (self._own_deletes.add if row["lifecycle"] == "deleted"
                     else self._own_deletes.discard)(rid)
            params = {**batch.params, **run.params}
            tags = {**run.tags, **batch.tags}
            for k in batch.deleted_tags:
                tags.pop(k, None)
            summaries = dict(run.metric_summaries)
            for key, (s, t, v) in batch.metrics.items():
                steps = np.asarray(s, dtype=np.int64)
                times = np.asarray(t, dtype=np.int64)
                values = np.asarray(v, dtype=np.float64)
                self._series.setdefault((rid, key), []).append((steps, times, values))
                summaries[key] = _merge(summaries.get(key), key, steps, times, values)
            if batch.artifacts:
                arts = self._artifacts.setdefault(rid, {})
                for a in batch.artifacts:
                    arts[a.path] = a
            changes: dict[str, Any] = dict(
                params=params, tags=tags, metric_summaries=summaries,
                metrics={k: m.value for k, m in summaries.items()},
                heartbeat=max(run.heartbeat or 0, batch.time), **row)
            if batch.env is not None:
                changes["env"] = dict(batch.env)
            if batch.status is not None:
                changes["status"] = batch.status
                changes["end_time"] = batch.end_time if batch.status.terminal else None
            elif run.end_time is None:
                changes["status"] = RunStatus.RUNNING
            self._runs[rid] = dataclasses.replace(run, **changes)
            self._applied[batch.writer_id] = batch.seq

    def heartbeat(self, run_ids: Sequence[str], when: int) -> None:
        with self._lock:
            for rid in run_ids:
                run = self._runs.get(rid)
                if run is not None and run.end_time is None:
                    self._runs[rid] = dataclasses.replace(run, heartbeat=when, status=RunStatus.RUNNING)

    # -- reads -----------------------------------------------------------
    def _view(self, run: Run, with_env: bool = True) -> Run:
        stale = clock.now_ms() - options.resolve(self.heartbeat_timeout, "heartbeat_timeout") * 1000
        changes: dict[str, Any] = {}
        if run.status is RunStatus.RUNNING and run.heartbeat is not None and run.heartbeat < stale:
            changes["status"] = RunStatus.KILLED
        if changes.get("status", run.status) is RunStatus.KILLED and run.end_time is None:
            changes["end_time"] = run.heartbeat
        if not with_env:
            changes["env"] = {}
        return dataclasses.replace(run, **changes) if changes else run

    def get_run(self, run_id: str) -> Run:
        run = self._runs.get(run_id)
        if run is None:
            raise NotFound(f"run {run_id!r} does not exist")
        return self._view(run)

    def run_experiment_ids(self, run_ids: Sequence[str]) -> dict[str, str]:
        """run id -> experiment id for the runs that exist (:class:`~cairn.store.base.
        RunExperimentLookup`)."""
        with self._lock:
            return {rid: self._runs[rid].experiment_id for rid in run_ids if rid in self._runs}

    def run_states(self, run_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """run id -> (experiment id, lifecycle) for the runs that exist
        (:class:`~cairn.store.base.RunStateLookup`)."""
        with self._lock:
            return {rid: (self._runs[rid].experiment_id, self._runs[rid].lifecycle)
                    for rid in run_ids if rid in self._runs}

    def list_keys(self, experiment_ids: Sequence[str] | None, kind: str, contains: str,
                  limit: int, sample: int = 2000) -> list[str]:
        """Sorted keys of ``kind`` containing ``contains``, from a sample of ``sample`` runs
        (:class:`~cairn.store.base.KeyListing`)."""
        if kind not in ("params", "metrics", "tags"):
            raise InvalidArgument(f"kind must be one of ['metrics', 'params', 'tags'], got {kind!r}")
        runs, _ = self.search_runs(experiment_ids, "", (), sample)
        seen: set[str] = set()
        for r in runs:
            seen.update({"params": r.params, "metrics": r.metrics, "tags": r.tags}[kind])
        return sorted(k for k in seen if contains in k)[:limit]

    def search_runs(self, experiment_ids: Sequence[str] | None, filter: str = "",
                    order_by: Sequence[str] = (), max_results: int = 1000,
                    page_token: str | None = None,
                    lifecycle: str | None = "active") -> tuple[list[Run], str | None]:
        from .. import search
        from .sql.run_reads import _lifecycle

        if not isinstance(max_results, int) or isinstance(max_results, bool) or max_results < 1:
            raise InvalidArgument(f"max_results must be a positive integer, got {max_results!r}")
        flt = search.parse_filter(filter or "")
        order = search.parse_order_by(order_by or ())
        offset = search.decode_page_token(page_token) if page_token else 0
        lifecycle = _lifecycle(lifecycle)
        ids = None if experiment_ids is None else {str(i) for i in experiment_ids}
        runs = [self._view(r, with_env=False) for r in list(self._runs.values())
                if lifecycle in (None, r.lifecycle) and (ids is None or r.experiment_id in ids)]
        hits = search.sort_runs([r for r in runs if search.matches(r, flt)], order)
        page = hits[offset:offset + max_results]
        more = len(hits) > offset + max_results
        return page, (search.encode_page_token(offset + max_results) if more else None)

    def get_metric_history(self, run_id: str, key: str) -> MetricHistory:
        from .sql.index import history_from_blobs
        from . import segments

        if run_id not in self._runs:
            raise NotFound(f"run {run_id!r} does not exist")
        parts = sorted(self._series.get((run_id, key), []), key=lambda p: int(p[0].min()))
        return history_from_blobs(key, [segments.encode(*p) for p in parts])

    def list_artifacts(self, run_id: str) -> list[FileEntry]:
        self.get_run(run_id)
        return sorted(self._artifacts.get(run_id, {}).values(), key=lambda a: a.path)


def _merge(prev: LatestMetric | None, key: str, s: np.ndarray, t: np.ndarray,
           v: np.ndarray) -> LatestMetric:
    from .segments import summarize

    new = summarize(s, t, v)
    nmin, nmax = new["min"], new["max"]
    if prev is None:
        return LatestMetric(key, new["value"], new["step"], new["timestamp"],
                            float("nan") if nmin is None else nmin,
                            float("nan") if nmax is None else nmax, new["count"])
    if (new["step"], new["timestamp"]) >= (prev.step, prev.timestamp):
        val, step, ts = new["value"], new["step"], new["timestamp"]
    else:
        val, step, ts = prev.value, prev.step, prev.timestamp
    mins = [x for x in (prev.min, nmin) if x is not None and x == x]
    maxs = [x for x in (prev.max, nmax) if x is not None and x == x]
    return LatestMetric(key, val, step, ts, min(mins) if mins else float("nan"),
                        max(maxs) if maxs else float("nan"), prev.count + new["count"])
