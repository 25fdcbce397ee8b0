"""Experiment operations shared by every store whose experiments live in a SqlIndex."""

from __future__ import annotations

from typing import Mapping

from ...entities import Experiment
from ...errors import AlreadyExists, NotFound
from ..validation import check_experiment_name


class IndexedExperiments:
    """Mixin for stores with ``self.index`` (a SqlIndex), ``self.open()`` and ids from
    ``new_experiment_id``/``now_ms``.  ``_experiment_created`` runs inside the insert's
    transaction, so a store can persist more (the local store's experiment file) atomically."""

    def create_experiment(self, name: str, tags: Mapping[str, str] | None = None,
                          experiment_id: str | None = None) -> Experiment:
        from ..local import new_experiment_id, now_ms

        check_experiment_name(name)
        self.open()
        exp = Experiment(experiment_id or new_experiment_id(), name, now_ms(), "active",
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

    def get_experiment(self, experiment_id: str) -> Experiment:
        self.open()
        exp = self.index.get_experiment(str(experiment_id))
        if exp is None:
            raise NotFound(f"experiment {experiment_id!r} does not exist")
        return exp

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        self.open()
        return self.index.get_experiment_by_name(name)

    def list_experiments(self) -> list[Experiment]:
        self.open()
        return self.index.list_experiments()
