"""The KPIs page: the governance KPIs of ``cairn kpi`` (:mod:`cairn.monitoring.kpi`) as JSON.

The answer is ``kpis(...).to_dict()``, what ``cairn kpi --json`` prints, computed over the
models the caller may view only: with auth on, a model they hold no role on is not read at
all, so neither its name nor its releases, rollbacks or production versions count in the
overall numbers (as ``cairn --store http://... kpi`` sees the same server).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from ...client import Client
from ...errors import InvalidArgument
from ...store.wire import no_nul
from ..auth import Principal
from ..context import ctx, principal

# cairn.monitoring is imported in the route: a server nobody asks for KPIs never loads it.

router = APIRouter(tags=["ui"])
User = Annotated[Principal, Depends(principal)]

MAX_TIME = 64  # an ISO 8601 time with a zone, or epoch seconds, is far shorter
MAX_SETTLE = 32


class _Readable:
    """A registry whose model list holds only the models ``names`` (the caller's view);
    every other read goes to the registry itself."""

    def __init__(self, registry: Any, names: frozenset[str]) -> None:
        self._registry = registry
        self._names = names

    def list_registered_models(self) -> list[Any]:
        return [m for m in self._registry.list_registered_models() if m.name in self._names]

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._registry, attr)


class _Viewer(Client):
    """The caller as a client of the server's store, seeing only the models ``names``.

    ``kpis`` lists models through the client's registry; the route has checked the one it
    names, if any, itself."""

    def __init__(self, store: Any, user: str, names: frozenset[str] | None) -> None:
        super().__init__(store=store, user=user)
        self._names = names

    @property
    def _registry(self) -> Any:
        reg = super()._registry
        return reg if self._names is None else _Readable(reg, self._names)


@router.get("/kpi",
            summary="Governance KPIs (as `cairn kpi --json`) over the models the caller may "
                    "view: deployment success, rollbacks, audit compliance")
def kpi(request: Request, p: User,
        model: Annotated[str | None, Query(min_length=1, max_length=256,
                                           description="one model (default: every one "
                                                       "you may view)")] = None,
        since: Annotated[str | None, Query(max_length=MAX_TIME,
                                           description="ISO 8601 (UTC unless it says)")] = None,
        until: Annotated[str | None, Query(max_length=MAX_TIME,
                                           description="ISO 8601 (default: now)")] = None,
        settle: Annotated[str, Query(min_length=1, max_length=MAX_SETTLE,
                                     description="e.g. 30m, 24h, 7d")] = "24h",
        ) -> dict[str, Any]:
    from ...monitoring.kpi import kpis
    from ..routes.models import _need, _registry

    c = ctx(request)
    no_nul([model or "", since or "", until or "", settle], "KPI query")
    # An empty field of the page's form means "not given", as the CLI's absent option.
    since, until = (since or "").strip() or None, (until or "").strip() or None
    names: frozenset[str] | None = None
    if model is not None:
        if not model.strip():
            raise InvalidArgument("model must be a model's name")
        _need(c, p, model, "viewer")
    elif c.guard.enabled and not c.guard.sees_all(p, "model"):
        # As GET /models lists them: the caller's view, by the same check.
        every = [m.name for m in _registry(c, p).list_registered_models()]
        names = frozenset(c.guard.visible(p, "model", every))
    k = kpis(_Viewer(c.store, p.user, names), model=model, since=since, until=until,
             settle=settle.strip())
    return k.to_dict()
