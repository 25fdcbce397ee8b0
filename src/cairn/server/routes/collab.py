"""Comments and saved views over REST (see docs/collaboration.md).

Who may do what, from the caller's roles on the comment's target (a run's or an
experiment's: the experiment; a model version's: the model; a data set version's: a role
on some experiment or model, as for data sets):

* viewer reads the comments and writes its own: a comment never changes its target, and
  review by the people who read a result is the point (as on GitHub or GitLab, where
  read access may comment).
* a comment's author edits, deletes and restores it; an admin of the target does so for
  anyone's.  Someone who may not view the target gets 404 for its comments, as if there
  were none, and its comments never appear in their mentions.
* saved views: viewer on the experiment lists and opens them, editor saves and deletes
  (its own; admin of the experiment: anyone's).

Every write is audited (``comment.*``, ``view.*``) with the caller as actor.  A mention is
stored for the UI; it notifies through the event webhooks once the server has them.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from pydantic import BaseModel, Field, StrictStr

from ...errors import CairnError, InvalidArgument, NotFound, PermissionDenied
from ...store.sql.auth import RANK
from ..auth import Principal
from ..context import ServerContext, ctx, principal
from ._common import run_experiments
from ._json import out as _out

router = APIRouter(tags=["collaboration"])
User = Annotated[Principal, Depends(principal)]
CommentId = Annotated[str, Path(min_length=1, max_length=64)]
ViewName = Annotated[str, Path(min_length=1, max_length=128)]
ExpId = Annotated[str, Path(min_length=1, max_length=64)]


def _collab(c: ServerContext, p: Principal, admin: bool = False):
    from ...collab.service import Collab

    return Collab(c.store, p.user, admin=admin)


def _resource(c: ServerContext, target_type: str, target_id: str) -> tuple[str | None, str]:
    """The resource whose role decides a target: (type, id), or (None, "") for a data set
    version (a role on some experiment or model)."""
    from ...collab import rules

    rules.check_target(target_type, target_id)
    if target_type == "run":
        exp = run_experiments(c, [target_id]).get(target_id)
        if exp is None:  # the words of a run one may not view: the two must not differ
            raise _hidden(f"{target_type} {target_id!r}")
        return "experiment", exp
    if target_type == "experiment":
        return "experiment", target_id
    if target_type == "model_version":
        return "model", target_id.rpartition("@")[0]
    return None, ""


def _allows(c: ServerContext, p: Principal, role: str, rtype: str | None, rid: str) -> bool:
    if rtype is None:
        return not c.guard.enabled or p.identity.best_role() >= RANK[role]
    return c.guard.allows(p, role, rtype, rid)


def _require(c: ServerContext, p: Principal, role: str, rtype: str | None, rid: str) -> None:
    if rtype is None:
        c.guard.require_somewhere(p, role)
    else:
        c.guard.require(p, role, rtype, rid)


def _hidden(target: str) -> NotFound:
    return NotFound(f"no comments on {target}, or you may not view it")


def _viewable(c: ServerContext, p: Principal, target_type: str, target_id: str) -> bool:
    try:
        rtype, rid = _resource(c, target_type, target_id)
    except CairnError:
        return False
    return _allows(c, p, "viewer", rtype, rid)


def _comment_json(comment: Any) -> dict:
    import dataclasses

    return {**dataclasses.asdict(comment), "deleted": comment.deleted}


def _existing(c: ServerContext, p: Principal, comment_id: str, role: str = "viewer"):
    """A comment the caller may see (404 otherwise, existing or not) and a Collab that may
    edit it if the caller is an admin of its target."""
    comment = _collab(c, p).get_comment(comment_id)
    rtype, rid = _resource(c, comment.target_type, comment.target_id)
    if not _allows(c, p, "viewer", rtype, rid):
        raise NotFound(f"no comment {comment_id!r}", comment_id=comment_id)
    _require(c, p, role, rtype, rid)
    admin = p.is_admin or _allows(c, p, "admin", rtype, rid)
    return comment, _collab(c, p, admin=admin)


class NewComment(BaseModel):
    target_type: StrictStr = Field(description="run, experiment, model_version or dataset_version")
    target_id: StrictStr = Field(description="a run's or experiment's id, NAME@VERSION")
    body: StrictStr = Field(description="Markdown, at most 64 KiB")
    parent_id: StrictStr | None = Field(default=None, description="the comment replied to")


class EditComment(BaseModel):
    body: StrictStr


@router.get("/comments", summary="The comments on a target, oldest first")
def list_comments(request: Request, p: User, target_type: Annotated[str, Query(max_length=32)],
                  target_id: Annotated[str, Query(max_length=600)]):
    c = ctx(request)
    rtype, rid = _resource(c, target_type, target_id)
    if not _allows(c, p, "viewer", rtype, rid):
        raise _hidden(f"{target_type} {target_id!r}")
    comments = _collab(c, p).comments(target_type, target_id)
    return _out({"comments": [_comment_json(x) for x in comments]})


@router.post("/comments", status_code=201, summary="Comment on a target (or reply)")
def add_comment(body: NewComment, request: Request, p: User):
    c = ctx(request)
    rtype, rid = _resource(c, body.target_type, body.target_id)
    if not _allows(c, p, "viewer", rtype, rid):
        raise _hidden(f"{body.target_type} {body.target_id!r}")
    comment = _collab(c, p).add_comment(body.target_type, body.target_id, body.body,
                                        body.parent_id)
    c.audit(p, "comment.create", f"comment:{comment.id}", None,
            {"target": comment.target, "parent_id": comment.parent_id,
             "mentions": list(comment.mentions)})
    return _out(_comment_json(comment), status_code=201)


@router.get("/comments/mentions", summary="Comments that mention you, newest first")
def mentions(request: Request, p: User, user: Annotated[str | None, Query(max_length=256)] = None,
             limit: Annotated[int, Query(ge=1, le=1000)] = 100):
    c = ctx(request)
    if user is not None and user != p.user:
        c.guard.require_admin(p)
    found = _collab(c, p).mentions(user, limit)
    seen: dict[tuple[str, str], bool] = {}
    visible = []
    for x in found:
        key = (x.target_type, x.target_id)
        if key not in seen:
            seen[key] = _viewable(c, p, *key)
        if seen[key]:
            visible.append(_comment_json(x))
    return _out({"comments": visible})


@router.get("/comments/{comment_id}", summary="One comment")
def get_comment(comment_id: CommentId, request: Request, p: User):
    comment, _ = _existing(ctx(request), p, comment_id)
    return _out(_comment_json(comment))


@router.get("/comments/{comment_id}/history", summary="The bodies a comment had before each edit")
def comment_history(comment_id: CommentId, request: Request, p: User):
    _, collab = _existing(ctx(request), p, comment_id)
    import dataclasses

    return _out({"edits": [dataclasses.asdict(e) for e in collab.comment_history(comment_id)]})


@router.put("/comments/{comment_id}", summary="Edit a comment (its author, or an admin)")
def edit_comment(comment_id: CommentId, body: EditComment, request: Request, p: User):
    c = ctx(request)
    old, collab = _existing(c, p, comment_id)
    new = collab.edit_comment(comment_id, body.body)
    if new.edits != old.edits:
        c.audit(p, "comment.edit", f"comment:{comment_id}", {"edits": old.edits},
                {"edits": new.edits, "mentions": list(new.mentions)})
    return _out(_comment_json(new))


@router.delete("/comments/{comment_id}", summary="Delete a comment; its replies stay")
def delete_comment(comment_id: CommentId, request: Request, p: User):
    c = ctx(request)
    old, collab = _existing(c, p, comment_id)
    new = collab.delete_comment(comment_id)
    if not old.deleted:
        c.audit(p, "comment.delete", f"comment:{comment_id}", {"author": old.author}, None)
    return _out(_comment_json(new))


@router.post("/comments/{comment_id}/restore", summary="Undo a comment's deletion")
def restore_comment(comment_id: CommentId, request: Request, p: User):
    c = ctx(request)
    old, collab = _existing(c, p, comment_id)
    new = collab.restore_comment(comment_id)
    if old.deleted:
        c.audit(p, "comment.restore", f"comment:{comment_id}", None, {"author": old.author})
    return _out(_comment_json(new))


# -- saved views ---------------------------------------------------------------------
def _view_json(v: Any) -> dict:
    import dataclasses

    return {**dataclasses.asdict(v), "url": v.url}


@router.get("/experiments/{experiment_id}/views", summary="An experiment's saved views")
def list_views(experiment_id: ExpId, request: Request, p: User):
    c = ctx(request)
    c.guard.need(p, "experiment", experiment_id)
    views = [_view_json(v) for v in _collab(c, p).views(experiment_id)]
    # What the caller may do here, so that the UI offers only that (auth off: everything).
    can = {"save": c.guard.allows(p, "editor", "experiment", experiment_id),
           "manage": c.guard.allows(p, "admin", "experiment", experiment_id)}
    return _out({"views": views, "can": can, "user": p.user})


@router.get("/experiments/{experiment_id}/views/{name}", summary="One saved view")
def get_view(experiment_id: ExpId, name: ViewName, request: Request, p: User):
    c = ctx(request)
    c.guard.need(p, "experiment", experiment_id)
    return _out(_view_json(_collab(c, p).get_view(experiment_id, name)))


@router.put("/experiments/{experiment_id}/views/{name}",
            summary="Save a view of the runs table (replaces one of the same name)")
def put_view(experiment_id: ExpId, name: ViewName, request: Request, p: User,
             body: Annotated[dict | None, Body(description='{"state": {...}}')] = None):
    c = ctx(request)
    c.guard.need(p, "experiment", experiment_id)
    if body is None or set(body) != {"state"}:
        raise InvalidArgument('the body must be {"state": {...}} (filter, columns, group, '
                              'sort, charts)')
    admin = c.guard.allows(p, "admin", "experiment", experiment_id)
    collab = _collab(c, p, admin=admin)
    try:
        before: Any = collab.get_view(experiment_id, name).state
    except NotFound:
        before = None
    v = collab.save_view(experiment_id, name, body["state"])
    c.audit(p, "view.put", f"view:{experiment_id}/{name}", before, v.state)
    return _out(_view_json(v))


@router.delete("/experiments/{experiment_id}/views/{name}", summary="Delete a saved view")
def delete_view(experiment_id: ExpId, name: ViewName, request: Request, p: User):
    c = ctx(request)
    c.guard.need(p, "experiment", experiment_id)
    admin = c.guard.allows(p, "admin", "experiment", experiment_id)
    collab = _collab(c, p, admin=admin)
    before = collab.get_view(experiment_id, name).state
    collab.delete_view(experiment_id, name)
    c.audit(p, "view.delete", f"view:{experiment_id}/{name}", before, None)
    return _out({"deleted": name})


# -- dashboards ----------------------------------------------------------------------
# A dashboard shows runs of the experiments its panels name: a caller sees it only with
# viewer on every one of them (else 404, as if there were none), and saves it with editor
# on every one; replacing or deleting another user's: global admin.
def _dashboard_json(d: Any) -> dict:
    import dataclasses

    return {**dataclasses.asdict(d), "panels": list(d.panels), "url": d.url}


def _sees(c: ServerContext, p: Principal, d: Any) -> bool:
    return all(c.guard.allows(p, "viewer", "experiment", e) for e in d.experiment_ids)


@router.get("/dashboards", summary="Dashboards over experiments you may view")
def list_dashboards(request: Request, p: User):
    c = ctx(request)
    return _out({"dashboards": [_dashboard_json(d) for d in _collab(c, p).dashboards()
                                if _sees(c, p, d)]})


@router.get("/dashboards/{name}", summary="One dashboard")
def get_dashboard(name: ViewName, request: Request, p: User):
    c = ctx(request)
    d = _collab(c, p).get_dashboard(name)
    if not _sees(c, p, d):
        raise NotFound(f"no dashboard named {name!r}", name=name)
    # Whether the caller may change it, so that the UI offers only that.
    edit = (d.created_by == p.user or p.is_admin) and all(
        c.guard.allows(p, "editor", "experiment", e) for e in d.experiment_ids)
    return _out({**_dashboard_json(d), "can": {"edit": edit}})


class DashboardBody(BaseModel):
    description: StrictStr = ""
    panels: list[dict[str, Any]] = Field(max_length=50)


@router.put("/dashboards/{name}", summary="Save a dashboard (replaces one of the same name)")
def put_dashboard(name: ViewName, body: DashboardBody, request: Request, p: User):
    from ...collab import rules

    c = ctx(request)
    panels = rules.check_panels(body.panels)
    for e in dict.fromkeys(x["experiment_id"] for x in panels):
        c.guard.require(p, "editor", "experiment", e)
    collab = _collab(c, p, admin=p.is_admin)
    try:
        existing = collab.get_dashboard(name)
    except NotFound:
        before: Any = None
    else:
        if not _sees(c, p, existing):  # a name is taken, but what holds it, or whose, not
            raise PermissionDenied(f"the dashboard name {name!r} is taken; choose another",
                                   name=name)
        before = _dashboard_json(existing)["panels"]
    d = collab.save_dashboard(name, panels, body.description)
    c.audit(p, "dashboard.put", f"dashboard:{name}", before, list(d.panels))
    return _out(_dashboard_json(d))


@router.delete("/dashboards/{name}", summary="Delete a dashboard (its creator, or an admin)")
def delete_dashboard(name: ViewName, request: Request, p: User):
    c = ctx(request)
    collab = _collab(c, p, admin=p.is_admin)
    d = collab.get_dashboard(name)
    if not _sees(c, p, d):
        raise NotFound(f"no dashboard named {name!r}", name=name)
    collab.delete_dashboard(name)
    c.audit(p, "dashboard.delete", f"dashboard:{name}", list(d.panels), None)
    return _out({"deleted": name})
