"""Who is asking, and may they: bearer tokens, roles per experiment and per model.

Roles, each including the ones before it::

    viewer     read experiments, runs, metrics, artifacts (and models)
    editor     create runs, log records and artifacts, edit tags (register model versions)
    approver   approve stage transitions of registered models
    admin      grant roles on the resource; global admins manage users and tokens

A role binding names a resource (``experiment`` or ``model`` and an id, ``*`` for
all of that type) or is ``global``.  With auth off (the local default) every
request acts as an admin called ``local``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

from .. import clock
from ..errors import PermissionDenied, Unauthenticated
from ..store.sql.auth import RANK, Identity

if TYPE_CHECKING:  # pragma: no cover
    from ..store.sql.auth import AuthDB
    from .permissions import Need

LOCAL = Identity("local", True, ())


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller, with what the route they called needs (from :mod:`.permissions`)."""

    identity: Identity
    need: "Need | None" = None

    @property
    def user(self) -> str:
        return self.identity.user

    @property
    def is_admin(self) -> bool:
        return self.identity.is_admin


class Guard:
    """Turns a request's Authorization header into a Principal and checks roles."""

    def __init__(self, db: "AuthDB | None", enabled: bool, cache_s: float = 5.0) -> None:
        self.db = db
        self.enabled = enabled
        self._cache: dict[str, tuple[float, Identity | None]] = {}
        self._cache_s = cache_s
        self._lock = threading.Lock()

    def authenticate(self, authorization: str | None) -> Principal:
        if not self.enabled:
            return Principal(LOCAL)
        if not authorization:
            raise Unauthenticated("this server requires an API token: send 'Authorization: Bearer "
                                  "<token>' (set CAIRN_TRACKING_TOKEN for the Python client)")
        scheme, _, secret = authorization.partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret:
            raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
        ident = self._identify(secret)
        if ident is None:
            raise Unauthenticated("the API token is unknown, revoked or expired")
        return Principal(ident)

    def _identify(self, secret: str) -> Identity | None:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(secret)
        if hit is not None and hit[0] > now:
            ident = hit[1]
            if ident is not None and ident.expires_at is not None \
                    and ident.expires_at < clock.now_ms():
                return None  # expired since it was cached
            return ident
        assert self.db is not None
        ident = self.db.identify(secret)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[secret] = (now + self._cache_s, ident)
        return ident

    def forget(self) -> None:
        """Drop cached identities (after role or token changes made by this process)."""
        with self._lock:
            self._cache.clear()

    # -- checks ------------------------------------------------------------
    def enforce(self, p: Principal, in_route: bool = False) -> None:
        """The checks of ``p.need`` that name no single resource: global admin, a role on
        all experiments or models, a role somewhere.  Called on every authenticated
        request; the routes check ``experiment`` and ``model`` needs once they know the
        resource (:meth:`need`), and ``self`` and ``grant`` ones themselves.  A UI page
        whose need is ``in_body`` calls it itself (``in_route``), to answer a refusal."""
        n = p.need
        if n is None or not self.enabled or n.in_body != in_route:
            return
        if n.kind == "admin":
            self.require_admin(p)
        elif n.kind == "all":
            assert n.role is not None and n.on is not None
            self.require_global(p, n.role, n.on)
        elif n.kind == "somewhere":
            assert n.role is not None
            self.require_somewhere(p, n.role, n.on)

    def need(self, p: Principal, resource_type: str, resource_id: str,
             role: str | None = None) -> None:
        """The route's role (from the permissions table) on one resource.

        ``role`` is for a route's further checks (viewer on the source run of a model
        version); without it, the route's own need must be of ``resource_type``.
        """
        self.require(p, role or self.route_role(p, resource_type, resource_id), resource_type,
                     resource_id)

    @staticmethod
    def route_role(p: Principal, resource_type: str, resource_id: str = "") -> str:
        """The role the route ``p`` called needs on a resource of ``resource_type``."""
        n = p.need
        if n is None:  # not called through a route in the table: only admins
            return "admin"
        if n.kind != resource_type or n.role is None:
            raise RuntimeError(f"the route needs {n.describe()}, but checks a role on "
                               f"{resource_type} {resource_id!r}: fix the permissions table "
                               "or give the role")
        return n.role

    def allows(self, p: Principal, role: str, resource_type: str, resource_id: str) -> bool:
        """Whether ``p`` holds ``role`` (or a higher one) on a resource: what ``require`` checks.

        The UI asks this to offer only the actions the server would accept (auth off: the
        local admin, so everything).
        """
        return p.identity.role_on(resource_type, resource_id) >= RANK[role]

    def require(self, p: Principal, role: str, resource_type: str, resource_id: str) -> None:
        if not self.allows(p, role, resource_type, resource_id):
            raise PermissionDenied(
                f"user {p.user!r} needs the {role} role on {resource_type} {resource_id!r} for "
                f"this; ask an admin to grant it", user=p.user, role=role,
                resource_type=resource_type, resource_id=resource_id)

    def require_somewhere(self, p: Principal, role: str, resource_type: str | None = None) -> None:
        """At least ``role`` on some resource (for content-addressed objects, which no run owns)."""
        if p.identity.best_role(resource_type) < RANK[role]:
            where = f"some {resource_type}" if resource_type else "some experiment or model"
            raise PermissionDenied(f"user {p.user!r} needs the {role} role on {where} for this",
                                   user=p.user, role=role)

    def require_global(self, p: Principal, role: str, resource_type: str) -> None:
        """``role`` on every resource of a type: needed to create new ones."""
        if p.identity.role_on(resource_type, "*") < RANK[role]:
            raise PermissionDenied(
                f"user {p.user!r} needs the {role} role on all {resource_type}s (a global or "
                f"'{resource_type} *' binding) to create one", user=p.user, role=role)

    def require_admin(self, p: Principal) -> None:
        if not p.is_admin:
            raise PermissionDenied(f"user {p.user!r} is not an admin; only admins may do this",
                                   user=p.user)

    def visible(self, p: Principal, resource_type: str, ids: Iterable[str]) -> list[str]:
        """The ids ``p`` may view."""
        return [i for i in ids if p.identity.role_on(resource_type, i) >= RANK["viewer"]]

    def sees_all(self, p: Principal, resource_type: str) -> bool:
        return p.identity.role_on(resource_type, "*") >= RANK["viewer"]
