"""Registry-wide settings over REST: naming policy, trusted keys, signatures, versions of a run.

Who may do what: anyone authenticated reads the naming policy and the trusted
public keys (a client needs them to verify what it loads); only server admins set
the policy and trust or revoke keys.  A signature is attached by an editor of the
model, and only when it verifies against a trusted key.  Each mutation is audited
by the registry in its own transaction, with the caller as actor.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from ...errors import InvalidArgument
from ..auth import Principal
from ..context import ctx, principal
from ._common import require_run
from ._json import out as _out
from .models import Name, Version, _need, _registry

router = APIRouter(tags=["models"])
User = Annotated[Principal, Depends(principal)]
KeyId = Annotated[str, Path(min_length=1, max_length=64)]


class Naming(BaseModel):
    template: Annotated[str, Field(min_length=1, max_length=1000)] | None = None
    regex: Annotated[str, Field(min_length=1, max_length=1000)] | None = None


class TrustKey(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=128)]
    public_key: Annotated[str, Field(min_length=1, max_length=10_000,
                                     description="an Ed25519 public key, PEM")]


class Signature(BaseModel):
    key_id: Annotated[str, Field(min_length=1, max_length=64)]
    signature: Annotated[str, Field(min_length=1, max_length=1000,
                                    description="the Ed25519 signature, base64")]


@router.get("/registry/naming", summary="The naming policy new models must follow (null: none)")
def get_naming(request: Request, p: User):
    pol = _registry(ctx(request), p).get_naming_policy()
    return _out(None if pol is None else pol.to_json())


@router.put("/registry/naming", summary="Set the naming policy; both null removes it (admins)")
def set_naming(body: Naming, request: Request, p: User):
    c = ctx(request)
    pol = _registry(c, p).set_naming_policy(body.template, body.regex)
    return _out(None if pol is None else pol.to_json())


@router.get("/registry/keys", summary="Public keys trusted to sign model versions")
def list_keys(request: Request, p: User,
              include_revoked: Annotated[bool, Query()] = False):
    return _out(_registry(ctx(request), p).list_keys(include_revoked))


@router.post("/registry/keys", status_code=201, summary="Trust a public key (admins)")
def trust_key(body: TrustKey, request: Request, p: User):
    c = ctx(request)
    return _out(_registry(c, p).trust_key(body.public_key, body.name), status_code=201)


@router.post("/registry/keys/{key_id}/revoke", summary="Stop trusting a key (admins)")
def revoke_key(key_id: KeyId, request: Request, p: User):
    c = ctx(request)
    reg = _registry(c, p)
    reg.revoke_key(key_id)
    return _out(next(k for k in reg.list_keys(include_revoked=True) if k.key_id == key_id))


@router.post("/models/{name}/versions/{version}/signature",
             summary="Attach the caller's signature to an unsigned version (409 if signed)")
def attach_signature(name: Name, version: Version, body: Signature, request: Request, p: User):
    from ...registry.attach import attach_signature as attach

    c = ctx(request)
    _need(c, p, name)
    try:
        raw = base64.b64decode(body.signature, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgument("signature must be base64 (the 64 bytes of an Ed25519 "
                              "signature)") from None
    return _out(attach(_registry(c, p), name, version, body.key_id, raw))


@router.get("/runs/{run_id}/model-versions", summary="Model versions a run produced")
def versions_of_run(run_id: Annotated[str, Path(min_length=1, max_length=64)], request: Request,
                    p: User):
    c = ctx(request)
    require_run(c, p, run_id)
    found = _registry(c, p).model_versions_of_run(run_id)
    ok = set(c.guard.visible(p, "model", {mv.name for mv in found}))
    return _out([mv for mv in found if mv.name in ok])
