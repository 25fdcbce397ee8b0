"""The model registry over REST: models, versions, stages, approvals, aliases.

Roles are per registered model: viewer reads; editor moves versions between stages,
requests transitions and sets aliases; approver approves or rejects requests; admin
sets stage policies.  Every mutation is audited by the registry itself, in its own
transaction, with the caller as actor.  (Registering new versions needs the model's
files and flavor: the Python client does that against a database-backed store.)
"""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ..auth import Principal
from ..context import ServerContext, ctx, principal

router = APIRouter(tags=["models"])
User = Annotated[Principal, Depends(principal)]
Name = Annotated[str, Path(min_length=1, max_length=256)]
Version = Annotated[str, Path(min_length=1, max_length=64)]


def _registry(c: ServerContext, p: Principal):
    from ...client import Client
    from ...registry.service import Registry

    client = Client(c.store.uri, user=p.user)
    client._store = c.store
    return Registry(client)


def _out(value: Any) -> JSONResponse:
    def conv(v):
        return dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v

    data = [conv(v) for v in value] if isinstance(value, list) else conv(value)
    return JSONResponse(json.loads(json.dumps(data, default=str)))


class CreateModel(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=256)]
    description: Annotated[str, Field(max_length=10_000)] = ""
    tags: dict[Annotated[str, Field(max_length=250)], Annotated[str, Field(max_length=8000)]] = \
        Field(default_factory=dict)


class StageChange(BaseModel):
    stage: Annotated[str, Field(min_length=1, max_length=16)]
    comment: Annotated[str, Field(max_length=10_000)] = ""


class TransitionAsk(StageChange):
    version: Annotated[str, Field(min_length=1, max_length=64)]


class Decision(BaseModel):
    comment: Annotated[str, Field(max_length=10_000)] = ""


class Alias(BaseModel):
    version: Annotated[str, Field(min_length=1, max_length=64)]


class Policy(BaseModel):
    stage: Annotated[str, Field(min_length=1, max_length=16)]
    approvals: Annotated[int, Field(ge=0, le=100)] = 0
    approvers: list[Annotated[str, Field(max_length=256)]] | None = None
    exclusive: bool | None = None


def _need(c: ServerContext, p: Principal, role: str, name: str) -> None:
    c.guard.require(p, role, "model", name)


@router.get("/models", summary="Registered models you may view")
def list_models(request: Request, p: User):
    c = ctx(request)
    models = _registry(c, p).list_registered_models()
    if not c.guard.sees_all(p, "model"):
        ok = set(c.guard.visible(p, "model", [m.name for m in models]))
        models = [m for m in models if m.name in ok]
    return _out(models)


@router.post("/models", status_code=201, summary="Register a model name (409 if taken)")
def create_model(body: CreateModel, request: Request, p: User):
    c = ctx(request)
    c.guard.require_global(p, "editor", "model")
    model = _registry(c, p).create_registered_model(body.name, body.description, body.tags)
    if c.settings.auth and not p.is_admin:
        c.auth_db.grant(p.user, "model", body.name, "admin", granted_by=p.user)
        c.guard.forget()
    return _out(model)


@router.get("/models/{name}", summary="One registered model")
def get_model(name: Name, request: Request, p: User):
    c = ctx(request)
    _need(c, p, "viewer", name)
    return _out(_registry(c, p).get_registered_model(name))


@router.get("/models/{name}/versions", summary="Versions of a model (of one stage, if given)")
def list_versions(name: Name, request: Request, p: User,
                  stage: Annotated[str | None, Query(max_length=16)] = None):
    c = ctx(request)
    _need(c, p, "viewer", name)
    return _out(_registry(c, p).list_model_versions(name, stage))


@router.get("/models/{name}/versions/{version}", summary="One model version")
def get_version(name: Name, version: Version, request: Request, p: User):
    c = ctx(request)
    _need(c, p, "viewer", name)
    return _out(_registry(c, p).get_model_version(name, version))


@router.post("/models/{name}/versions/{version}/stage",
             summary="Move a version to a stage (403 when its policy needs approvals)")
def transition(name: Name, version: Version, body: StageChange, request: Request, p: User):
    c = ctx(request)
    _need(c, p, "editor", name)
    return _out(_registry(c, p).transition_stage(name, version, body.stage, body.comment))


@router.post("/models/{name}/requests", status_code=201, summary="Ask for a stage transition")
def request_transition(name: Name, body: TransitionAsk, request: Request, p: User):
    c = ctx(request)
    _need(c, p, "editor", name)
    return _out(_registry(c, p).request_transition(name, body.version, body.stage, body.comment))


@router.get("/models/{name}/requests", summary="Transition requests of a model")
def list_requests(name: Name, request: Request, p: User,
                  status: Annotated[str | None, Query(max_length=16)] = "pending"):
    c = ctx(request)
    _need(c, p, "viewer", name)
    return _out(_registry(c, p).list_transition_requests(name, status))


def _decide(request: Request, p: Principal, request_id: str, decision: str, comment: str):
    c = ctx(request)
    reg = _registry(c, p)
    req = reg.get_transition_request(request_id)
    _need(c, p, "approver", req.name)
    fn = reg.approve if decision == "approve" else reg.reject
    return _out(fn(request_id, comment))


@router.post("/models/requests/{request_id}/approve", summary="Approve a transition request")
def approve(request_id: Annotated[str, Path(max_length=64)], body: Decision, request: Request,
            p: User):
    return _decide(request, p, request_id, "approve", body.comment)


@router.post("/models/requests/{request_id}/reject", summary="Reject a transition request")
def reject(request_id: Annotated[str, Path(max_length=64)], body: Decision, request: Request,
           p: User):
    return _decide(request, p, request_id, "reject", body.comment)


@router.put("/models/{name}/aliases/{alias}", summary="Point an alias at a version")
def set_alias(name: Name, alias: Annotated[str, Path(min_length=1, max_length=128)], body: Alias,
              request: Request, p: User):
    c = ctx(request)
    _need(c, p, "editor", name)
    return _out(_registry(c, p).set_alias(name, alias, body.version))


@router.put("/models/{name}/policies", summary="Set a stage's approval policy (model admins)")
def set_policy(name: Name, body: Policy, request: Request, p: User):
    c = ctx(request)
    _need(c, p, "admin", name)
    return _out(_registry(c, p).set_stage_policy(name, body.stage, body.approvals,
                                                 body.approvers, body.exclusive))
