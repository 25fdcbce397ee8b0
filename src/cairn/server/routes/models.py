"""The model registry over REST: models, versions, stages, approvals, aliases.

Roles are per registered model: viewer reads; editor registers versions, moves them
between stages, requests transitions, sets aliases and records deployments; approver approves or rejects
requests; admin sets stage policies.  Every mutation is audited by the registry
itself, in its own transaction, with the caller as actor.

A version is registered from files a run already logged (``runs:/<run id>/model``,
see :mod:`cairn.registry.from_run`); that also needs viewer on the run's
experiment.  The server never unpickles a model: the flavor comes from the
metadata file logged next to it.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from ...errors import InvalidArgument
from ..auth import Principal
from ..context import ServerContext, ctx, principal
from ._common import require_run
from ._json import out as _out

router = APIRouter(tags=["models"])
User = Annotated[Principal, Depends(principal)]
Name = Annotated[str, Path(min_length=1, max_length=256)]
Version = Annotated[str, Path(min_length=1, max_length=64)]


def _registry(c: ServerContext, p: Principal):
    from ...services import registry_for

    return registry_for(c.store, p.user)


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


_INT64_MAX = (1 << 63) - 1
Oid = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class ModelFile(BaseModel):
    path: Annotated[str, Field(min_length=1, max_length=1000)]
    size: Annotated[StrictInt, Field(ge=0, le=_INT64_MAX)]
    digest: Oid
    chunks: list[tuple[Oid, Annotated[StrictInt, Field(ge=1, le=_INT64_MAX)]]] = \
        Field(default_factory=list)


class DatasetRef(BaseModel):
    """A data set version the model was trained on (as the Python API's ``datasets=``)."""

    model_config = ConfigDict(extra="allow")
    name: Annotated[str, Field(min_length=1, max_length=256)]
    version: Annotated[str, Field(max_length=64)] | StrictInt | None = None
    role: Annotated[str, Field(max_length=64)] | None = None


class RegisterVersion(BaseModel):
    source: Annotated[str, Field(min_length=7, max_length=1100,
                                 description="runs:/<run id>/<artifact path>")] | None = None
    files: list[ModelFile] | None = Field(
        default=None, max_length=100_000,
        description="a model saved by the client (with cairn-model.json), objects uploaded")
    params: dict[Annotated[str, Field(max_length=250)], Annotated[str, Field(max_length=8000)]] \
        | None = None
    fingerprint: dict[str, Any] | None = None
    datasets: list[Annotated[str, Field(min_length=1, max_length=600)] | DatasetRef] | None \
        = Field(default=None, max_length=1000)
    run_id: Annotated[str, Field(min_length=1, max_length=64,
                                 pattern=r"^[A-Za-z0-9_-]+$")] | None = None
    path: Annotated[str, Field(min_length=1, max_length=1000)] | None = None
    version: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    bump: Literal["major", "minor", "patch"] | None = None
    parent: Annotated[str, Field(min_length=1, max_length=330)] | None = None
    description: Annotated[str, Field(max_length=10_000)] = ""
    sign: bool = Field(default=True, description=(
        "false: the caller signs the version itself (POST .../signature) instead of this "
        "server's own default key, if it has one"))


class Rename(BaseModel):
    new_name: Annotated[str, Field(min_length=1, max_length=256)]


class Policy(BaseModel):
    stage: Annotated[str, Field(min_length=1, max_length=16)]
    approvals: Annotated[StrictInt, Field(ge=0, le=100)] = 0
    approvers: list[Annotated[str, Field(max_length=256)]] | None = None
    exclusive: bool | None = None


def _need(c: ServerContext, p: Principal, name: str, role: str | None = None) -> None:
    """``role`` (default: the route's, from the permissions table) on model ``name``.

    Someone who may view it, and so may learn whether it exists, hears NotFound for a
    model that does not exist (as from a local store) before PermissionDenied; to anyone
    else the answer does not depend on whether it exists."""
    role = role or c.guard.route_role(p, "model", name)
    if not c.guard.allows(p, role, "model", name) and c.guard.allows(p, "viewer", "model", name):
        _registry(c, p).get_registered_model(name)
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
    model = _registry(c, p).create_registered_model(body.name, body.description, body.tags)
    if c.settings.auth and not p.is_admin:
        c.auth_db.grant(p.user, "model", body.name, "admin", granted_by=p.user)
        c.guard.forget()
    return _out(model, status_code=201)


@router.get("/models/{name}", summary="One registered model")
def get_model(name: Name, request: Request, p: User):
    c = ctx(request)
    _need(c, p, name)
    return _out(_registry(c, p).get_registered_model(name))


@router.get("/models/{name}/versions", summary="Versions of a model (of one stage, if given)")
def list_versions(name: Name, request: Request, p: User,
                  stage: Annotated[str | None, Query(max_length=16)] = None):
    c = ctx(request)
    _need(c, p, name)
    return _out(_registry(c, p).list_model_versions(name, stage))


@router.post("/models/{name}/versions", status_code=201,
             summary="Register a version from a run's logged model (runs:/<run id>/<path>)")
def register_version(name: Name, body: RegisterVersion, request: Request, p: User):
    from ...registry.from_run import parse_source, register_from_run

    c = ctx(request)
    _need(c, p, name)
    claims = {"params": body.params, "fingerprint": body.fingerprint,
              "datasets": None if body.datasets is None else [
                  d if isinstance(d, str) else d.model_dump(exclude_unset=True)
                  for d in body.datasets]}
    if body.files is not None:
        return _register_files(c, p, name, body, claims)
    if body.source is not None:
        if body.run_id is not None or body.path is not None:
            raise InvalidArgument("give source, or run_id and path, not both")
        run_id, path = parse_source(body.source)
    elif body.run_id is not None:
        run_id, path = body.run_id, body.path or "model"
    else:
        raise InvalidArgument("say which files to register: source 'runs:/<run id>/<path>', "
                              "or run_id (and path, default 'model')")
    reg = _registry(c, p)
    reg.get_registered_model(name)  # 404: models are created with POST /models
    require_run(c, p, run_id, "viewer")
    mv = register_from_run(reg, name, run_id, path, version=body.version, bump=body.bump,
                           parent=body.parent, description=body.description, claims=claims,
                           signing_key=None if body.sign else False)
    return _out(mv, status_code=201)


def _register_files(c: ServerContext, p: Principal, name: str, body: RegisterVersion,
                    claims: dict):
    from ...entities import FileEntry
    from ...registry.from_run import register_files

    if body.source is not None or body.path is not None:
        raise InvalidArgument("give files (and run_id), or source, not both")
    reg = _registry(c, p)
    reg.get_registered_model(name)
    if body.run_id is not None:  # the files are logged to the run: that writes to it
        require_run(c, p, body.run_id, "editor")
    files = [FileEntry(f.path, f.size, f.digest, tuple((o, n) for o, n in f.chunks))
             for f in body.files or ()]
    mv = register_files(reg, name, files, run_id=body.run_id, version=body.version,
                        bump=body.bump, parent=body.parent, description=body.description,
                        claims=claims, signing_key=None if body.sign else False)
    return _out(mv, status_code=201)


@router.post("/models/{name}/rename", summary="Rename a model, with its versions and roles "
             "(model admins; 409 if the name is taken)")
def rename_model(name: Name, body: Rename, request: Request, p: User):
    c = ctx(request)
    _need(c, p, name)
    model = _registry(c, p).rename_registered_model(name, body.new_name)
    c.guard.forget()  # the model's roles moved with it (in the rename's transaction)
    return _out(model)


@router.delete("/models/{name}", summary="Delete a model and all its versions (model admins; "
               "409 while a version is protected, unless force)")
def delete_model(name: Name, request: Request, p: User, force: bool = False):
    c = ctx(request)
    _need(c, p, name)
    model = _registry(c, p).delete_registered_model(name, force)
    c.guard.forget()  # the roles on it went with it (in the delete's transaction)
    return _out(model)


@router.get("/models/{name}/protected",
            summary="Versions that a delete refuses without force, and why")
def protected(name: Name, request: Request, p: User,
              version: Annotated[str | None, Query(max_length=64)] = None):
    c = ctx(request)
    _need(c, p, name)
    return _out(_registry(c, p).deletion_blockers(name, version))


@router.delete("/models/{name}/versions/{version}", summary="Move a version to the trash "
               "(model admins; 409 if it is protected, unless force); its number is never "
               "given again")
def delete_version(name: Name, version: Version, request: Request, p: User, force: bool = False):
    c = ctx(request)
    _need(c, p, name)
    return _out(_registry(c, p).delete_model_version(name, version, force))


@router.post("/models/{name}/versions/{version}/restore",
             summary="Bring a version back from the trash (model admins)")
def restore_version(name: Name, version: Version, request: Request, p: User):
    c = ctx(request)
    _need(c, p, name)
    return _out(_registry(c, p).restore_model_version(name, version))


@router.get("/models/{name}/versions/{version}", summary="One model version")
def get_version(name: Name, version: Version, request: Request, p: User):
    c = ctx(request)
    _need(c, p, name)
    return _out(_registry(c, p).get_model_version(name, version))


@router.post("/models/{name}/versions/{version}/stage",
             summary="Move a version to a stage (403 when its policy needs approvals)")
def transition(name: Name, version: Version, body: StageChange, request: Request, p: User):
    c = ctx(request)
    _need(c, p, name)
    return _out(_registry(c, p).transition_stage(name, version, body.stage, body.comment))


@router.post("/models/{name}/requests", status_code=201, summary="Ask for a stage transition")
def request_transition(name: Name, body: TransitionAsk, request: Request, p: User):
    c = ctx(request)
    _need(c, p, name)
    return _out(_registry(c, p).request_transition(name, body.version, body.stage, body.comment),
                status_code=201)


@router.get("/models/{name}/requests", summary="Transition requests of a model")
def list_requests(name: Name, request: Request, p: User,
                  status: Annotated[str | None, Query(max_length=16)] = "pending"):
    c = ctx(request)
    _need(c, p, name)
    # An empty status (``?status=``) lists every request, whatever its status.
    return _out(_registry(c, p).list_transition_requests(name, status or None))


def _decide(request: Request, p: Principal, request_id: str, decision: str, comment: str):
    c = ctx(request)
    reg = _registry(c, p)
    req = reg.get_transition_request(request_id)
    # Withdrawing one's own request (a rejection by its requester) needs only the role that
    # made it; any other decision needs an approver.
    own = decision == "reject" and req.requested_by == p.user
    _need(c, p, req.name, "editor" if own else None)
    fn = reg.approve if decision == "approve" else reg.reject
    return _out(fn(request_id, comment))


@router.get("/models/requests/{request_id}", summary="One transition request")
def get_request(request_id: Annotated[str, Path(max_length=64)], request: Request, p: User):
    c = ctx(request)
    req = _registry(c, p).get_transition_request(request_id)
    _need(c, p, req.name)
    return _out(req)


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
    _need(c, p, name)
    return _out(_registry(c, p).set_alias(name, alias, body.version))


@router.delete("/models/{name}/aliases/{alias}", status_code=204, response_class=Response,
               summary="Remove an alias")
def delete_alias(name: Name, alias: Annotated[str, Path(min_length=1, max_length=128)],
                 request: Request, p: User):
    c = ctx(request)
    _need(c, p, name)
    _registry(c, p).delete_alias(name, alias)
    return Response(status_code=204)


class Rollback(BaseModel):
    stage: Annotated[str, Field(min_length=1, max_length=16)] = "production"
    to: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    reason: Annotated[str, Field(max_length=10_000)] = ""


@router.post("/models/{name}/rollback",
             summary="Put back the version that was in a stage before the current one (or `to`)")
def rollback(name: Name, body: Rollback, request: Request, p: User):
    c = ctx(request)
    _need(c, p, name)
    return _out(_registry(c, p).rollback(name, body.stage, body.to, body.reason))


@router.get("/models/{name}/history", summary="Registrations, stage and alias changes, decisions")
def history(name: Name, request: Request, p: User,
            version: Annotated[str | None, Query(max_length=64)] = None):
    c = ctx(request)
    _need(c, p, name)
    return _out(_registry(c, p).model_history(name, version))


class DeploymentEvent(BaseModel):
    """One start, switch, rollback or stop of a `cairn serve` deployment (the registry checks
    the values and says what is wrong; these bounds only cap the request's size)."""

    version: Annotated[str, Field(min_length=1, max_length=64)]
    event: Annotated[str, Field(min_length=1, max_length=16)]
    deployment: Annotated[str, Field(max_length=1000)]
    arm: Annotated[str, Field(max_length=64)] = "primary"
    reason: Annotated[str, Field(max_length=10_000)] = ""
    previous: Annotated[str, Field(min_length=1, max_length=64)] | None = None


# Recording is a write (editor), like a stage move: a viewer must not forge what was served.
@router.post("/models/{name}/deployments", status_code=201,
             summary="Record a deployment's start, switch, rollback or stop (history and audit)")
def record_deployment(name: Name, body: DeploymentEvent, request: Request, p: User):
    c = ctx(request)
    _need(c, p, name)
    return _out(_registry(c, p).record_deployment(
        name, body.version, body.event, deployment=body.deployment, arm=body.arm,
        reason=body.reason, previous=body.previous), status_code=201)


@router.get("/models/{name}/deployments", summary="Deployment events of a model, oldest first")
def deployments(name: Name, request: Request, p: User,
                deployment: Annotated[str | None, Query(max_length=1000)] = None):
    c = ctx(request)
    _need(c, p, name)
    return _out(_registry(c, p).deployments(name, deployment))


@router.get("/models/{name}/at", summary="The version in a stage (or @alias) at a time")
def version_at(name: Name, request: Request, p: User,
               stage: Annotated[str, Query(min_length=1, max_length=130)],
               time: Annotated[int, Query(ge=0, le=_INT64_MAX, description="ms since the epoch")]):
    c = ctx(request)
    _need(c, p, name)
    mv = _registry(c, p).model_version_at(name, stage, time)
    return _out({"version": None if mv is None else dataclasses.asdict(mv)})


@router.get("/models/{name}/policies", summary="A model's stage policies")
def get_policies(name: Name, request: Request, p: User):
    c = ctx(request)
    _need(c, p, name)
    return _out(_registry(c, p).get_stage_policies(name))


@router.put("/models/{name}/policies", summary="Set a stage's approval policy (model admins)")
def set_policy(name: Name, body: Policy, request: Request, p: User):
    c = ctx(request)
    _need(c, p, name)
    return _out(_registry(c, p).set_stage_policy(name, body.stage, body.approvals,
                                                 body.approvers, body.exclusive))
