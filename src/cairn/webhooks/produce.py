"""Events from what Cairn already records: the registry's audit log and the runs' ends.

Each producer reads past its cursor (``events.audit``: the audit log's seq;
``events.runs``: a run's end time), turns what it finds into events keyed by the fact
(``audit:<seq>``, ``run:<id>:<status>``) and stores them with the cursor's new value in one
transaction.  The keys make a second producer, or a second look, harmless: the runs are
looked at again :data:`RUN_LOOKBACK_MS` back, because a run's end time is the writer's
clock and may reach the index late.

Cursors start where the producer (or the first subscription) first finds them: the audit
log's head and now.  History before that is not replayed as events.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any, Iterator

import sqlalchemy as sa

from ..errors import InvalidArgument
from ..registry import audit
from ..store.sql import tables as T
from . import repo
from .events import emit

log = logging.getLogger(__name__)

AUDIT = "events.audit"
RUNS = "events.runs"
AUDIT_PAGE = 2000
RUN_PAGE = 500
RUN_PAGES = 20  # pages of ended runs one scan reads at most
RUN_LOOKBACK_MS = 10 * 60 * 1000
MAX_METRICS = 100  # latest metrics a run event carries

# audit action -> event type (deployment.<event> is handled by prefix)
AUDIT_TYPES = {
    "model.create": "model.created",
    "model.rename": "model.renamed",
    "model.delete": "model.deleted",
    "model_version.create": "model_version.created",
    "model_version.delete": "model_version.deleted",
    "transition.request": "transition.requested",
    "transition.approve": "transition.approved",
    "transition.reject": "transition.rejected",
    "model_version.stage": "stage.changed",
    "model.rollback": "stage.changed",
    "model.alias": "alias.moved",
    "model.alias_delete": "alias.deleted",
}
RUN_TYPES = {"FINISHED": "run.finished", "FAILED": "run.failed", "KILLED": "run.killed"}

Produced = tuple[str, str, dict[str, Any], int, "str | None", "str | None"]
"""(key, type, payload, at_ms, model, experiment_id): an event to emit."""


def start(conn: Any, now_ms: int) -> None:
    """Start both cursors at the present unless they are started (the first subscription
    does this, so that what happens after it is not missed by a later first dispatch)."""
    repo.start_cursor(conn, AUDIT, audit.head(conn)[0])
    repo.start_cursor(conn, RUNS, now_ms)


# -- the audit log -------------------------------------------------------------------------


def _target(target: str) -> tuple[str, str | None, str | None]:
    """(model, version, alias) of ``model:NAME[/VERSION | /@ALIAS]`` (names hold no '/')."""
    rest = target.removeprefix("model:")
    name, _, tail = rest.partition("/")
    if tail.startswith("@"):
        return name, None, tail[1:]
    return name, tail or None, None


def from_audit(seq: int, time_ms: int, actor: str, action: str, target: str,
               before: Any, after: Any) -> Produced | None:
    """The event an audit record reports, or None for actions that are not events."""
    if action.startswith("deployment."):
        kind = "deployment.changed"
    else:
        found = AUDIT_TYPES.get(action)
        if found is None or not target.startswith("model:"):
            return None
        kind = found
    b = before if isinstance(before, dict) else {}
    a = after if isinstance(after, dict) else {}
    name, version, alias = _target(target)
    data: dict[str, Any] = {"model": name}
    if version is not None:
        data["version"] = version
    if action == "model.rename":
        data = {"model": a.get("name", name), "previous_name": b.get("name", name)}
    elif action == "model.delete":
        data["forced"] = a.get("forced", [])
    elif action == "model_version.create":
        data.update(version=a.get("version", version), flavor=a.get("flavor"),
                    source_run=a.get("source_run"), bump=a.get("bump"),
                    parent=a.get("parent"), digest=a.get("digest"), stage=a.get("stage"))
    elif action == "model_version.delete":
        data["forced"] = a.get("forced", [])
    elif action == "transition.request":
        data.update(request=a.get("request"), from_stage=a.get("from"), to_stage=a.get("to"),
                    comment=a.get("comment", ""), approvals_needed=a.get("approvals_needed"))
    elif action in ("transition.approve", "transition.reject"):
        data.update(request=a.get("request"), comment=a.get("comment", ""))
    elif kind == "stage.changed":
        data.update(from_stage=b.get("stage"), to_stage=a.get("stage"),
                    reason=a.get("reason") or "", request=a.get("request"),
                    rollback=action == "model.rollback")
    elif action == "model.alias":
        data.update(alias=alias, version=a.get("version"), previous=b.get("version"))
    elif action == "model.alias_delete":
        data.update(alias=alias, version=b.get("version"))
    elif kind == "deployment.changed":
        data.update(event=action.removeprefix("deployment."), deployment=a.get("deployment"),
                    arm=a.get("arm"), reason=a.get("reason", ""), previous=b.get("version"))
    data["by"] = actor
    data["audit_seq"] = seq
    return f"audit:{seq}", kind, _clean(data), time_ms, data["model"], None


def audit_page(conn: Any, after: int) -> tuple[list[Produced], int]:
    """The events of audit records after seq ``after``, and the cursor's next value."""
    head = audit.head(conn)[0]  # committed before every record it counts (see audit.py)
    if head <= after:
        return [], after
    A = T.audit_events
    actions = sa.or_(A.c.action.in_(list(AUDIT_TYPES)), A.c.action.startswith("deployment."))
    rows = conn.execute(sa.select(A).where(A.c.seq > after, A.c.seq <= head, actions)
                        .order_by(A.c.seq).limit(AUDIT_PAGE)).all()
    out = []
    for r in rows:
        ev = from_audit(int(r.seq), int(r.time), r.actor, r.action, r.target,
                        None if r.before is None else json.loads(r.before),
                        None if r.after is None else json.loads(r.after))
        if ev is not None:
            out.append(ev)
    nxt = int(rows[-1].seq) if len(rows) == AUDIT_PAGE else head
    return out, nxt


def enrich(client: Any, produced: list[Produced]) -> list[Produced]:
    """What the audit record does not say but a receiver needs: a model version's events
    name the experiment of the run it came from (so that a subscription filtered by
    experiment hears of the models trained there), and a request that waits names the
    stage's approvers (None: anyone but the requester), so that they can be told."""
    out = []
    runs: dict[str, str | None] = {}
    policies: dict[str, dict[str, Any]] = {}
    for key, kind, data, at, model, exp in produced:
        run_id = data.get("source_run") if kind == "model_version.created" else None
        if isinstance(run_id, str) and run_id:
            if run_id not in runs:
                try:
                    runs[run_id] = client.get_run(run_id).experiment_id
                except Exception:  # a deleted or imported run: the event goes without it
                    runs[run_id] = None
            exp = runs[run_id]
            if exp is not None:
                data = {**data, "experiment_id": exp}
        if kind == "transition.requested" and data.get("approvals_needed") and model:
            if model not in policies:
                policies[model] = _policies(client, model)
            pol = policies[model].get(str(data.get("to_stage")))
            data = {**data, "approvers": None if pol is None or pol.approvers is None
                    else list(pol.approvers)}
        out.append((key, kind, data, at, model, exp))
    return out


def _policies(client: Any, model: str) -> dict[str, Any]:
    from ..services import registry_for

    try:
        return {p.stage: p for p in registry_for(client).get_stage_policies(model)}
    except Exception:  # the model is gone since: the event goes without its approvers
        return {}


# -- runs ----------------------------------------------------------------------------------


def run_event(run: Any) -> Produced | None:
    status = getattr(run.status, "value", run.status)
    kind = RUN_TYPES.get(status)
    if kind is None or run.end_time is None:
        return None
    metrics = {}
    for k in sorted(run.metrics)[:MAX_METRICS]:
        v = run.metrics[k]
        metrics[k] = v if isinstance(v, (int, float)) and math.isfinite(v) else None
    data = _clean({"run_id": run.id, "run_name": run.name, "experiment_id": run.experiment_id,
                   "experiment": run.experiment, "status": status, "user": run.user,
                   "start_time": run.start_time, "end_time": run.end_time,
                   "duration_ms": run.duration_ms, "metrics": metrics})
    return (f"run:{run.id}:{status}", kind, data, int(run.end_time), None,
            run.experiment_id)


def ended_runs(client: Any, since_ms: int, before_ms: int | None = None,
               max_pages: int | None = None) -> Iterator[Any]:
    """Runs that ended at or after ``since_ms`` (and before ``before_ms``), in end-time
    order, at most ``max_pages`` pages (default :data:`RUN_PAGES`)."""
    token = None
    flt = f"attributes.end_time >= {int(since_ms)}"
    if before_ms is not None:
        flt += f" and attributes.end_time < {int(before_ms)}"
    for _ in range(RUN_PAGES if max_pages is None else max_pages):
        page = client.search_runs(None, flt,
                                  order_by=["attributes.end_time ASC"], max_results=RUN_PAGE,
                                  page_token=token)
        yield from page
        token = page.token
        if not token:
            return


def _clean(value: Any) -> Any:
    """JSON-safe: non-finite floats become None (an event must always be storable)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def store(conn: Any, produced: list[Produced]) -> int:
    """Emit ``produced`` in ``conn``'s transaction; how many were new."""
    n = 0
    for key, kind, data, at, model, exp in produced:
        try:
            seq = emit(conn, key=key, type=kind, payload=data, at_ms=at, model=model,
                       experiment_id=exp)
        except InvalidArgument as e:  # refused before any write: skip it, never stall on it
            log.warning("event %s not stored: %s", key, e)
            continue
        n += seq is not None
    return n
