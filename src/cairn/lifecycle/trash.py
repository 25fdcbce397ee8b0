"""The trash: what was deleted and can still be restored, and emptying it for good.

Deleting a run, an experiment, a data set version or a model version moves it to the
trash: hidden from every read, its files kept (they stay GC roots), restorable.
:func:`list_trash` lists what is there; :func:`purge` removes what has been there
longer than a retention period (``CAIRN_TRASH_DAYS`` when ``cairn gc`` calls it), after
which the files of what it removed are garbage for the next mark and sweep.

Where each kind keeps its deletion time:

* run: its search document's ``"r"`` entry (``"l": [time, "deleted", writer]``), from the
  journal record that deleted it, so a reindex keeps it;
* experiment: the tags ``cairn.deleted_at`` (epoch ms) and ``cairn.deleted_by``, which
  :func:`deleted_tags` adds on a delete and drops on a restore; tags live in the
  experiment file, so a reindex keeps them too;
* data set and model versions: the ``deleted_at`` / ``deleted_by`` columns (revision 0010).

An item whose deletion time is unknown (deleted before Cairn kept one) has
``deleted_at`` None: only a purge of everything (``older_than_ms=None``) removes it.

Purging is idempotent and safe to kill at any point; a purge that died is finished by the
next.  Each item is removed in one index transaction (with its audit event), after what
lies outside the index:

* a run of a local store first has its journal directory renamed (one atomic rename) to
  ``purging/<run id>`` in the store: no reader or replay looks there, so a half-deleted
  journal can never be replayed into a half run; then its rows go from every run table,
  then the directory is deleted.  Leftovers of a killed purge (a directory in
  ``purging/`` whose run has left the index) are deleted first by the next purge.
* an experiment: its runs as above, then its experiment file, then its row.

What a purge keeps, and says why (``PurgeReport.kept``): a run that is the source run
of a live registered model version (the version's lineage names it), an experiment
holding such a run, a data set version that is an input of a live model version, a run a
writer still logs to, and an experiment with a run restored out of it (live again).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import sqlalchemy as sa

from ..errors import InvalidArgument
from .heartbeats import DAY_MS, fresh

KINDS = ("run", "experiment", "dataset_version", "model_version")
DELETED_AT_TAG = "cairn.deleted_at"
DELETED_BY_TAG = "cairn.deleted_by"
PURGING_DIR = "purging"


@dataclass(frozen=True, slots=True)
class TrashItem:
    """One thing in the trash.

    ``identifier``: a run id, an experiment id, ``name@3`` (data set version) or
    ``name/1.2.0`` (model version); ``deleted_at``: epoch ms (None: unknown);
    ``deleted_by``: the user (None for runs, whose journal keeps the writer, not the user);
    ``name``: the run's or experiment's name (the identifier for versions)."""

    kind: str
    identifier: str
    deleted_at: int | None
    deleted_by: str | None
    name: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class PurgeReport:
    """What :func:`purge` removed (or would remove, ``dry_run``) and what it kept, and why."""

    dry_run: bool
    now_ms: int
    older_than_ms: int | None
    purged: list[TrashItem] = field(default_factory=list)
    kept: list[tuple[TrashItem, str]] = field(default_factory=list)
    runs_in_experiments: int = 0  # runs removed with the experiments purged

    def to_json(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "now_ms": self.now_ms,
                "older_than_ms": self.older_than_ms,
                "purged": [i.to_json() for i in self.purged],
                "kept": [{**i.to_json(), "reason": why} for i, why in self.kept],
                "runs_in_experiments": self.runs_in_experiments}


def deleted_tags(tags: dict[str, str], lifecycle: str, user: str, now_ms: int) -> dict[str, str]:
    """An experiment's tags after a delete (``lifecycle`` "deleted": when and by whom) or a
    restore (those tags dropped)."""
    out = {k: v for k, v in tags.items() if k not in (DELETED_AT_TAG, DELETED_BY_TAG)}
    if lifecycle == "deleted":
        out[DELETED_AT_TAG] = str(int(now_ms))
        out[DELETED_BY_TAG] = user
    return out


def set_experiment_lifecycle(store: Any, experiment_id: str, lifecycle: str, user: str,
                             now_ms: int) -> Any:
    """Delete (``lifecycle`` "deleted") or restore an experiment with its runs, recording when
    and by whom in its tags where the store keeps them (a server's store does it there)."""
    from ..store.base import ExperimentChanges, ExperimentUpdates

    if isinstance(store, ExperimentUpdates) and lifecycle in ("deleted", "active"):
        exp = store.get_experiment(str(experiment_id))  # type: ignore[attr-defined]
        if exp.lifecycle == lifecycle:
            return exp
        return store.update_experiment(exp, exp.name, lifecycle,
                                       deleted_tags(dict(exp.tags), lifecycle, user, now_ms))
    if not isinstance(store, ExperimentChanges):
        raise InvalidArgument(f"the store {store.uri} cannot rename or delete experiments")
    return store.set_experiment_lifecycle(str(experiment_id), lifecycle)


def _index(store: Any) -> Any:
    from ..store.base import Indexed

    if not isinstance(store, Indexed):
        raise InvalidArgument(f"the trash of {getattr(store, 'uri', store)!r} is on its server: "
                              "use `cairn trash` with a server admin's token (Client.list_trash)"
                              ", or a store with a database (a local store or PostgreSQL)")
    store.open()
    return store.index


def _int(text: Any) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def _run_deleted_at(doc: str | None) -> int | None:
    if not doc:
        return None
    try:
        entry = (json.loads(doc).get("r") or {}).get("l")
    except (ValueError, AttributeError):
        return None
    if isinstance(entry, list) and len(entry) >= 2 and entry[1] == "deleted":
        return _int(entry[0])
    return None


def list_trash(store: Any) -> list[TrashItem]:
    """Everything in the trash of ``store`` (a local or PostgreSQL store), oldest deletion
    first (unknown times first).  A run deleted with its experiment is part of the
    experiment's item, not an item of its own."""
    from ..store.sql import tables as T
    from ..store.sql import tables_data as TD

    index = _index(store)
    out: list[TrashItem] = []
    with index.session() as conn:
        E, R = T.experiments, T.runs
        for row in conn.execute(sa.select(E.c.id, E.c.name, E.c.tags)
                                .where(E.c.lifecycle == "deleted")):
            tags = json.loads(row.tags or "{}")
            out.append(TrashItem("experiment", row.id, _int(tags.get(DELETED_AT_TAG)),
                                 tags.get(DELETED_BY_TAG) or None, row.name))
        live = sa.select(E.c.id).where(E.c.lifecycle != "deleted")
        for row in conn.execute(sa.select(R.c.id, R.c.name, R.c.doc).where(
                R.c.lifecycle == "deleted", R.c.experiment_id.in_(live))):
            out.append(TrashItem("run", row.id, _run_deleted_at(row.doc), None, row.name))
        V = TD.dataset_versions
        for row in conn.execute(sa.select(V.c.dataset, V.c.version, V.c.deleted_at,
                                          V.c.deleted_by).where(V.c.deleted_at.is_not(None))):
            ref = f"{row.dataset}@{row.version}"
            out.append(TrashItem("dataset_version", ref, row.deleted_at, row.deleted_by, ref))
        M = T.model_versions
        for row in conn.execute(sa.select(M.c.name, M.c.version, M.c.deleted_at,
                                          M.c.deleted_by).where(M.c.deleted_at.is_not(None))):
            ref = f"{row.name}/{row.version}"
            out.append(TrashItem("model_version", ref, row.deleted_at, row.deleted_by, ref))
    return sorted(out, key=lambda i: (i.deleted_at or 0, KINDS.index(i.kind), i.identifier))


def _check(older_than_ms: Any, now_ms: Any, dry_run: Any, actor: Any) -> None:
    if older_than_ms is not None and (isinstance(older_than_ms, bool)
                                      or not isinstance(older_than_ms, int) or older_than_ms < 0):
        raise InvalidArgument(f"older_than_ms must be None or an int >= 0, got {older_than_ms!r}")
    if isinstance(now_ms, bool) or not isinstance(now_ms, int) or now_ms < 0:
        raise InvalidArgument(f"now_ms must be an epoch time in ms (an int), got {now_ms!r}")
    if not isinstance(dry_run, bool):
        raise InvalidArgument(f"dry_run must be True or False, got {dry_run!r}")
    if not isinstance(actor, str) or not actor:
        raise InvalidArgument(f"actor must be a user name, got {actor!r}")
    try:
        actor.encode()
    except UnicodeEncodeError:
        raise InvalidArgument("actor is not valid Unicode (a lone surrogate)") from None


def _due(item: TrashItem, older_than_ms: int | None, now_ms: int) -> bool:
    if older_than_ms is None:
        return True
    return item.deleted_at is not None and now_ms - item.deleted_at >= older_than_ms


def purge(store: Any, *, older_than_ms: int | None, now_ms: int, dry_run: bool,
          actor: str, progress: bool | None = False) -> PurgeReport:
    """Remove for good what has been in the trash of ``store`` at least ``older_than_ms``
    (None: everything in it) at time ``now_ms``; ``dry_run``: only say what would go.
    Audited (``<kind>.purge`` events, ``actor`` as their actor).  ``progress``: a bar on
    stderr, a step per item (None: when stderr is a terminal).  See the module doc for the
    order of removal, what is kept and why."""
    _check(older_than_ms, now_ms, dry_run, actor)
    index = _index(store)
    from ..store.base import Directory

    root = Path(store.root) if isinstance(store, Directory) else None
    report = PurgeReport(dry_run, now_ms, older_than_ms)
    if root is not None and not dry_run:
        _finish_killed(index, root)
    items = [i for i in list_trash(store) if _due(i, older_than_ms, now_ms)]
    with index.session() as conn:
        sources = _live_sources(conn)
        inputs = _live_inputs(conn)
        exp_runs = {i.identifier: _runs_of(conn, i.identifier)
                    for i in items if i.kind == "experiment"}
        restored = {e: _runs_of(conn, e, live=True) for e in exp_runs}
        writing = _being_written(conn, now_ms)
    for run_id in writing:  # a writer still at work on a deleted run: not now
        sources.setdefault(run_id, []).append(_WRITING)
    from ..progress import bar

    with bar("emptying the trash", len(items), enabled=False if dry_run else progress,
             unit="items") as advance:
        for item in items:
            why = _keep_reason(item, sources, inputs, exp_runs.get(item.identifier, []),
                               restored.get(item.identifier, []))
            if why:
                report.kept.append((item, why))
                advance(1)
                continue
            report.purged.append(item)
            if item.kind == "experiment":
                report.runs_in_experiments += len(exp_runs[item.identifier])
            if not dry_run:
                _purge_item(index, root, item, exp_runs, actor, now_ms)
            advance(1)
    return report


def _purge_item(index: Any, root: Path | None, item: TrashItem, exp_runs: dict[str, list[str]],
                actor: str, now_ms: int) -> None:
    if item.kind == "run":
        _purge_run(index, root, item.identifier, actor, now_ms)
    elif item.kind == "experiment":
        _purge_experiment(index, root, item, actor, now_ms)
    elif item.kind == "dataset_version":
        _purge_dataset_version(index, item, actor, now_ms)
    else:
        _purge_model_version(index, item, actor, now_ms)


# -- what is kept -------------------------------------------------------------------------
def _live_sources(conn: Any) -> dict[str, list[str]]:
    """Run id -> live model versions registered from it."""
    from ..store.sql import tables as T

    M = T.model_versions
    out: dict[str, list[str]] = {}
    for r in conn.execute(sa.select(M.c.name, M.c.version, M.c.source_run_id).where(
            M.c.deleted_at.is_(None), M.c.source_run_id.is_not(None))):
        out.setdefault(r.source_run_id, []).append(f"{r.name}/{r.version}")
    return out


def _live_inputs(conn: Any) -> dict[str, list[str]]:
    """``name@version`` -> live model versions that used it: named among their data sets,
    or read by the run they were registered from (as the delete's protection counts them:
    a run may log an input after its model was registered)."""
    from ..store.sql import tables as T
    from ..store.sql import tables_data as TD

    M, RI = T.model_versions, TD.run_inputs
    out: dict[str, set[str]] = {}
    for r in conn.execute(sa.select(M.c.name, M.c.version, M.c.datasets).where(
            M.c.deleted_at.is_(None))):
        for d in json.loads(r.datasets or "[]"):
            if isinstance(d, dict) and d.get("name") and d.get("version") is not None:
                out.setdefault(f"{d['name']}@{d['version']}", set()).add(f"{r.name}/{r.version}")
    for r in conn.execute(sa.select(M.c.name, M.c.version, RI.c.dataset, RI.c.version.label("dv"))
                          .join(RI, RI.c.run_id == M.c.source_run_id)
                          .where(M.c.deleted_at.is_(None))):
        out.setdefault(f"{r.dataset}@{r.dv}", set()).add(f"{r.name}/{r.version}")
    return {ref: sorted(users) for ref, users in out.items()}


_WRITING = "\0writing"  # among a run's "users": a live writer, not a model version


def _being_written(conn: Any, now_ms: int) -> list[str]:
    """Runs a writer still heartbeats (RUNNING, heartbeat within CAIRN_HEARTBEAT_TIMEOUT;
    see :mod:`.heartbeats`: the mlflow client's runs have none, and `mlflow gc` purges a
    deleted run whatever its status)."""
    from ..settings import HEARTBEAT_TIMEOUT
    from ..store.sql import tables as T

    R = T.runs
    since = now_ms - int(HEARTBEAT_TIMEOUT.get() * 1000)
    return list(conn.execute(sa.select(R.c.id).where(
        R.c.lifecycle == "deleted", R.c.status == "RUNNING",
        fresh(R.c.heartbeat, since, now_ms))).scalars())


def _runs_of(conn: Any, experiment_id: str, live: bool = False) -> list[str]:
    """The runs of an experiment (``live``: only those restored out of it, live again)."""
    from ..store.sql import tables as T

    q = sa.select(T.runs.c.id).where(T.runs.c.experiment_id == experiment_id)
    if live:
        q = q.where(T.runs.c.lifecycle == "active")
    return list(conn.execute(q.order_by(T.runs.c.id)).scalars())


def _keep_reason(item: TrashItem, sources: dict[str, list[str]], inputs: dict[str, list[str]],
                 runs: list[str], restored: list[str] | None = None) -> str:
    if restored:  # purging the experiment would leave them pointing at nothing
        return ("holds run(s) restored out of it, live again: " + ", ".join(restored)
                + "; restore the experiment, or delete those runs again")
    mine = runs if item.kind == "experiment" else [item.identifier] if item.kind == "run" else []
    if any(_WRITING in sources.get(r, ()) for r in mine):
        return ("a writer is still logging to it (its heartbeat is fresh); it is purged once "
                "that process has ended")
    if item.kind == "run" and item.identifier in sources:
        return ("the source run of live model version(s) " + ", ".join(sources[item.identifier])
                + "; delete those first or restore the run")
    if item.kind == "experiment":
        used = sorted({mv for r in runs for mv in sources.get(r, ())})
        if used:
            return ("holds the source runs of live model version(s) " + ", ".join(used)
                    + "; delete those first or restore the experiment")
    if item.kind == "dataset_version" and item.identifier in inputs:
        return ("an input of live model version(s) " + ", ".join(inputs[item.identifier])
                + "; delete those first or restore it")
    return ""


# -- removing -----------------------------------------------------------------------------
def _audit(conn: Any, actor: str, action: str, target: str, before: Any, now_ms: int) -> None:
    from ..registry import audit

    audit.append(conn, actor, action, target, before, None, now_ms)


def _finish_killed(index: Any, root: Path) -> None:
    """Delete what a killed purge left in ``purging/`` (runs whose rows are gone already;
    the others are still in the trash and are finished with it)."""
    from ..store.sql import tables as T

    where = root / PURGING_DIR
    if not where.is_dir():
        return
    names = [p.name for p in where.iterdir()]
    with index.session() as conn:
        known = set(conn.execute(sa.select(T.runs.c.id).where(T.runs.c.id.in_(names))).scalars())
    for name in names:
        if name not in known:
            shutil.rmtree(where / name, ignore_errors=True)


def _run_tables() -> Iterable[Any]:
    from ..store.sql import tables as T
    from ..store.sql import tables_data as TD

    return (T.params, T.tags, T.latest_metrics, T.metric_segments, T.artifacts, T.writers,
            TD.run_inputs)


def _purge_run(index: Any, root: Path | None, run_id: str, actor: str, now_ms: int) -> None:
    # The check, the journal's move and the rows' removal are one index transaction: a
    # restore (a journal append made inside the index's write transaction) lands either
    # before it, and the run stays, or after it, and finds no run.
    with index.session(write=True) as conn:
        aside = _drop_run(conn, root, run_id, actor, now_ms, audit=True)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def _drop_run(conn: Any, root: Path | None, run_id: str, actor: str, now_ms: int,
              audit: bool) -> Path | None:
    """Remove run ``run_id`` unless it is live, in the caller's write transaction; returns
    where its journal was moved (deleted by the caller once the transaction committed)."""
    from ..store.sql import tables as T

    row = conn.execute(sa.select(T.runs.c.experiment_id, T.runs.c.name, T.runs.c.lifecycle)
                       .where(T.runs.c.id == run_id)).first()
    if row is not None and row.lifecycle == "active":  # restored since it was listed
        return None
    aside = None
    if root is not None:
        src, aside = root / "runs" / run_id, root / PURGING_DIR / run_id
        if src.is_dir():
            aside.parent.mkdir(exist_ok=True)
            if aside.exists():  # a run purged, then a run dir copied in again
                shutil.rmtree(aside)
            os.replace(src, aside)
    for table in _run_tables():
        conn.execute(sa.delete(table).where(table.c.run_id == run_id))
    conn.execute(sa.delete(T.runs).where(T.runs.c.id == run_id))
    if audit and row is not None:
        _audit(conn, actor, "run.purge", f"runs/{run_id}",
               {"experiment_id": row.experiment_id, "name": row.name}, now_ms)
    return aside


def _purge_experiment(index: Any, root: Path | None, item: TrashItem, actor: str,
                      now_ms: int) -> None:
    """The experiment, its runs and its file in one index transaction (a restore, which
    rewrites the file in its own, comes wholly before or after), if it is still deleted."""
    from ..store.sql import tables as T

    E = T.experiments
    asides: list[Path] = []
    with index.session(write=True) as conn:
        state = conn.execute(sa.select(E.c.lifecycle).where(E.c.id == item.identifier)).scalar()
        if state == "active" or _runs_of(conn, item.identifier, live=True):
            return  # restored since the trash was listed, or a run of it was
        for run_id in _runs_of(conn, item.identifier):
            aside = _drop_run(conn, root, run_id, actor, now_ms, audit=False)
            if aside is not None:
                asides.append(aside)
        gone = conn.execute(sa.delete(E).where(E.c.id == item.identifier,
                                               E.c.lifecycle == "deleted")).rowcount
        if root is not None:
            try:
                (root / "experiments" / f"{item.identifier}.json").unlink()
            except FileNotFoundError:
                pass
        if gone:
            _audit(conn, actor, "experiment.purge", f"experiments/{item.identifier}",
                   {"name": item.name, "deleted_at": item.deleted_at,
                    "deleted_by": item.deleted_by}, now_ms)
    for aside in asides:
        shutil.rmtree(aside, ignore_errors=True)


def _purge_dataset_version(index: Any, item: TrashItem, actor: str, now_ms: int) -> None:
    from ..data.catalog import top_key
    from ..registry import repo
    from ..store.sql import tables_data as TD

    name, _, number = item.identifier.rpartition("@")
    version = int(number)
    V, A, D, RI = TD.dataset_versions, TD.dataset_aliases, TD.derivations, TD.run_inputs
    with index.session(write=True) as conn:
        row = conn.execute(sa.select(V).where(V.c.dataset == name, V.c.version == version,
                                              V.c.deleted_at.is_not(None))).first()
        if row is None:  # restored or purged meanwhile
            return
        top = repo.get_setting(conn, top_key(name))
        if top is None or int(top) < version:  # its number is never given again
            repo.put_setting(conn, top_key(name), version)
        conn.execute(sa.delete(A).where(A.c.dataset == name, A.c.version == version))
        conn.execute(sa.delete(D).where(D.c.dataset == name, D.c.version == version))
        conn.execute(sa.delete(RI).where(RI.c.dataset == name, RI.c.version == version))
        conn.execute(sa.delete(V).where(V.c.dataset == name, V.c.version == version))
        _audit(conn, actor, "dataset_version.purge", f"dataset:{item.identifier}",
               {"tree": row.tree_oid, "packs": json.loads(row.packs),
                "deleted_at": row.deleted_at, "deleted_by": row.deleted_by}, now_ms)


def _purge_model_version(index: Any, item: TrashItem, actor: str, now_ms: int) -> None:
    from ..registry import repo

    name, _, version = item.identifier.rpartition("/")
    M = repo.MV
    with index.session(write=True) as conn:
        row = repo.trashed_row(conn, name, version)
        if row is None:  # restored or purged meanwhile
            return
        conn.execute(sa.delete(M).where(M.c.name == name, M.c.version == version,
                                        M.c.deleted_at.is_not(None)))
        repo.drop_model_settings(conn, name, version)
        # The number stays among the model's deleted versions: never given again.
        repo.add_deleted(conn, name, version, row.created_at)
        _audit(conn, actor, "model_version.purge", f"model:{name}/{version}",
               {"tree": row.tree_oid, "digest": row.digest, "deleted_at": row.deleted_at,
                "deleted_by": row.deleted_by}, now_ms)


def days_ms(days: float) -> int:
    """``days`` (CAIRN_TRASH_DAYS, ``--older-than``) in ms."""
    return int(days * DAY_MS)
