"""Experiment operations shared by every store whose experiments live in a SqlIndex."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Protocol

from ... import clock
from ...entities import LIFECYCLES, Experiment
from ...errors import AlreadyExists, InvalidArgument, NotFound
from ..validation import check_experiment_name, check_json

if TYPE_CHECKING:
    from .index import SqlIndex


class _IndexedStore(Protocol):
    """What the mixin needs of the store it is mixed into."""

    @property
    def index(self) -> SqlIndex: ...

    def open(self) -> object: ...

    def _experiment_created(self, exp: Experiment) -> None: ...


class IndexedExperiments:
    """Mixin for stores with ``self.index`` (a SqlIndex) and ``self.open()``; ids and times
    come from :mod:`cairn.clock`.  ``_experiment_created`` runs inside the insert's
    transaction, so a store can persist more (the local store's experiment file) atomically."""

    def create_experiment(self: _IndexedStore, name: str, tags: Mapping[str, str] | None = None,
                          experiment_id: str | None = None) -> Experiment:
        check_experiment_name(name)
        check_json(dict(tags or {}), "experiment tags")
        self.open()
        exp = Experiment(experiment_id or clock.new_experiment_id(), name, clock.now_ms(), "active",
                         dict(tags or {}))
        try:
            with self.index.session(write=True) as conn:
                self.index.insert_experiment(conn, exp)
                self._experiment_created(exp)
        except AlreadyExists:
            raise AlreadyExists(f"an experiment named {name!r} already exists") from None
        return exp

    def _experiment_created(self, exp: Experiment) -> None:
        pass

    def update_experiment(self: _IndexedStore, exp: Experiment, name: str, lifecycle: str,
                          tags: Mapping[str, str]) -> Experiment:
        """Rename, delete or restore (``lifecycle``) and retag ``exp`` in one transaction; its
        runs follow its lifecycle (as in MLflow).  A store that keeps more of an experiment
        (the local store's experiment file) rewrites that in the same transaction.
        (:class:`~cairn.store.base.ExperimentUpdates`.)"""
        import dataclasses
        import json

        import sqlalchemy as sa

        from . import tables as T

        check_json([name, lifecycle, dict(tags)], "experiment")
        new = dataclasses.replace(exp, name=name, lifecycle=lifecycle, tags=dict(tags))
        self.open()
        with self.index.session(write=True) as conn:
            if new.name != exp.name and conn.execute(sa.select(T.experiments.c.id).where(
                    T.experiments.c.name == new.name)).first() is not None:
                raise AlreadyExists(f"Experiment(name={new.name}) already exists")
            if not conn.execute(sa.update(T.experiments).where(T.experiments.c.id == exp.id)
                                .values(name=new.name, lifecycle=new.lifecycle,
                                        tags=json.dumps(dict(new.tags)))).rowcount:
                # Purged from the trash since ``exp`` was read: no file is written back
                # for a reindex to bring it back empty.
                raise NotFound(f"experiment {exp.id!r} does not exist (it was purged from "
                               "the trash)")
            if new.lifecycle != exp.lifecycle:
                runs = sa.update(T.runs).where(T.runs.c.experiment_id == exp.id)
                if new.lifecycle == "active":
                    # A run deleted on its own stays deleted, as a rebuild from the
                    # journals would leave it (its document holds its own lifecycle).
                    own = [rid for rid, doc in conn.execute(
                        sa.select(T.runs.c.id, T.runs.c.doc).where(
                            T.runs.c.experiment_id == exp.id, T.runs.c.doc.contains('"r":')))
                        if (json.loads(doc).get("r") or {}).get("l", [0, ""])[1] == "deleted"]
                    if own:
                        runs = runs.where(T.runs.c.id.not_in(own))
                conn.execute(runs.values(lifecycle=new.lifecycle))
            self._experiment_created(new)
        return new

    def rename_experiment(self: Any, experiment_id: str, name: str) -> Experiment:
        """(:class:`~cairn.store.base.ExperimentChanges`.)"""
        check_experiment_name(name)
        exp = self.get_experiment(experiment_id)
        if name == exp.name:
            return exp
        new: Experiment = self.update_experiment(exp, name, exp.lifecycle,
                                                 exp.tags)
        return new

    def set_experiment_lifecycle(self: Any, experiment_id: str, lifecycle: str) -> Experiment:
        """(:class:`~cairn.store.base.ExperimentChanges`.)"""
        if lifecycle not in LIFECYCLES:
            raise InvalidArgument(f"lifecycle must be one of {list(LIFECYCLES)}, got {lifecycle!r}")
        exp = self.get_experiment(experiment_id)
        new: Experiment = self.update_experiment(exp, exp.name, lifecycle,
                                                 exp.tags)
        return new

    def get_experiment(self: _IndexedStore, experiment_id: str) -> Experiment:
        self.open()
        exp = self.index.get_experiment(str(experiment_id))
        if exp is None:
            raise NotFound(f"experiment {experiment_id!r} does not exist")
        return exp

    def get_experiment_by_name(self: _IndexedStore, name: str) -> Experiment | None:
        self.open()
        return self.index.get_experiment_by_name(name)

    def list_experiments(self: _IndexedStore) -> list[Experiment]:
        self.open()
        return self.index.list_experiments()
