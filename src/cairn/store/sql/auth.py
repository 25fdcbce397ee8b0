"""Users, API tokens and role bindings in the SQL database (SQLite or PostgreSQL).

Rows never leave this module: reads return the small frozen values below.  A
token's secret is returned once, by :meth:`AuthDB.create_token`; the database keeps
only its SHA-256.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ... import clock
from ...errors import AlreadyExists, InvalidArgument, NotFound
from . import tables as T
from .engine import session

ROLES = ("viewer", "editor", "approver", "admin")
RANK = {r: i + 1 for i, r in enumerate(ROLES)}
RESOURCE_TYPES = ("global", "experiment", "model")
TOKEN_PREFIX = "cairn_"
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}")


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_user_name(name: object) -> str:
    if not isinstance(name, str) or _NAME_RE.fullmatch(name) is None:
        raise InvalidArgument(f"user name must be 1-128 characters of letters, digits and ._@+- "
                              f"(starting with a letter or digit), got {name!r}")
    return name


def check_role(role: object) -> str:
    if role not in RANK:
        raise InvalidArgument(f"unknown role {role!r}; use one of {list(ROLES)}")
    return role


def check_resource(resource_type: object, resource_id: object) -> tuple[str, str]:
    if resource_type not in RESOURCE_TYPES:
        raise InvalidArgument(f"unknown resource type {resource_type!r}; use one of "
                              f"{list(RESOURCE_TYPES)}")
    if not isinstance(resource_id, str) or not resource_id or len(resource_id) > 256 \
            or "\x00" in resource_id:
        raise InvalidArgument(f"resource id must be a non-empty string (or '*'), got {resource_id!r}")
    if resource_type == "global" and resource_id != "*":
        raise InvalidArgument("a global role binding has resource id '*'")
    return resource_type, resource_id


@dataclass(frozen=True, slots=True)
class User:
    name: str
    is_admin: bool
    created_at: int
    disabled: bool = False


@dataclass(frozen=True, slots=True)
class Token:
    id: str
    user: str
    name: str
    created_at: int
    expires_at: int | None
    revoked: bool


@dataclass(frozen=True, slots=True)
class RoleBinding:
    user: str
    resource_type: str
    resource_id: str
    role: str


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a valid token belongs to, with every role binding of that user.

    ``token_id`` and ``expires_at`` (ms, None: never) are the token's that was shown: a
    token that expires cannot mint one that outlives it.
    """

    user: str
    is_admin: bool
    bindings: tuple[RoleBinding, ...]
    token_id: str = ""
    expires_at: int | None = None

    def role_on(self, resource_type: str, resource_id: str) -> int:
        """The rank (0 = none) this user holds on one resource."""
        if self.is_admin:
            return RANK["admin"]
        best = 0
        for b in self.bindings:
            if b.resource_type == "global" or (b.resource_type == resource_type
                                               and b.resource_id in ("*", resource_id)):
                best = max(best, RANK[b.role])
        return best

    def best_role(self, resource_type: str | None = None) -> int:
        """The highest rank held anywhere (of one resource type, or any)."""
        if self.is_admin:
            return RANK["admin"]
        return max((RANK[b.role] for b in self.bindings
                    if resource_type is None or b.resource_type in ("global", resource_type)),
                   default=0)


class AuthDB:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- users -------------------------------------------------------------
    def create_user(self, name: str, is_admin: bool = False, created_by: str = "") -> User:
        check_user_name(name)
        user = User(name, bool(is_admin), clock.now_ms())
        try:
            with session(self.engine, write=True) as conn:
                conn.execute(sa.insert(T.users).values(name=name, is_admin=int(user.is_admin),
                                                       created_at=user.created_at,
                                                       created_by=created_by))
        except AlreadyExists:
            raise AlreadyExists(f"user {name!r} already exists") from None
        return user

    def get_user(self, name: str) -> User:
        with session(self.engine) as conn:
            row = conn.execute(sa.select(T.users).where(T.users.c.name == name)).first()
        if row is None:
            raise NotFound(f"user {name!r} does not exist")
        return _user(row)

    def list_users(self) -> list[User]:
        with session(self.engine) as conn:
            return [_user(r) for r in conn.execute(sa.select(T.users).order_by(T.users.c.name))]

    def count_admins(self) -> int:
        with session(self.engine) as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(T.users).where(
                T.users.c.is_admin == 1, T.users.c.disabled_at.is_(None))).scalar_one()

    def set_disabled(self, name: str, disabled: bool) -> User:
        with session(self.engine, write=True) as conn:
            res = conn.execute(sa.update(T.users).where(T.users.c.name == name).values(
                disabled_at=clock.now_ms() if disabled else None))
            if not res.rowcount:
                raise NotFound(f"user {name!r} does not exist")
            if disabled:
                conn.execute(sa.update(T.api_tokens).where(
                    T.api_tokens.c.user_name == name, T.api_tokens.c.revoked_at.is_(None)).values(
                    revoked_at=clock.now_ms()))
        return self.get_user(name)

    # -- tokens ------------------------------------------------------------
    def create_token(self, user: str, name: str = "", expires_at: int | None = None,
                     secret: str | None = None) -> tuple[Token, str]:
        """A new token for ``user``: (its record, the secret — shown this once)."""
        if not isinstance(name, str) or len(name) > 256 or "\x00" in name:
            raise InvalidArgument("token name must be a string of at most 256 characters")
        self.get_user(user)
        secret = secret or TOKEN_PREFIX + secrets.token_urlsafe(32)
        if not secret.startswith(TOKEN_PREFIX) or len(secret) < len(TOKEN_PREFIX) + 20:
            raise InvalidArgument(f"a token must start with {TOKEN_PREFIX!r} and carry at least "
                                  "20 random characters")
        tok = Token(secrets.token_hex(8), user, name, clock.now_ms(), expires_at, False)
        with session(self.engine, write=True) as conn:
            conn.execute(sa.insert(T.api_tokens).values(
                id=tok.id, user_name=user, name=name, token_hash=hash_token(secret),
                created_at=tok.created_at, expires_at=expires_at))
        return tok, secret

    def list_tokens(self, user: str | None = None) -> list[Token]:
        q = sa.select(T.api_tokens).order_by(T.api_tokens.c.created_at)
        if user is not None:
            q = q.where(T.api_tokens.c.user_name == user)
        with session(self.engine) as conn:
            return [_token(r) for r in conn.execute(q)]

    def revoke_token(self, token_id: str) -> Token:
        with session(self.engine, write=True) as conn:
            row = conn.execute(sa.select(T.api_tokens).where(T.api_tokens.c.id == token_id)).first()
            if row is None:
                raise NotFound(f"token {token_id!r} does not exist")
            if row.revoked_at is None:
                conn.execute(sa.update(T.api_tokens).where(T.api_tokens.c.id == token_id).values(
                    revoked_at=clock.now_ms()))
            row = conn.execute(sa.select(T.api_tokens).where(T.api_tokens.c.id == token_id)).one()
        return _token(row)

    def identify(self, secret: str) -> Identity | None:
        """The identity behind a token secret, or None if it is unknown, revoked or expired."""
        with session(self.engine) as conn:
            row = conn.execute(
                sa.select(T.api_tokens.c.id, T.api_tokens.c.user_name, T.api_tokens.c.expires_at,
                          T.api_tokens.c.revoked_at, T.users.c.is_admin, T.users.c.disabled_at)
                .select_from(T.api_tokens.join(T.users, T.users.c.name == T.api_tokens.c.user_name))
                .where(T.api_tokens.c.token_hash == hash_token(secret))).first()
            if row is None or row.revoked_at is not None or row.disabled_at is not None:
                return None
            if row.expires_at is not None and row.expires_at < clock.now_ms():
                return None
            bindings = tuple(_binding(r) for r in conn.execute(
                sa.select(T.role_bindings).where(T.role_bindings.c.user_name == row.user_name)))
        return Identity(row.user_name, bool(row.is_admin), bindings, row.id, row.expires_at)

    # -- roles -------------------------------------------------------------
    def grant(self, user: str, resource_type: str, resource_id: str, role: str,
              granted_by: str = "") -> tuple[RoleBinding | None, RoleBinding]:
        """Set ``user``'s role on a resource; returns (the binding before, the binding now)."""
        check_resource(resource_type, resource_id)
        check_role(role)
        self.get_user(user)
        rb = T.role_bindings
        key = (rb.c.user_name == user, rb.c.resource_type == resource_type,
               rb.c.resource_id == resource_id)
        with session(self.engine, write=True) as conn:
            old = conn.execute(sa.select(rb).where(*key)).first()
            if old is None:
                conn.execute(sa.insert(rb).values(user_name=user, resource_type=resource_type,
                                                  resource_id=resource_id, role=role,
                                                  granted_by=granted_by, granted_at=clock.now_ms()))
            else:
                conn.execute(sa.update(rb).where(*key).values(role=role, granted_by=granted_by,
                                                              granted_at=clock.now_ms()))
        return (None if old is None else _binding(old),
                RoleBinding(user, resource_type, resource_id, role))

    def revoke(self, user: str, resource_type: str, resource_id: str) -> RoleBinding:
        rb = T.role_bindings
        key = (rb.c.user_name == user, rb.c.resource_type == resource_type,
               rb.c.resource_id == resource_id)
        with session(self.engine, write=True) as conn:
            old = conn.execute(sa.select(rb).where(*key)).first()
            if old is None:
                raise NotFound(f"user {user!r} has no role on {resource_type} {resource_id!r}")
            conn.execute(sa.delete(rb).where(*key))
        return _binding(old)

    def bindings(self, user: str | None = None, resource_type: str | None = None,
                 resource_id: str | None = None) -> list[RoleBinding]:
        rb = T.role_bindings
        q = sa.select(rb).order_by(rb.c.user_name, rb.c.resource_type, rb.c.resource_id)
        if user is not None:
            q = q.where(rb.c.user_name == user)
        if resource_type is not None:
            q = q.where(rb.c.resource_type == resource_type)
        if resource_id is not None:
            q = q.where(rb.c.resource_id == resource_id)
        with session(self.engine) as conn:
            return [_binding(r) for r in conn.execute(q)]

    def bootstrap_admin(self, name: str = "admin", secret: str | None = None) -> str | None:
        """Make sure an admin exists; return a new token secret only when one was generated.

        With ``secret`` (an operator-chosen bootstrap token) that token is made to work
        for admin ``name``; without it, a first admin and token are created only when
        the database has no admin yet.  Safe when several replicas start at once.
        """
        if secret is not None:
            if self.identify(secret) is not None:
                return None
            for make in (lambda: self.create_user(name, is_admin=True, created_by="bootstrap"),
                         lambda: self.create_token(name, "bootstrap", secret=secret)):
                try:
                    make()
                except AlreadyExists:  # a replica starting at the same moment made it
                    pass
            return None
        if self.count_admins():
            return None
        try:
            self.create_user(name, is_admin=True, created_by="bootstrap")
        except AlreadyExists:
            return None
        return self.create_token(name, "bootstrap")[1]


def follow_resource(conn: Connection, resource_type: str, old: str, new: str | None,
                    granted_by: str, now: int) -> list[tuple[RoleBinding, RoleBinding | None]]:
    """Inside the caller's write transaction, every role on resource ``old`` moves to ``new``
    (a rename) or goes (``new`` None: a delete, so that a later resource of that name starts
    with no one's roles).  Where a user already held a role on ``new``, the moved one
    replaces it.  Returns, for each moved or removed binding, (the binding on ``old``, the
    user's binding on ``new`` before, or None): what an audit event of each change says.

    The resource's own change belongs in the same transaction: a failure then leaves both
    as they were, never a role on a name that a later resource may take.
    """
    rb = T.role_bindings
    on = (rb.c.resource_type == resource_type, rb.c.resource_id == old)
    moved = [_binding(r) for r in conn.execute(sa.select(rb).where(*on).order_by(rb.c.user_name))]
    if not moved:
        return []
    if new is None:
        conn.execute(sa.delete(rb).where(*on))
        return [(b, None) for b in moved]
    check_resource(resource_type, new)
    target = (rb.c.resource_type == resource_type, rb.c.resource_id == new,
              rb.c.user_name.in_([b.user for b in moved]))
    before = {r.user_name: _binding(r) for r in conn.execute(sa.select(rb).where(*target))}
    conn.execute(sa.delete(rb).where(*target))
    conn.execute(sa.update(rb).where(*on).values(resource_id=new, granted_by=granted_by,
                                                 granted_at=now))
    return [(b, before.get(b.user)) for b in moved]


def _user(r: sa.Row[Any]) -> User:
    return User(r.name, bool(r.is_admin), r.created_at, r.disabled_at is not None)


def _token(r: sa.Row[Any]) -> Token:
    return Token(r.id, r.user_name, r.name, r.created_at, r.expires_at, r.revoked_at is not None)


def _binding(r: sa.Row[Any]) -> RoleBinding:
    return RoleBinding(r.user_name, r.resource_type, r.resource_id, r.role)
