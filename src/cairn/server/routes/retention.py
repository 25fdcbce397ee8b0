"""Retention policies and artifact TTL (:mod:`cairn.lifecycle.retention`) over REST.

An experiment's policy is its admins' to set (a policy trashes runs); a data set's, a
server admin's (data sets belong to no experiment); the plan, which spans every
experiment, a server admin's too.  The library audits every change with the caller as
actor, so the routes add no audit event of their own.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request

from ...errors import InvalidArgument, PermissionDenied
from ..auth import Principal
from ..context import ctx, principal

router = APIRouter(tags=["retention"])
User = Annotated[Principal, Depends(principal)]
# Optional in the schema so that the caller's role is checked before the body is: a body
# missing or wrong is a 400 from the library, never a 422 ahead of a 403.
PolicyBody = Annotated[dict[str, Any] | None, Body(description="keep_days, keep_last, "
                                                               "keep_registered, keep_tagged, "
                                                               "artifacts_ttl_days")]


def _r() -> Any:
    from ...lifecycle import retention

    return retention


def _policy(body: dict[str, Any] | None) -> dict[str, Any]:
    if body is None:
        raise InvalidArgument("send the policy as a JSON object: keep_days, keep_last, "
                              "keep_registered, keep_tagged, artifacts_ttl_days")
    return body


def _json(rec: Any) -> dict[str, Any] | None:
    return None if rec is None else rec.to_dict()


@router.get("/retention", summary="Retention policies the caller may see")
def list_policies(request: Request, p: User) -> dict[str, Any]:
    c = ctx(request)
    found = _r().list_policies(c.store)
    exps = [r.target for r in found if r.kind == "experiment"]
    seen = set(exps) if not c.guard.enabled else set(c.guard.visible(p, "experiment", exps))
    try:
        c.guard.require_somewhere(p, "viewer") if c.guard.enabled else None
        datasets = True
    except PermissionDenied:
        datasets = False
    return {"policies": [r.to_dict() for r in found
                         if (r.kind == "experiment" and r.target in seen)
                         or (r.kind == "dataset" and datasets)]}


@router.get("/retention/plan", summary="What applying every policy now would do (server admins)")
def plan(request: Request, p: User) -> dict[str, Any]:
    c = ctx(request)
    return {"actions": [a.to_dict() for a in _r().plan(c.store)]}


@router.get("/retention/experiments/{experiment_id}", summary="An experiment's policy (or null)")
def get_experiment_policy(experiment_id: str, request: Request, p: User) -> dict[str, Any]:
    c = ctx(request)
    exp = c.store.get_experiment(experiment_id)
    c.guard.need(p, "experiment", exp.id)
    return {"policy": _json(_r().get_policy(c.store, "experiment", exp.id))}


@router.put("/retention/experiments/{experiment_id}",
            summary="Set an experiment's policy (its admins; refused if it would trash what a "
                    "Production or aliased model version needs)")
def set_experiment_policy(experiment_id: str, request: Request, p: User,
                          body: PolicyBody = None) -> dict[str, Any]:
    c = ctx(request)
    exp = c.store.get_experiment(experiment_id)
    c.guard.need(p, "experiment", exp.id)
    return _r().set_policy(c.store, "experiment", exp.id, _policy(body), actor=p.user).to_dict()


@router.delete("/retention/experiments/{experiment_id}", summary="Remove an experiment's policy")
def unset_experiment_policy(experiment_id: str, request: Request, p: User) -> dict[str, Any]:
    c = ctx(request)
    exp = c.store.get_experiment(experiment_id)
    c.guard.need(p, "experiment", exp.id)
    return _r().unset_policy(c.store, "experiment", exp.id, actor=p.user).to_dict()


@router.get("/retention/datasets/{name:path}", summary="A data set's policy (or null)")
def get_dataset_policy(name: str, request: Request, p: User) -> dict[str, Any]:
    c = ctx(request)
    return {"policy": _json(_r().get_policy(c.store, "dataset", name))}


@router.put("/retention/datasets/{name:path}", summary="Set a data set's policy (server admins)")
def set_dataset_policy(name: str, request: Request, p: User,
                       body: PolicyBody = None) -> dict[str, Any]:
    c = ctx(request)
    return _r().set_policy(c.store, "dataset", name, _policy(body), actor=p.user).to_dict()


@router.delete("/retention/datasets/{name:path}", summary="Remove a data set's policy")
def unset_dataset_policy(name: str, request: Request, p: User) -> dict[str, Any]:
    c = ctx(request)
    return _r().unset_policy(c.store, "dataset", name, actor=p.user).to_dict()


@router.put("/runs/{run_id}/artifacts/ttl",
            summary="Make a run's artifacts expire DAYS after it ended (null: the run's own TTL "
                    "removed); admins of its experiment")
def set_artifacts_ttl(run_id: str, request: Request, p: User,
                      body: Annotated[dict[str, Any] | None, Body(
                          description='{"days": N} or {"days": null}')] = None) -> dict[str, Any]:
    c = ctx(request)
    run = c.store.get_run(run_id)
    c.guard.need(p, "experiment", run.experiment_id)
    if body is None or set(body) != {"days"}:
        raise InvalidArgument('the body must be {"days": N} (a whole number of days, or null)')
    days = body["days"]
    when = _r().set_artifacts_ttl(c.store, run_id, days, actor=p.user)
    return {"run_id": run_id, "ttl_days": days, "expires": when}
