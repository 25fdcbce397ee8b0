"""The UI's trash: what is deleted (and may be restored), and what the caller may delete.

Deleting and restoring go through the native routes (``POST .../delete`` and
``.../restore``); these endpoints only read, so that the pages offer a *Delete* or a
*Restore* button exactly where the server would accept the request (a refused one is a
403 that the browser logs as a console error).  Whether a route lets the caller through
is read from the permissions table, the same entry the route itself is guarded by.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request

from ...store.sql.auth import RANK
from ..auth import Principal
from ..context import ServerContext, ctx, principal
from ..permissions import API, lookup

router = APIRouter(tags=["ui"])
User = Annotated[Principal, Depends(principal)]

KINDS = ("experiment", "run", "model_version", "dataset_version")
MAX_ITEMS = 5000  # a trash bigger than this is shown in part (and says so)

# The native routes the pages' buttons call, by kind: (method, path template) to delete
# and to restore.
ROUTES = {
    "run": (("POST", f"{API}/runs/{{run_id}}/delete"), ("POST", f"{API}/runs/{{run_id}}/restore")),
    "experiment": (("POST", f"{API}/experiments/{{experiment_id}}/delete"),
                   ("POST", f"{API}/experiments/{{experiment_id}}/restore")),
    "model_version": (("DELETE", f"{API}/models/{{name}}/versions/{{version}}"),
                      ("POST", f"{API}/models/{{name}}/versions/{{version}}/restore")),
    "dataset_version": (("POST", f"{API}/datasets/{{name:path}}/versions/{{version}}/delete"),
                        ("POST", f"{API}/datasets/{{name:path}}/versions/{{version}}/restore")),
}


def may(c: ServerContext, p: Principal, method: str, path: str, resource_type: str = "",
        resource_id: str = "") -> bool:
    """Whether ``p`` passes the role check of the route ``method path`` on a resource: what
    the route's guard would decide.  A route the server does not have is never allowed."""
    n = lookup(method, path)
    if n is None:
        return False
    if n.kind in ("open", "user"):
        return True
    if n.kind in ("experiment", "model"):
        assert n.role is not None
        return c.guard.allows(p, n.role, n.kind, resource_id) if n.kind == resource_type \
            else False
    if n.kind == "somewhere":
        assert n.role is not None
        return p.identity.best_role(n.on) >= RANK[n.role]
    if n.kind == "all":
        assert n.role is not None and n.on is not None
        return p.identity.role_on(n.on, "*") >= RANK[n.role]
    return bool(p.is_admin)  # admin, grant, self: only an admin is sure to pass


def may_delete(c: ServerContext, p: Principal, kind: str, resource_id: str,
               restore: bool = False) -> bool:
    """May ``p`` delete (or restore) an item of ``kind`` whose guarded resource (experiment
    id, model name; a data set's: none) is ``resource_id``?"""
    method, path = ROUTES[kind][1 if restore else 0]
    rtype = {"run": "experiment", "experiment": "experiment", "model_version": "model"}.get(kind, "")
    return may(c, p, method, path, rtype, resource_id)


def _from_library(c: ServerContext) -> list[dict[str, Any]] | None:
    """The library's trash listing (:func:`cairn.lifecycle.trash.list_trash`) as the page's
    items, with what each kind's routes and role checks need (experiment id, model name,
    data set name and version); None where the store keeps no index to list it from."""
    from ...errors import InvalidArgument
    from ..routes._common import run_experiments

    try:
        from ...lifecycle.trash import list_trash

        found = list_trash(c.store)
    except (ImportError, InvalidArgument):
        return None
    names = {e.id: e.name for e in c.store.list_experiments()}
    run_exps = run_experiments(c, [i.identifier for i in found if i.kind == "run"])
    out = []
    for it in found:
        item: dict[str, Any] = {"kind": it.kind, "id": it.identifier, "name": it.name or it.identifier,
                                "deleted_at": it.deleted_at, "deleted_by": it.deleted_by}
        if it.kind == "run":
            item["experiment_id"] = run_exps.get(it.identifier)
            item["experiment"] = names.get(item["experiment_id"] or "")
        elif it.kind == "experiment":
            item["experiment_id"] = it.identifier
        elif it.kind == "model_version":
            item["model"], _, item["version"] = it.identifier.rpartition("/")
        elif it.kind == "dataset_version":
            item["dataset"], _, item["version"] = it.identifier.rpartition("@")
        out.append(item)
    _runs_deleted_by(c, [i for i in out if i["kind"] == "run" and not i["deleted_by"]])
    return out


def _runs_deleted_by(c: ServerContext, items: list[dict[str, Any]]) -> None:
    """Who deleted these runs, from the audit log (a run's journal keeps the writer that
    deleted it, not the user): the newest ``run.delete`` event of each."""
    if not items or c.engine is None or not c.settings.audit:
        return
    from ...registry import audit as chain
    from ...store.sql.engine import session

    c.flush_audit()
    wanted = {f"runs/{i['id']}": i for i in items}
    with session(c.engine) as conn:
        for e in chain.events(conn, action="run.delete", limit=MAX_ITEMS * 2):
            item = wanted.pop(e.target, None)
            if item is not None:
                item["deleted_by"] = e.actor
            if not wanted:
                break


def _runs_and_experiments(c: ServerContext) -> list[dict[str, Any]]:
    """Deleted experiments, and deleted runs of live experiments (an experiment's runs go
    and come back with it), read from the store itself."""
    exps = c.store.list_experiments()
    names = {e.id: e.name for e in exps}
    out: list[dict[str, Any]] = [
        {"kind": "experiment", "id": e.id, "name": e.name, "experiment_id": e.id,
         "deleted_at": None, "deleted_by": None} for e in exps if e.lifecycle == "deleted"]
    live = [e.id for e in exps if e.lifecycle != "deleted"]
    token = None
    while live and len(out) < MAX_ITEMS:
        runs, token = c.store.search_runs(live, "", ["attributes.start_time DESC"], 1000, token,
                                          lifecycle="deleted")
        out.extend({"kind": "run", "id": r.id, "name": r.name, "experiment_id": r.experiment_id,
                    "experiment": names.get(r.experiment_id), "deleted_at": None,
                    "deleted_by": None} for r in runs)
        if not token:
            break
    return out


def _visible(c: ServerContext, p: Principal, item: dict[str, Any]) -> bool:
    if item["kind"] in ("run", "experiment"):
        return c.guard.allows(p, "viewer", "experiment", item["experiment_id"] or "")
    if item["kind"] == "model_version":
        return c.guard.allows(p, "viewer", "model", item["model"] or "")
    return p.identity.best_role(None) >= RANK["viewer"]


def _guarded_id(item: dict[str, Any]) -> str:
    return str(item.get("model") or "") if item["kind"] == "model_version" \
        else str(item.get("experiment_id") or "")


@router.get("/trash",
            summary="What is in the trash and the caller may view, newest deletion first, each "
                    "item with whether the caller may restore it (`can.restore`)")
def trash(request: Request, p: User,
          kind: Annotated[list[Literal["experiment", "run", "model_version", "dataset_version"]]
                          | None, Query(max_length=4)] = None) -> dict[str, Any]:
    c = ctx(request)
    items = _from_library(c)
    if items is None:
        items = _runs_and_experiments(c)
    wanted = set(kind or KINDS)
    items = [i for i in items if i["kind"] in wanted and _visible(c, p, i)]
    items.sort(key=lambda i: -(i["deleted_at"] or 0))
    truncated = len(items) > MAX_ITEMS
    items = items[:MAX_ITEMS]
    for i in items:
        i["can"] = {"restore": may_delete(c, p, i["kind"], _guarded_id(i), restore=True)}
    return {"items": items, "truncated": truncated}


@router.get("/experiments",
            summary="Experiments the caller may view (deleted ones too, with `lifecycle`), each "
                    "with what the caller may do: `can.delete` (the experiment), "
                    "`can.delete_runs` (its runs)")
def experiments(request: Request, p: User) -> dict[str, Any]:
    from ...store.wire import experiment_to_json

    c = ctx(request)
    exps = c.store.list_experiments()
    if not c.guard.sees_all(p, "experiment"):
        ok = set(c.guard.visible(p, "experiment", [e.id for e in exps]))
        exps = [e for e in exps if e.id in ok]
    return {"experiments": [
        {**experiment_to_json(e),
         "can": {"delete": may_delete(c, p, "experiment", e.id),
                 "restore": may_delete(c, p, "experiment", e.id, restore=True),
                 "delete_runs": may_delete(c, p, "run", e.id)}} for e in exps]}
