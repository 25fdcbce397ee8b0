"""Erasing one person's data on request (global admins): ``cairn admin erase-user``
against a team server."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field, StrictBool

from ..auth import Principal
from ..context import ctx, principal

router = APIRouter(tags=["audit"])
User = Annotated[Principal, Depends(principal)]


class EraseRequest(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=256)]
    dry_run: StrictBool = False


class EraseOut(BaseModel):
    name: str
    dry_run: bool
    runs: list[str]
    journals: list[str]
    rows: dict[str, int]
    audit_events: list[int]
    erase_event: int | None


@router.post("/admin/erase-user", response_model=EraseOut,
             summary="Erase one person's data; audit events naming them become tombstones")
def erase_user(request: Request, body: EraseRequest, p: User):
    from ...lifecycle.erase import erase_user as erase

    from ..download_audit import end_bursts

    c = ctx(request)
    end_bursts(c)  # downloads still gathering objects become events now, not after
    c.flush_audit()  # queued events that name them are erased too
    return erase(c.store, body.name, actor=p.user, dry_run=body.dry_run).to_dict()
