"""Endpoints only the web UI needs, under ``/api/v1/ui``.

The runs table asks for lean pages (only the columns shown), the column chooser for
keys by substring, charts for several series at once sized to their pixels, and the
compare page for statistics computed here (numpy, not the browser).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field, StrictInt

from ...errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from ...search import encode_page_token
from ...store.wire import INT64_MAX, INT64_MIN, jfloat, no_nul, run_to_json
from ..auth import Principal
from ..context import ServerContext, ctx, principal
from ..routes._common import require_run
from . import columns as colmod
from .aggregate import aggregate
from .series import series, window

router = APIRouter(tags=["ui"])
User = Annotated[Principal, Depends(principal)]
ExpId = Annotated[str, Field(min_length=1, max_length=64)]
Column = Annotated[str, Field(min_length=1, max_length=260,
                              pattern=r"^(params|metrics|tags)\.[^\x00]+$")]
MAX_OFFSET = 1 << 40


class TableQuery(BaseModel):
    experiment_ids: list[ExpId] | None = Field(default=None, max_length=1000)
    filter: Annotated[str, Field(max_length=20_000)] = ""
    order_by: list[Annotated[str, Field(max_length=1000)]] = Field(default_factory=list,
                                                                  max_length=10)
    columns: list[Column] = Field(default_factory=list, max_length=200)
    offset: Annotated[StrictInt, Field(ge=0, le=MAX_OFFSET)] = 0
    limit: Annotated[StrictInt, Field(ge=1, le=5000)] = 500
    lifecycle: Literal["active", "deleted"] = "active"  # "deleted": the table's *show deleted*


def _visible_experiments(c: ServerContext, p: Principal, ids: list[str] | None) -> list[str] | None:
    """The experiment ids ``p`` may search ([] for none), as POST /runs/search decides."""
    if c.guard.enabled and not c.guard.sees_all(p, "experiment"):
        allowed = c.guard.visible(p, "experiment", [e.id for e in c.store.list_experiments()])
        return allowed if ids is None else [i for i in ids if i in set(allowed)]
    return ids


def _cell(run: Any, column: str) -> Any:
    kind, _, key = column.partition(".")
    if kind == "metrics":
        v = run.metrics.get(key)
        return None if v is None else jfloat(v)
    return (run.params if kind == "params" else run.tags).get(key)


@router.post("/runs", summary="A page of the runs table: only the columns asked for")
def table(body: TableQuery, request: Request, p: User) -> dict[str, Any]:
    c = ctx(request)
    no_nul(body.model_dump(), "runs table query")
    ids = _visible_experiments(c, p, body.experiment_ids)
    if ids == []:
        return {"rows": [], "offset": body.offset, "next_offset": None}
    token = encode_page_token(body.offset) if body.offset else None
    runs, more = c.store.search_runs(ids, body.filter, body.order_by, body.limit, token,
                                     **({"lifecycle": "deleted"} if body.lifecycle == "deleted"
                                        else {}))
    rows = [{"id": r.id, "name": r.name, "experiment_id": r.experiment_id,
             "experiment": r.experiment, "status": r.status.value, "start_time": r.start_time,
             "end_time": r.end_time, "user": r.user, "parent_id": r.parent_id,
             "lifecycle": r.lifecycle,
             "cells": [_cell(r, col) for col in body.columns]} for r in runs]
    return {"rows": rows, "offset": body.offset,
            "next_offset": body.offset + len(runs) if more else None}


@router.get("/keys", summary="Param, metric or tag keys of some experiments' runs (lazily)")
def keys(request: Request, p: User, kind: Annotated[Literal["params", "metrics", "tags"], Query()],
         experiment_ids: Annotated[list[str] | None, Query(max_length=1000)] = None,
         contains: Annotated[str, Query(max_length=250)] = "",
         limit: Annotated[int, Query(ge=1, le=5000)] = 200) -> dict[str, Any]:
    c = ctx(request)
    no_nul([contains, *(experiment_ids or [])], "key query")
    if any(len(i) > 64 for i in experiment_ids or ()):
        raise InvalidArgument("an experiment id is longer than 64 characters")
    ids = _visible_experiments(c, p, experiment_ids)
    if ids == []:
        return {"keys": [], "truncated": False}
    found, truncated = colmod.list_keys(c.store, ids, kind, contains, limit)
    return {"keys": found, "truncated": truncated}


@router.get("/session",
            summary="Who the UI signs in as: {auth, user}, 200 whether or not the token is good")
def session(request: Request) -> dict[str, Any]:
    # The UI asks this before anything else, and to check a typed token before keeping
    # it: "sign in first" and "that token was refused" are answers here, not 401s that
    # the browser would log as console errors.  Nothing but the user's name comes back.
    c = ctx(request)
    if not c.settings.auth:
        return {"auth": False, "user": principal(request).user}
    try:
        user = principal(request).user
    except Unauthenticated:
        user = None
    return {"auth": True, "user": user}


@router.get("/runs/{run_id}",
            summary="A run for its page, with what the caller may change (`can`): 200 with "
                    "run=null, the status and the message when there is none to show")
def run_page(request: Request, p: User,
             run_id: Annotated[str, Path(min_length=1, max_length=1000)]) -> dict[str, Any]:
    # A stale link to a deleted run or a mistyped id is an ordinary state of the run
    # page, not a failed request: a 404 or 403 would be a browser console error.
    c = ctx(request)
    try:
        if len(run_id) > 64 or "\x00" in run_id:
            raise NotFound(f"run {run_id[:64]!r} does not exist")
        require_run(c, p, run_id)
        run = c.store.get_run(run_id)
    except (NotFound, PermissionDenied) as exc:
        return {"run": None, "status": exc.http_status, "message": exc.message, "can": None}
    return {"run": run_to_json(run), "status": 200, "message": None, "can": run_can(c, p, run)}


def run_can(c: ServerContext, p: Principal, run: Any) -> dict[str, bool]:
    """What the caller may change on a run, as the run routes' guard decides: ``edit`` (tags,
    notes, logging, ending it) needs the editor role on the run's experiment; ``delete``
    (and restore) what the permissions table asks of ``POST /runs/{id}/delete``."""
    from .trash import may_delete

    return {"edit": c.guard.allows(p, "editor", "experiment", run.experiment_id),
            "delete": may_delete(c, p, "run", run.experiment_id)}


ROLLBACK_STAGES = ("Production", "Staging")  # the stages the model page's rollback form offers


def model_can(c: ServerContext, p: Principal, name: str) -> dict[str, bool]:
    """What the caller may do to a registered model, as the model routes' guard decides.

    ``edit`` (editor): move versions, request transitions, set aliases, roll back;
    ``approve`` (approver): approve or reject requests (withdrawing one's own needs only
    ``edit``);
    ``admin``: set stage policies;
    ``delete``: move a version to the trash (and force it, for a protected one) and restore
    one, as the permissions table asks of ``DELETE /models/{name}/versions/{version}``.
    These are the roles only: the registry also refuses a requester's approval of their own
    request, and, where a stage's policy names its approvers, a decision or rollback by
    anyone else; the page checks those rules itself from the requests and policies it reads.
    """
    from .trash import may_delete

    return {"edit": c.guard.allows(p, "editor", "model", name),
            "approve": c.guard.allows(p, "approver", "model", name),
            "admin": c.guard.allows(p, "admin", "model", name),
            "delete": may_delete(c, p, "model_version", name)}


@router.get("/models/{name}",
            summary="A registered model for its page, with what the caller may do (`can`) and "
                    "what a rollback of each stage can put back (`rollback`, the default "
                    "first): 200 with model=null, the status and the message when there is "
                    "none to show")
def model_page(request: Request, p: User,
               name: Annotated[str, Path(min_length=1, max_length=1000)]) -> dict[str, Any]:
    # As the run page: a mistyped model name in the address bar is an answer, not a 404.
    from ..routes._json import finite
    from ..routes.models import _registry

    c = ctx(request)
    try:
        if len(name) > 256 or "\x00" in name:
            raise NotFound(f"registered model {name[:256]!r} does not exist")
        c.guard.need(p, "model", name)
        reg = _registry(c, p)
        model = reg.get_registered_model(name)
    except (NotFound, PermissionDenied) as exc:
        return {"model": None, "status": exc.http_status, "message": exc.message, "can": None,
                "rollback": None}
    data = json.loads(json.dumps(dataclasses.asdict(model), default=str))
    # What the rollback form may offer per stage (the registry's rule, the default first),
    # so that the page never sends a rollback the registry refuses.
    rollback = {st: reg.rollback_targets(name, st) for st in ROLLBACK_STAGES}
    return {"model": finite(data), "status": 200, "message": None, "can": model_can(c, p, name),
            "rollback": rollback}


@router.get("/datasets/{name:path}",
            summary="A data set's versions for its page: 200 with versions=null, the status and "
                    "the message when there is none to show")
def dataset_page(request: Request, p: User,
                 name: Annotated[str, Path(min_length=1, max_length=1000)]) -> dict[str, Any]:
    # As GET /datasets/{name}/versions, but a mistyped name is an answer, not a 404.
    from ..routes._json import finite
    from ..routes.datasets import _datasets, _version_json

    c = ctx(request)
    try:
        if len(name) > 256 or "\x00" in name:
            raise NotFound(f"no data set named {name[:256]!r}")
        c.guard.enforce(p, in_route=True)  # viewer somewhere, from the permissions table
        ds = _datasets(c, p)
        found = ds.versions(name)
        versions = [_version_json(v) for v in found]
    except (NotFound, PermissionDenied) as exc:
        return {"versions": None, "status": exc.http_status, "message": exc.message,
                "can": None, "protected": None}
    data = json.loads(json.dumps(versions, default=str))
    return {"versions": finite(data), "status": 200, "message": None,
            "can": dataset_can(c, p), "protected": _dataset_protection(ds, found)}


def dataset_can(c: ServerContext, p: Principal) -> dict[str, bool]:
    """What the caller may do to a data set's versions: ``delete`` and ``restore`` (the
    permissions table's role for those routes), ``force`` a protected version's deletion
    (a server admin only, as the delete route decides)."""
    from .trash import may_delete

    return {"delete": may_delete(c, p, "dataset_version", ""),
            "restore": may_delete(c, p, "dataset_version", "", restore=True),
            "force": bool(p.is_admin) and may_delete(c, p, "dataset_version", "")}


def _dataset_protection(ds: Any, versions: list[Any]) -> dict[str, list[str]]:
    """Version -> why a delete would be refused without force (live registered model
    versions it is an input of, aliases pointing at it), so the page says so instead of
    meeting a 409."""
    protection = getattr(getattr(ds, "catalog", None), "protection", None)
    if protection is None:  # a Cairn whose data sets have no trash
        return {}
    out = {}
    for v in versions:
        reasons = protection(v.name, v.version)
        if reasons:
            out[str(v.version)] = reasons
    return out


@router.get("/runs/{run_id}/series",
            summary="Chart data for metric keys: exact when it fits `points`, else min/max envelope")
def run_series(request: Request, p: User, run_id: Annotated[str, Path(min_length=1, max_length=64)],
               key: Annotated[list[str], Query(min_length=1, max_length=50)],
               points: Annotated[int, Query(ge=2, le=20_000)] = 1000,
               step_min: Annotated[int | None, Query(ge=INT64_MIN, le=INT64_MAX)] = None,
               step_max: Annotated[int | None, Query(ge=INT64_MIN, le=INT64_MAX)] = None
               ) -> dict[str, Any]:
    c = ctx(request)
    no_nul([run_id, *key], "series query")
    if any(not k or len(k) > 250 for k in key):
        raise InvalidArgument("a metric key must be 1-250 characters")
    if step_min is not None and step_max is not None and step_min > step_max:
        raise InvalidArgument(f"step_min {step_min} is greater than step_max {step_max}")
    require_run(c, p, run_id)
    out = []
    for k in dict.fromkeys(key):
        h = c.store.get_metric_history(run_id, k)
        out.append(series(window(h, step_min, step_max), points, len(h)))
    return {"run_id": run_id, "series": out}


class AggregateQuery(BaseModel):
    run_ids: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(min_length=1,
                                                                             max_length=500)
    metric: Annotated[str, Field(min_length=1, max_length=250)]
    across: list[Annotated[str, Field(min_length=1, max_length=250)]] = Field(
        default_factory=lambda: ["seed"], max_length=20)
    summary: Literal["last", "min", "max"] = "last"
    points: Annotated[StrictInt, Field(ge=2, le=5000)] = 400


@router.post("/compare/aggregate",
             summary="Group runs by every param but `across` (the seeds); mean curves with 95% "
                     "bands; Welch's t and Mann-Whitney U between groups")
def compare_aggregate(body: AggregateQuery, request: Request, p: User) -> dict[str, Any]:
    c = ctx(request)
    no_nul(body.model_dump(), "aggregate query")
    runs = []
    for rid in dict.fromkeys(body.run_ids):
        require_run(c, p, rid)
        runs.append(c.store.get_run(rid))
    return aggregate(runs, c.store.get_metric_history, body.metric, body.across, body.summary,
                     body.points)


@router.get("/check-filter",
            summary="Whether a filter and order_by parse: 200 with ok=false and the message if not")
def check_filter(request: Request, p: User, filter: Annotated[str, Query(max_length=20_000)] = "",
                 order_by: Annotated[list[str] | None, Query(max_length=10)] = None
                 ) -> dict[str, Any]:
    # The search box checks as the user types; a 400 there would be a browser console
    # error for what is an ordinary, expected state of a half-typed filter.
    from ...errors import CairnError
    from ...search import parse_filter, parse_order_by

    try:
        parse_filter(filter)
        parse_order_by(order_by or [])
    except CairnError as exc:
        return {"ok": False, "message": exc.message,
                "position": exc.details.get("position")}
    return {"ok": True, "message": None, "position": None}


# The model page's monitoring tab has its own module: it reads monitoring's runs and tables.
from . import monitoring as _monitoring  # noqa: E402  (after this module's routes)

router.include_router(_monitoring.router)

# The KPIs page: the registry's governance KPIs over the models the caller may view.
from . import kpi as _kpi  # noqa: E402

router.include_router(_kpi.router)

# The trash page, and what the caller may delete or restore.
from . import trash as _trash  # noqa: E402

router.include_router(_trash.router)
