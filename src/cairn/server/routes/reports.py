"""Reports over REST: Markdown documents with live panels (see docs/collaboration.md).

A report draws from the experiments of the runs its panels name and from the models
whose stage history it shows.  As for dashboards: a caller sees it only with viewer on
every one of them (else 404, as if there were none), saves it with editor on every one;
replacing or deleting another user's is for a global admin.  A panel naming a run or a
model the caller may not view is refused as if it did not exist (404 naming the panel),
so that a report cannot be used to learn what exists.  Every write is audited
(``report.put``, ``report.delete``).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, StrictStr

from ...errors import CairnError, NotFound, PermissionDenied
from ..auth import Principal
from ..context import ServerContext, ctx, principal
from ._common import run_experiments
from ._json import out as _out

router = APIRouter(tags=["collaboration"])
User = Annotated[Principal, Depends(principal)]
ReportName = Annotated[str, Path(min_length=1, max_length=128)]


def _collab(c: ServerContext, p: Principal, admin: bool = False):
    from ...collab.service import Collab

    return Collab(c.store, p.user, admin=admin)


def _report_json(r: Any) -> dict:
    from ...collab.reports import public_panel

    return {**dataclasses.asdict(r), "panels": [public_panel(x) for x in r.panels],
            "experiment_ids": list(r.experiment_ids), "models": list(r.models),
            "author": r.author, "url": r.url}


def _digest(r: Any) -> dict:
    """What the audit log keeps of a report: its size, digest and panels (not its text)."""
    import hashlib

    raw = r.body.encode("utf-8")
    return {"bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest(),
            "panels": [x["type"] for x in r.panels], "author": r.created_by}


def _sees(c: ServerContext, p: Principal, r: Any) -> bool:
    return all(c.guard.allows(p, "viewer", "experiment", e) for e in r.experiment_ids) and \
        all(c.guard.allows(p, "viewer", "model", m) for m in r.models)


def _visible(c: ServerContext, p: Principal, name: str, admin: bool = False):
    collab = _collab(c, p, admin=admin)
    r = collab.get_report(name)
    if not _sees(c, p, r):
        raise NotFound(f"no report named {name!r}", name=name)
    return r, collab


def _require_sources(c: ServerContext, p: Principal, body: str) -> None:
    """Editor on everything the body's panels draw from; what the caller may not view is
    answered as if it did not exist, naming the panel."""
    from ...collab import reports

    panels = reports.parse_panels(body)
    found = run_experiments(c, [r for x in panels for r in reports.panel_runs(x)])
    need: dict[tuple[str, str], None] = {}
    for i, x in enumerate(panels):
        where = reports.panel_where(i, x)
        for run_id in reports.panel_runs(x):
            exp = found.get(run_id)
            if exp is None or not c.guard.allows(p, "viewer", "experiment", exp):
                raise NotFound(f"{where}: no run {run_id!r}, or you may not view it",
                               panel=i + 1)
            need[("experiment", exp)] = None
        if x["type"] == "stages":
            if not c.guard.allows(p, "viewer", "model", x["model"]):
                raise NotFound(f"{where}: no model {x['model']!r}, or you may not view it",
                               panel=i + 1)
            need[("model", x["model"])] = None
    for rtype, rid in need:
        c.guard.require(p, "editor", rtype, rid)


@router.get("/reports", summary="Reports over what you may view")
def list_reports(request: Request, p: User):
    c = ctx(request)
    return _out({"reports": [_report_json(r) for r in _collab(c, p).reports()
                             if _sees(c, p, r)]})


@router.get("/reports/{name}", summary="One report (its Markdown and panels)")
def get_report(name: ReportName, request: Request, p: User):
    c = ctx(request)
    r, _ = _visible(c, p, name)
    # Whether the caller may change it, so that the UI offers only that.
    edit = (r.created_by == p.user or p.is_admin) and \
        all(c.guard.allows(p, "editor", "experiment", e) for e in r.experiment_ids) and \
        all(c.guard.allows(p, "editor", "model", m) for m in r.models)
    return _out({**_report_json(r), "can": {"edit": edit}})


@router.get("/reports/{name}/data", summary="A report with each panel's data, drawn now")
def report_data(name: ReportName, request: Request, p: User):
    from ...collab.reports import snapshot

    c = ctx(request)
    r, collab = _visible(c, p, name)
    return _out(snapshot(collab.client, r))


@router.get("/reports/{name}/export",
            summary="A report as one self-contained HTML file (data drawn now, inlined)")
def export_report(name: ReportName, request: Request, p: User):
    from ...collab.export import export_html
    from ...collab.reports import snapshot

    c = ctx(request)
    r, collab = _visible(c, p, name)
    page = export_html(snapshot(collab.client, r))
    filename = quote(f"{name}.html", safe="")
    return Response(page, media_type="text/html; charset=utf-8", headers={
        "content-disposition": f"attachment; filename*=UTF-8''{filename}",
        "x-content-type-options": "nosniff"})


class ReportBody(BaseModel):
    body: StrictStr


@router.post("/reports/check",
             summary="What saving this Markdown would refuse, as an answer (nothing is stored)")
def check_report(body: ReportBody, request: Request, p: User):
    """For an editor that checks before it saves: a refusal here is a 200 that says what
    PUT would answer (its status and message), not a failed request."""
    c = ctx(request)
    try:
        _require_sources(c, p, body.body)
        panels = _collab(c, p).resolve_panels(body.body)
    except CairnError as exc:
        return _out({"ok": False, "status": exc.http_status, "message": exc.message})
    return _out({"ok": True, "status": 200, "message": "", "panels": len(panels)})


@router.put("/reports/{name}", summary="Save a report (replaces one of the same name)")
def put_report(name: ReportName, body: ReportBody, request: Request, p: User):
    from ...collab import reports

    c = ctx(request)
    reports.check_report_name(name)
    _require_sources(c, p, body.body)
    collab = _collab(c, p, admin=p.is_admin)
    try:
        old = collab.get_report(name)
    except NotFound:
        old = None
    if old is not None and not _sees(c, p, old):
        raise PermissionDenied(f"the report name {name!r} is taken; choose another", name=name)
    r = collab.save_report(name, body.body)
    c.audit(p, "report.put", f"report:{name}", None if old is None else _digest(old),
            _digest(r))
    return _out(_report_json(r))


@router.delete("/reports/{name}", summary="Delete a report (its author, or an admin)")
def delete_report(name: ReportName, request: Request, p: User):
    c = ctx(request)
    r, collab = _visible(c, p, name, admin=p.is_admin)
    collab.delete_report(name)
    c.audit(p, "report.delete", f"report:{name}", _digest(r), None)
    return _out({"deleted": name})
