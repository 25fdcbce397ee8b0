"""``import_mlflow``: experiments, runs, artifacts and the model registry of an MLflow store.

What maps to what (docs/mlflow-import.md has the full table):

* An experiment joins the Cairn experiment of the same name (created with the
  MLflow tags when missing).
* A run keeps its MLflow run id, name, user, status, times, params, tags, every
  metric point (step, timestamp, value) and its artifact files; ``mlflow.parentRunId``
  becomes the parent link.  The whole run is one :class:`~cairn.entities.RecordBatch`:
  one journal record and one index transaction, so a run is either imported whole
  or not at all, and an interrupted import is finished by running it again.
* Registered models, versions, stages and aliases: see :mod:`.mlflow_models`.

Idempotent: a run already in Cairn (same id) is skipped, and so are model versions
already registered.  Every imported run is tagged ``cairn.import.source`` and
``cairn.import.mlflow_run_id``.  After writing, everything selected is counted again on
the Cairn side and compared with the source (:class:`~.summary.ImportMismatch` if not equal).
"""

from __future__ import annotations

import hashlib
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Sequence

from .. import clock
from ..entities import RecordBatch, RunStatus
from ..errors import AlreadyExists, CairnError, InvalidArgument, NotFound, StoreUnavailable
from ..store.validation import check_key, param_value, tag_value
from .mlflow_source import Source, open_source, translate_errors
from .summary import Counts, ImportMismatch, ImportSummary

if TYPE_CHECKING:  # pragma: no cover
    from ..client import Client

SOURCE_TAG = "cairn.import.source"
RUN_ID_TAG = "cairn.import.mlflow_run_id"
EXPERIMENT_ID_TAG = "cairn.import.mlflow_experiment_id"
LIFECYCLE_TAG = "cairn.import.lifecycle"
PARENT_TAG = "mlflow.parentRunId"
PAGE = 1000
READ_AHEAD = 4  # runs read from the source at once

Progress = Callable[[str, int, int], None]  # (what, done, total)


@dataclass(slots=True)
class _RunFacts:
    """What the source holds for one run, to verify the Cairn copy against."""

    experiment: str
    params: dict[str, str]
    tags: dict[str, str]
    points: dict[str, int]
    files: dict[str, int]  # artifact path -> size


@dataclass(slots=True)
class _State:
    summary: ImportSummary
    runs: dict[str, _RunFacts] = field(default_factory=dict)


def import_mlflow(source: str, client: "Client | None" = None, *,
                  experiments: Sequence[str] | None = None, include_deleted: bool = False,
                  models: bool = True, progress: Progress | None = None) -> ImportSummary:
    """Import an MLflow store into ``client``'s store (default: the current tracking URI).

    ``source``: ``sqlite:///path/mlflow.db``, ``postgresql://...``, an ``mlruns``
    directory (path or ``file://``) or an MLflow server URL.  ``experiments``: MLflow
    experiment names or ids to import (default: all); model versions are then imported
    only when their source run is.  Deleted experiments and runs are skipped unless
    ``include_deleted`` (Cairn records their MLflow lifecycle as tag
    ``cairn.import.lifecycle``).  ``models=False`` leaves the model registry out.
    ``progress(what, done, total)`` is called as runs and model versions are done.

    Raises :class:`~.summary.ImportMismatch` if the Cairn side does not hold what
    the source holds afterwards.
    """
    if client is None:
        from ..client import Client

        client = Client()
    report = progress or (lambda what, done, total: None)
    with open_source(source) as src, translate_errors(src.uri):
        state = _State(ImportSummary(src.label))
        exps = _select_experiments(src, experiments, include_deleted)
        targets = {e.experiment_id: _experiment(client, src, e, state) for e in exps}
        runs = list(_source_runs(src, list(targets), include_deleted))
        registry = None
        if models:  # selected and checked first: a name Cairn cannot hold stops us before any write
            from .mlflow_models import import_models, select_models

            only = {r.info.run_id for r in runs} if experiments else None
            registry = select_models(client, src, only)
        for i, (run, read) in enumerate(_read_ahead(src, runs), 1):
            _run(client, src, run, read, targets[run.info.experiment_id], state)
            report("runs", i, len(runs))
        if registry is not None:
            import_models(client, src, registry, state.summary, report)
        _verify(client, state, exps, registry)
    return state.summary


# -- experiments ------------------------------------------------------------------------------
def _select_experiments(src: Source, wanted: Sequence[str] | None, include_deleted: bool) -> list:
    from mlflow.entities import ViewType

    view = ViewType.ALL if include_deleted else ViewType.ACTIVE_ONLY
    found = list(pages(lambda token: src.client.search_experiments(
        view_type=view, max_results=PAGE, page_token=token)))
    if not wanted:
        return sorted(found, key=lambda e: e.name)
    out = []
    for item in wanted:
        hit = [e for e in found if e.name == item] or [e for e in found if e.experiment_id == item]
        if not hit:
            raise NotFound(f"the MLflow source {src.label} has no experiment named or with id "
                           f"{item!r}" + ("" if include_deleted else
                                          " (a deleted one needs --include-deleted)"))
        out.extend(h for h in hit if h not in out)
    return out


def _experiment(client: "Client", src: Source, exp: Any, state: _State) -> Any:
    state.summary.source.experiments += 1
    existing = client.get_experiment_by_name(exp.name)
    if existing is not None:
        return existing
    tags = {**dict(exp.tags), SOURCE_TAG: src.label, EXPERIMENT_ID_TAG: exp.experiment_id}
    if exp.lifecycle_stage != "active":
        tags[LIFECYCLE_TAG] = exp.lifecycle_stage
    if exp.name == "Default":
        # Cairn's own Default experiment has the id MLflow gives it, 0; create it that way.
        created = client.get_or_create_experiment(exp.name)
    else:
        try:
            created = client.create_experiment(exp.name, tags)
        except AlreadyExists:  # another import made it a moment ago
            return client.get_experiment_by_name(exp.name)
    state.summary.imported.experiments += 1
    return created


# -- runs -------------------------------------------------------------------------------------
def _source_runs(src: Source, experiment_ids: list[str], include_deleted: bool) -> Iterator[Any]:
    from mlflow.entities import ViewType

    view = ViewType.ALL if include_deleted else ViewType.ACTIVE_ONLY
    for start in range(0, len(experiment_ids), 100):
        ids = experiment_ids[start:start + 100]
        # Oldest first, so parents usually arrive before their children. (B023: `yield from` drains
        # the pages before the loop rebinds `ids`.)
        yield from pages(lambda token: src.client.search_runs(
            ids, run_view_type=view, max_results=PAGE, order_by=["attributes.start_time ASC"],  # noqa: B023
            page_token=token))


def _read(src: Source, run: Any) -> tuple[dict[str, list], dict[str, int]]:
    """A run's metric histories and artifact files (path -> size), as the source has them."""
    rid = run.info.run_id
    histories = {k: src.client.get_metric_history(rid, k) for k in run.data.metrics}
    with _artifact_errors(run):
        files = _source_files(src, rid)
    return histories, files


def _read_ahead(src: Source, runs: list, workers: int | None = None) -> Iterator[tuple[Any, tuple]]:
    """Each run with what :func:`_read` got of it, in order, reading up to ``workers`` runs
    at once: an MLflow server takes tens of milliseconds per request, and reading one
    run at a time would leave it (and us) idle.  Writes stay on the caller's thread."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    workers = workers or READ_AHEAD
    pool = ThreadPoolExecutor(workers, thread_name_prefix="cairn-mlflow-read")
    window: deque = deque()
    try:
        for run in runs:
            window.append((run, pool.submit(_read, src, run)))
            if len(window) > workers:
                done, future = window.popleft()
                yield done, future.result()
        while window:
            done, future = window.popleft()
            yield done, future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run(client: "Client", src: Source, run: Any, read: tuple, exp: Any, state: _State) -> None:
    info, data = run.info, run.data
    rid = info.run_id
    try:
        params = {check_key(k, "param"): param_value(k, v) for k, v in data.params.items()}
        tags = {check_key(k, "tag"): tag_value(k, v) for k, v in data.tags.items()}
        for k in data.metrics:
            check_key(k, "metric")
    except InvalidArgument as exc:
        raise InvalidArgument(f"MLflow run {rid} ({info.run_name}) cannot be imported: "
                              f"{exc.message}", run_id=rid) from None
    histories, files = read
    facts = _RunFacts(exp.name, params, tags, {k: len(h) for k, h in histories.items()}, files)
    state.runs[rid] = facts
    _add(state.summary.source, facts)
    existing = _get(client, rid)
    if existing is not None:
        _catch_up(client, src, run, existing, tags, files, state.summary.imported)
        return
    extra = {SOURCE_TAG: state.summary.source_uri, RUN_ID_TAG: rid}
    if info.lifecycle_stage != "active":
        extra[LIFECYCLE_TAG] = info.lifecycle_stage
    with tempfile.TemporaryDirectory(prefix="cairn-mlflow-") as tmp:
        entries = ()
        if files:
            with _artifact_errors(run):
                src.client.download_artifacts(rid, "", tmp)
            entries = tuple(client.store_artifacts(tmp))
        client.store.write(_batch(run, exp, params, {**tags, **extra}, histories, entries))
    _add(state.summary.imported, facts)


def _catch_up(client: "Client", src: Source, run: Any, existing: Any, tags: dict,
              files: dict[str, int], imported: Counts) -> None:
    """Bring in what MLflow lets change after a run ended: its tags and artifact files.

    (Params and metrics of a finished Cairn run are immutable; a change there is
    reported by the verification.)  One batch, from a writer of its own.
    """
    rid = run.info.run_id
    changed = {k: v for k, v in tags.items() if existing.tags.get(k) != v}
    have = {e.path: e.size for e in client.list_artifacts(rid)}
    missing = [path for path, size in files.items() if have.get(path) != size]
    entries: list = []
    if missing:
        with tempfile.TemporaryDirectory(prefix="cairn-mlflow-") as tmp, _artifact_errors(run):
            for path in missing:
                local = src.client.download_artifacts(rid, path, tmp)
                entries.append(client.store.objects.put_file(local, path))
    if changed or entries:
        client.store.write(RecordBatch(run_id=rid, writer_id=clock.new_writer_id(), seq=1,
                                       time=clock.now_ms(), tags=changed, artifacts=tuple(entries)))
        imported.tags += len(changed)
        imported.artifacts += len(entries)


def _batch(run: Any, exp: Any, params: dict, tags: dict, histories: dict,
           entries: tuple) -> RecordBatch:
    import numpy as np

    info = run.info
    metrics = {}
    for key, points in histories.items():
        metrics[key] = (np.fromiter((m.step for m in points), np.int64, len(points)),
                        np.fromiter((m.timestamp for m in points), np.int64, len(points)),
                        np.fromiter((m.value for m in points), np.float64, len(points)))
    status = _status(info.status)
    start = info.start_time if info.start_time is not None else 0
    end = None
    if status is not None:
        end = info.end_time if info.end_time is not None else start
    create = {"experiment_id": exp.id, "experiment_name": exp.name,
              "experiment_created_at": exp.created_at, "name": info.run_name or info.run_id[:8],
              "parent_id": run.data.tags.get(PARENT_TAG), "user": info.user_id or "",
              "start_time": start}
    # A writer id derived from the run id: a retried import of the same run is the same
    # (writer, seq) and so is applied at most once, even by two imports racing.
    writer = hashlib.sha256(f"mlflow-import:{info.run_id}".encode()).hexdigest()[:16]
    return RecordBatch(run_id=info.run_id, writer_id=writer, seq=1, time=clock.now_ms(), params=params,
                       tags=tags, metrics=metrics, artifacts=entries, status=status, end_time=end,
                       create=create)


def _status(text: str) -> RunStatus | None:
    """A terminal status, or None for a run MLflow still calls running or scheduled."""
    try:
        st = RunStatus(text)
    except ValueError:
        return None
    return st if st.terminal else None


def _get(client: "Client", run_id: str) -> Any:
    try:
        return client.get_run(run_id)
    except NotFound:
        return None


def run_exists(client: "Client", run_id: str) -> bool:
    return _get(client, run_id) is not None


@contextmanager
def _artifact_errors(run: Any) -> Iterator[None]:
    """Artifact stores fail in their own ways (S3 credentials, a vanished directory): say where."""
    try:
        yield
    except CairnError:
        raise
    except Exception as exc:
        raise StoreUnavailable(f"cannot read the artifacts of MLflow run {run.info.run_id} at "
                               f"{run.info.artifact_uri}: {exc}", run_id=run.info.run_id) from None


def _source_files(src: Source, run_id: str, path: str | None = None) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in src.client.list_artifacts(run_id, path):
        if f.is_dir:
            out.update(_source_files(src, run_id, f.path))
        else:
            out[f.path] = int(f.file_size or 0)
    return out


def _add(counts: Counts, facts: _RunFacts) -> None:
    counts.runs += 1
    counts.params += len(facts.params)
    counts.tags += len(facts.tags)
    counts.metric_points += sum(facts.points.values())
    counts.artifacts += len(facts.files)


# -- verification -----------------------------------------------------------------------------
def _verify(client: "Client", state: _State, exps: list, registry: Any) -> None:
    """Count everything selected again on the Cairn side; refuse if it differs from the source.

    What Cairn added on its side since (a note, a tag, the ``models/`` copy of a
    registration) is not a difference: every item of the source must be there, unchanged.
    """
    cairn, problems = state.summary.cairn, []
    for e in exps:
        got = client.get_experiment_by_name(e.name)
        if got is None:
            problems.append(f"experiment {e.name!r} is missing")
            continue
        cairn.experiments += 1
        # Tags are the import's only for an experiment it created (not e.g. Cairn's own Default).
        if EXPERIMENT_ID_TAG in got.tags and _kept(e.tags, got.tags) != dict(e.tags):
            problems.append(f"experiment {e.name!r}: tags differ")
    for rid, facts in state.runs.items():
        try:
            run = client.get_run(rid)
        except NotFound:
            problems.append(f"run {rid} is missing")
            continue
        summaries = run.metric_summaries
        points = {k: summaries[k].count for k in facts.points if k in summaries}
        files = _kept(facts.files, {e.path: e.size for e in client.list_artifacts(rid)})
        got = _RunFacts(run.experiment, dict(run.params), _kept(facts.tags, run.tags), points,
                        files)
        _add(cairn, got)
        for what in ("experiment", "params", "tags", "points", "files"):
            if getattr(got, what) != getattr(facts, what):
                problems.append(f"run {rid}: {_label(what)} differ")
    if registry is not None:
        registry.verify(client, cairn, problems)
    problems += state.summary.source.differences(cairn)
    if problems:
        shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more"
                                            if len(problems) > 10 else "")
        raise ImportMismatch(f"the import from {state.summary.source_uri} does not match its "
                             f"source: {shown}", problems=problems)


def _kept(source: Mapping[str, Any], cairn: Mapping[str, Any]) -> dict[str, Any]:
    """The items of ``source`` that ``cairn`` holds with the same value."""
    return {k: v for k, v in source.items() if k in cairn and cairn[k] == v}


def _label(what: str) -> str:
    return {"points": "metric point counts", "files": "artifact files"}.get(what, what)


def pages(fetch: Callable[[str | None], Any]) -> Iterable[Any]:
    token = None
    while True:
        page = fetch(token)
        yield from page
        token = getattr(page, "token", None)
        if not token:
            return
