"""``cairn export``: runs of chosen experiments copied into a new local store.

Everything goes through the public client and store interface (experiments, run
search, metric histories, artifact listings and the object store), so the source
can be a local store, a database store or a team server.  Each run becomes one
record in the new store's journal: creation, params, tags, every metric point,
artifacts and final status, written through an :class:`~cairn.anonymise.rules.Anonymiser`
when one is given (its users, params, tags and environment; metric values, keys and
artifact bytes are copied as they are).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .. import clock
from ..entities import RecordBatch
from ..errors import InvalidArgument, NotFound
from ..anonymise.records import anonymise_batch
from ..anonymise.rules import Anonymiser


@dataclass
class ExportReport:
    dest: str
    anonymised: bool
    experiments: list[str] = field(default_factory=list)
    runs: int = 0
    metric_points: int = 0
    artifacts: int = 0
    objects: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"dest": self.dest, "anonymised": self.anonymised,
                "experiments": self.experiments, "runs": self.runs,
                "metric_points": self.metric_points, "artifacts": self.artifacts,
                "objects": self.objects}


def _check_dest(dest: Path, force: bool) -> None:
    if dest.exists() and not dest.is_dir():
        raise InvalidArgument(f"{dest} exists and is not a directory")
    if dest.is_dir() and any(dest.iterdir()) and not force:
        raise InvalidArgument(f"{dest} is not empty: export writes a new store; choose an "
                              "empty or new directory (or --force to add to it)")


def _within(path: Path, root: Path) -> bool:
    path, root = path.resolve(), root.resolve()
    return path == root or root in path.parents


def export_runs(client: Any, dest: str | os.PathLike[str], *,
                experiments: Sequence[str] | None = None, anonymiser: Anonymiser | None = None,
                force: bool = False, progress: bool | None = False,
                objects: Any = None) -> ExportReport:
    """Copy the runs of ``experiments`` (names or ids; None: all) from ``client``'s store
    into a local store at ``dest``; artifacts are read from ``objects`` (default: the
    store's own object store; a database store names none of its own)."""
    from ..client import Client
    from ..progress import bar

    target = Path(dest)
    _check_dest(target, force)
    src = client
    root = getattr(src.store, "root", None)
    if root is not None and _within(target, Path(root)):
        # Runs written back into their own store would get every metric point twice.
        raise InvalidArgument(f"{target} is inside the source store {root}: export to a "
                              "directory outside it")
    ids = src._experiment_ids(list(experiments)) if experiments else None
    exps = [src.get_experiment(i) for i in ids] if ids is not None else src.list_experiments()
    # What is in the trash was taken back: an export must not bring it back, live.
    trashed = [e.name for e in exps if e.lifecycle == "deleted"]
    if ids is not None and trashed:
        raise InvalidArgument(f"experiment {trashed[0]!r} is in the trash: restore it "
                              "(`cairn experiments restore`) to export it")
    exps = [e for e in exps if e.lifecycle != "deleted"]
    runs: list[Any] = []
    for exp in exps:
        token = None
        while True:
            page = src.search_runs([exp.id], max_results=1000, page_token=token, lifecycle=None)
            runs.extend(r for r in page if r.lifecycle != "deleted")
            token = page.token
            if not token:
                break
    report = ExportReport(str(target), anonymiser is not None, [e.name for e in exps])
    out = Client(str(target))
    store: Any = out.store  # a LocalStore: keeps each experiment's id
    for exp in exps:
        if store.get_experiment_by_name(exp.name) is None:
            tags = dict(exp.tags or {})
            if anonymiser is not None:
                tags = anonymiser.mapping(tags)
            store.create_experiment(exp.name, tags, experiment_id=exp.id)
    copied: set[str] = set()
    runs.sort(key=lambda r: (r.parent_id is not None, r.start_time))  # parents first
    with bar("exporting runs", len(runs), enabled=progress, unit="runs") as advance:
        for run in runs:
            _copy_run(src, store, run, anonymiser, report, copied, objects)
            advance(1)
    store.close()
    return report


def _copy_run(src: Any, store: Any, run: Any, anon: Anonymiser | None, report: ExportReport,
              copied: set[str], objects: Any) -> None:
    try:
        store.get_run(run.id)
    except NotFound:
        pass
    else:
        return  # exported before (--force adds to DEST): a second copy would double its points
    metrics = {}
    for key in run.metrics:
        h = src.get_metric_history(run.id, key)
        metrics[key] = (h.steps, h.timestamps, h.values)
        report.metric_points += len(h)
    artifacts = tuple(src.store.list_artifacts(run.id))
    for entry in artifacts:
        for oid in ([c[0] for c in entry.chunks] if entry.chunks else [entry.digest]):
            if oid not in copied:
                store.objects.put_bytes((objects or src.store.objects).get_bytes(oid))
                copied.add(oid)
                report.objects += 1
    report.artifacts += len(artifacts)
    exp = src.get_experiment(run.experiment_id)
    terminal = run.status if run.status.terminal else None
    batch = RecordBatch(
        run_id=run.id, writer_id=clock.new_writer_id(), seq=1, time=clock.now_ms(),
        params=dict(run.params), tags=dict(run.tags), metrics=metrics, artifacts=artifacts,
        status=terminal, end_time=run.end_time if terminal else None,
        create={"experiment_id": exp.id, "experiment_name": exp.name,
                "experiment_created_at": exp.created_at, "name": run.name,
                "parent_id": run.parent_id, "user": run.user, "start_time": run.start_time},
        env=dict(run.env) if run.env else None)
    if anon is not None:
        batch = anonymise_batch(batch, anon)
    store.write(batch)
    report.runs += 1
