"""Users, API tokens and role bindings (a team server with auth on).

Global admins manage users and everyone's tokens; every user manages their own
tokens; an admin of an experiment or model grants roles on it.  A token's secret is
in the response that creates it and never again.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field, StrictBool, StrictInt

from ... import clock
from ...errors import InvalidArgument, NotFound, PermissionDenied
from ...store.sql.auth import ROLES
from ..auth import Principal
from ..context import ctx, principal

router = APIRouter(tags=["users and roles"])
User = Annotated[Principal, Depends(principal)]
Name = Annotated[str, Path(min_length=1, max_length=128)]
Role = Literal["viewer", "editor", "approver", "admin"]
ResourceType = Literal["global", "experiment", "model"]


class UserOut(BaseModel):
    name: str
    is_admin: bool
    created_at: int
    disabled: bool


class UserList(BaseModel):
    users: list[UserOut]


class CreateUser(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=128)]
    is_admin: StrictBool = False


class TokenOut(BaseModel):
    id: str
    user: str
    name: str
    created_at: int
    expires_at: int | None
    revoked: bool


class NewToken(TokenOut):
    token: str = Field(description="the secret: shown in this response only")


class TokenList(BaseModel):
    tokens: list[TokenOut]


class CreateToken(BaseModel):
    name: Annotated[str, Field(max_length=256)] = ""
    expires_at: Annotated[StrictInt, Field(ge=0, le=(1 << 62))] | None = None


class Binding(BaseModel):
    user: Annotated[str, Field(min_length=1, max_length=128)]
    resource_type: ResourceType
    resource_id: Annotated[str, Field(min_length=1, max_length=256)] = "*"
    role: Role


class BindingRef(BaseModel):
    user: Annotated[str, Field(min_length=1, max_length=128)]
    resource_type: ResourceType
    resource_id: Annotated[str, Field(min_length=1, max_length=256)] = "*"


class BindingList(BaseModel):
    bindings: list[Binding]


class WhoAmI(BaseModel):
    user: str
    is_admin: bool
    auth: bool
    bindings: list[Binding]


def _user(u) -> dict:
    return {"name": u.name, "is_admin": u.is_admin, "created_at": u.created_at,
            "disabled": u.disabled}


def _token(t) -> dict:
    return {"id": t.id, "user": t.user, "name": t.name, "created_at": t.created_at,
            "expires_at": t.expires_at, "revoked": t.revoked}


def _binding(b) -> dict:
    return {"user": b.user, "resource_type": b.resource_type, "resource_id": b.resource_id,
            "role": b.role}


@router.get("/whoami", response_model=WhoAmI, summary="The caller and their roles")
def whoami(request: Request, p: User):
    c = ctx(request)
    return {"user": p.user, "is_admin": p.is_admin, "auth": c.settings.auth,
            "bindings": [_binding(b) for b in p.identity.bindings]}


@router.get("/users", response_model=UserList, summary="Every user (admins only)")
def list_users(request: Request, p: User):
    c = ctx(request)
    return {"users": [_user(u) for u in c.auth_db.list_users()]}


@router.post("/users", response_model=UserOut, status_code=201, summary="Create a user (admins)")
def create_user(body: CreateUser, request: Request, p: User):
    c = ctx(request)
    u = c.auth_db.create_user(body.name, body.is_admin, created_by=p.user)
    c.audit(p, "user.create", f"users/{u.name}", None, _user(u), wait=True)
    return _user(u)


@router.post("/users/{name}/disable", response_model=UserOut,
             summary="Disable a user and revoke their tokens (admins)")
def disable_user(name: Name, request: Request, p: User):
    c = ctx(request)
    before = c.auth_db.get_user(name)
    u = c.auth_db.set_disabled(name, True)
    c.guard.forget()
    c.audit(p, "user.disable", f"users/{name}", _user(before), _user(u), wait=True)
    return _user(u)


@router.post("/users/{name}/tokens", response_model=NewToken, status_code=201,
             summary="Make an API token (yours, or anyone's for admins); the secret is shown once")
def create_token(name: Name, body: CreateToken, request: Request, p: User):
    c = ctx(request)
    if name != p.user:
        c.guard.require_admin(p)
    tok, secret = c.auth_db.create_token(name, body.name, _child_expiry(p, body.expires_at))
    c.audit(p, "token.create", f"users/{name}/tokens/{tok.id}", None, _token(tok), wait=True)
    return {**_token(tok), "token": secret}


def _child_expiry(p: Principal, asked: int | None) -> int | None:
    """When a token made by ``p`` expires: never later than the token ``p`` showed.

    Without ``expires_at`` it gets the parent token's expiry (None: the parent never
    expires); asking for a later one is refused (403) rather than quietly shortened.
    """
    if asked is not None and asked <= clock.now_ms():
        raise InvalidArgument(f"expires_at {asked} (ms since the epoch) is in the past: the "
                              "token would never work")
    parent = p.identity.expires_at
    if parent is None:
        return asked
    if asked is None:
        return parent
    if asked > parent:
        raise PermissionDenied(
            f"the token making this request expires at {parent} (ms since the epoch); a token "
            f"cannot make one that outlives it (expires_at {asked}): ask for expires_at <= "
            f"{parent}, or use a token that does not expire", user=p.user)
    return asked


@router.get("/tokens", response_model=TokenList,
            summary="Tokens (without secrets): your own, or a user's / everyone's for admins")
def list_tokens(request: Request, p: User,
                user: Annotated[str | None, Query(max_length=128)] = None):
    c = ctx(request)
    if user != p.user:
        c.guard.require_admin(p)
    return {"tokens": [_token(t) for t in c.auth_db.list_tokens(user)]}


@router.delete("/tokens/{token_id}", response_model=TokenOut, summary="Revoke a token")
def revoke_token(token_id: Annotated[str, Path(max_length=32)], request: Request, p: User):
    c = ctx(request)
    mine = {t.id for t in c.auth_db.list_tokens(p.user)}
    if token_id not in mine:
        c.guard.require_admin(p)
    before = next((t for t in c.auth_db.list_tokens() if t.id == token_id), None)
    if before is None:
        raise NotFound(f"token {token_id!r} does not exist")
    tok = c.auth_db.revoke_token(token_id)
    c.guard.forget()
    c.audit(p, "token.revoke", f"users/{tok.user}/tokens/{tok.id}", _token(before), _token(tok),
            wait=True)
    return _token(tok)


def _require_grant(c, p: Principal, resource_type: str, resource_id: str) -> None:
    if resource_type == "global" or resource_id == "*":
        c.guard.require_admin(p)
    else:
        c.guard.require(p, "admin", resource_type, resource_id)


@router.get("/roles", response_model=BindingList,
            summary="Role bindings (admins; or those on a resource you administer)")
def list_roles(request: Request, p: User,
               user: Annotated[str | None, Query(max_length=128)] = None,
               resource_type: ResourceType | None = None,
               resource_id: Annotated[str | None, Query(max_length=256)] = None):
    c = ctx(request)
    if not (p.is_admin or user == p.user):
        if resource_type is None or resource_id is None:
            c.guard.require_admin(p)
        _require_grant(c, p, resource_type, resource_id)
    return {"bindings": [_binding(b) for b in c.auth_db.bindings(user, resource_type, resource_id)]}


@router.put("/roles", response_model=Binding, summary="Grant (or change) a user's role")
def grant(body: Binding, request: Request, p: User):
    c = ctx(request)
    _require_grant(c, p, body.resource_type, body.resource_id)
    if body.resource_type == "experiment" and body.resource_id != "*":
        c.store.get_experiment(body.resource_id)  # 404 for an unknown experiment
    old, new = c.auth_db.grant(body.user, body.resource_type, body.resource_id, body.role,
                               granted_by=p.user)
    c.guard.forget()
    c.audit(p, "role.grant", f"roles/{body.resource_type}/{body.resource_id}/{body.user}",
            None if old is None else _binding(old), _binding(new), wait=True)
    return _binding(new)


@router.post("/roles/revoke", response_model=Binding, summary="Remove a user's role on a resource")
def revoke(body: BindingRef, request: Request, p: User):
    c = ctx(request)
    _require_grant(c, p, body.resource_type, body.resource_id)
    old = c.auth_db.revoke(body.user, body.resource_type, body.resource_id)
    c.guard.forget()
    c.audit(p, "role.revoke", f"roles/{body.resource_type}/{body.resource_id}/{body.user}",
            _binding(old), None, wait=True)
    return _binding(old)


assert set(ROLES) == {"viewer", "editor", "approver", "admin"}
