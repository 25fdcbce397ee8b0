"""The hash-chained audit log (shared with the registry): read it, verify it (admins)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from ...errors import InvalidArgument
from ..auth import Principal
from ..context import ctx, principal

router = APIRouter(tags=["audit"])
User = Annotated[Principal, Depends(principal)]


class Event(BaseModel):
    seq: int
    time: int
    actor: str
    action: str
    target: str
    before: Any = None
    after: Any = None
    prev_hash: str
    hash: str


class EventList(BaseModel):
    events: list[Event]


class Problem(BaseModel):
    seq: int | None
    message: str


class Report(BaseModel):
    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    problems: list[Problem]


def _engine(request: Request):
    c = ctx(request)
    if c.engine is None:
        raise InvalidArgument("this server's store keeps no audit log (it needs SQL)")
    return c.engine


@router.get("/audit", response_model=EventList, summary="Audit events, newest first (admins)")
def list_events(request: Request, p: User,
                target: Annotated[str | None, Query(max_length=500)] = None,
                action: Annotated[str | None, Query(max_length=64)] = None,
                actor: Annotated[str | None, Query(max_length=256)] = None,
                limit: Annotated[int, Query(ge=1, le=10_000)] = 100):
    c = ctx(request)
    from ...registry import audit as chain
    from ...store.sql.engine import session

    c.flush_audit()
    with session(_engine(request)) as conn:
        evs = chain.events(conn, target=target, action=action, actor=actor, limit=limit)
    return {"events": [{"seq": e.seq, "time": e.time, "actor": e.actor, "action": e.action,
                        "target": e.target, "before": e.before, "after": e.after,
                        "prev_hash": e.prev_hash, "hash": e.hash} for e in evs]}


@router.get("/audit/verify", response_model=Report,
            summary="Walk the whole chain and report every edited, missing or reordered event")
def verify(request: Request, p: User):
    c = ctx(request)
    from ...registry import audit as chain
    from ...store.sql.engine import session

    c.flush_audit()
    with session(_engine(request)) as conn:
        report = chain.verify(conn)
        seq, h = chain.head(conn)
    return {"ok": report.ok, "checked": report.checked, "head_seq": seq, "head_hash": h,
            "problems": [{"seq": pr.seq, "message": pr.message} for pr in report.problems]}
