"""Experiments: list, create, get by id or name, rename, delete and restore (soft)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field, StrictBool

from ...errors import InvalidArgument, NotFound
from ...store.base import ExperimentChanges
from ...store.wire import experiment_to_json, no_nul
from ..auth import Principal
from ..context import ctx, principal
from ._common import check_reserved_tags

router = APIRouter(tags=["experiments"])
User = Annotated[Principal, Depends(principal)]


class Experiment(BaseModel):
    id: str
    name: str
    created_at: int
    lifecycle: str
    tags: dict[str, str]


class RenameExperiment(BaseModel):
    name: str = Field(min_length=1, max_length=500)


class ExperimentList(BaseModel):
    experiments: list[Experiment]


class CreateExperiment(BaseModel):
    name: str = Field(min_length=1, max_length=500)
    tags: dict[str, Annotated[str, Field(max_length=8000)]] = Field(default_factory=dict)


@router.get("/experiments", response_model=ExperimentList, summary="Experiments you may view")
def list_experiments(request: Request, p: User):
    c = ctx(request)
    exps = c.store.list_experiments()
    if not c.guard.sees_all(p, "experiment"):
        ok = set(c.guard.visible(p, "experiment", [e.id for e in exps]))
        exps = [e for e in exps if e.id in ok]
    return {"experiments": [experiment_to_json(e) for e in exps]}


@router.post("/experiments", response_model=Experiment, status_code=201,
             summary="Create an experiment (409 if the name is taken)")
def create_experiment(body: CreateExperiment, request: Request, p: User):
    c = ctx(request)
    no_nul(body.model_dump(), "experiment")
    check_reserved_tags(c, p, body.tags)
    exp = c.store.create_experiment(body.name, body.tags)
    if c.settings.auth and not p.is_admin:
        c.auth_db.grant(p.user, "experiment", exp.id, "admin", granted_by=p.user)
        c.guard.forget()
    c.audit(p, "experiment.create", f"experiments/{exp.id}", None, experiment_to_json(exp))
    return experiment_to_json(exp)


@router.get("/experiments/by-name", response_model=Experiment,
            summary="The experiment with this exact name (404 if none)")
def experiment_by_name(request: Request, p: User, name: Annotated[str, Query(max_length=500)]):
    c = ctx(request)
    exp = c.store.get_experiment_by_name(name)
    if exp is None:
        raise NotFound(f"no experiment named {name!r}")
    c.guard.need(p, "experiment", exp.id)
    return experiment_to_json(exp)


@router.get("/experiments/{experiment_id}", response_model=Experiment)
def get_experiment(experiment_id: str, request: Request, p: User):
    c = ctx(request)
    exp = c.store.get_experiment(experiment_id)
    c.guard.need(p, "experiment", exp.id)
    return experiment_to_json(exp)


def _changes(c) -> ExperimentChanges:
    if not isinstance(c.store, ExperimentChanges):
        raise InvalidArgument(f"the store {c.store.uri} cannot rename or delete experiments")
    return c.store


@router.patch("/experiments/{experiment_id}", response_model=Experiment,
              summary="Rename an experiment (409 if the name is taken)")
def rename_experiment(experiment_id: str, body: RenameExperiment, request: Request, p: User):
    c = ctx(request)
    no_nul(body.name, "experiment name")
    exp = c.store.get_experiment(experiment_id)
    c.guard.need(p, "experiment", exp.id)
    new = _changes(c).rename_experiment(exp.id, body.name)
    c.audit(p, "experiment.rename", f"experiments/{exp.id}", exp.name, new.name)
    return experiment_to_json(new)


def _set_lifecycle(experiment_id: str, request: Request, p: Principal, lifecycle: str) -> dict:
    c = ctx(request)
    exp = c.store.get_experiment(experiment_id)
    c.guard.need(p, "experiment", exp.id)
    _changes(c)
    from ... import clock
    from ...lifecycle.trash import set_experiment_lifecycle

    # to the trash with when and by whom (in its tags, which a reindex keeps)
    new = set_experiment_lifecycle(c.store, exp.id, lifecycle, p.user, clock.now_ms())
    c.audit(p, "experiment.delete" if lifecycle == "deleted" else "experiment.restore",
            f"experiments/{exp.id}", {"lifecycle": exp.lifecycle}, {"lifecycle": lifecycle})
    return experiment_to_json(new)


@router.post("/experiments/{experiment_id}/delete", response_model=Experiment,
             summary="Delete an experiment and its runs (soft: hidden, kept, restorable)")
def delete_experiment(experiment_id: str, request: Request, p: User):
    return _set_lifecycle(experiment_id, request, p, "deleted")


@router.post("/experiments/{experiment_id}/restore", response_model=Experiment,
             summary="Restore a deleted experiment and its runs")
def restore_experiment(experiment_id: str, request: Request, p: User):
    return _set_lifecycle(experiment_id, request, p, "active")


# -- the trash (server admins) -------------------------------------------------------
class EmptyTrash(BaseModel):
    older_than_days: Annotated[float, Field(ge=0, le=1e6, strict=True)] | None = Field(
        default=None, description="purge only what was deleted at least this many days ago "
                                  "(none: everything in the trash)")
    dry_run: StrictBool = False


@router.get("/trash", summary="What is in the trash: deleted runs, experiments, data set "
                              "versions and model versions (server admins)")
def list_trash(request: Request, p: User) -> dict:
    from ...lifecycle.trash import list_trash as listed

    c = ctx(request)
    return {"items": [i.to_json() for i in listed(c.store)]}


@router.post("/trash/empty", summary="Purge the trash for good, or what was deleted at least "
                                     "older_than_days ago (server admins; audited)")
def empty_trash(body: EmptyTrash, request: Request, p: User) -> dict:
    from ... import clock
    from ...lifecycle.trash import days_ms, purge

    c = ctx(request)
    older = None if body.older_than_days is None else days_ms(body.older_than_days)
    report = purge(c.store, older_than_ms=older, now_ms=clock.now_ms(), dry_run=body.dry_run,
                   actor=p.user)
    if not body.dry_run and report.purged:
        c.audit(p, "trash.empty", "trash", None,
                {"older_than_days": body.older_than_days, "purged": len(report.purged)})
    return report.to_json()
