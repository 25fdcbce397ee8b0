"""Liveness (``/health``), readiness (``/ready``) and what this server is (``/api/v1/info``).

The probes answer without a token; ``/api/v1/info`` (version, limits) needs one when
auth is on, like every other route.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from ...errors import CairnError
from ...store.base import Openable, Pingable
from ..auth import Principal
from ..context import ctx, principal

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness: the process answers")
def health() -> dict:
    return {"status": "ok"}


@router.get("/ready", summary="Readiness: the database answers",
            responses={503: {"description": "the database is unreachable"}})
async def ready(request: Request):
    c = ctx(request)

    def check() -> None:
        if isinstance(c.store, Openable):
            c.store.open()
        if isinstance(c.store, Pingable):
            c.store.ping()
        else:
            c.store.list_experiments()

    try:
        await run_in_threadpool(check)
    except CairnError as exc:
        return JSONResponse({"status": "unavailable", "message": exc.message}, status_code=503)
    return {"status": "ready"}


@router.get("/api/v1/info", summary="Server version and features (any user with a token)")
def info(request: Request, p: Annotated[Principal, Depends(principal)]) -> dict:
    from ... import __version__

    c = ctx(request)
    return {"version": __version__, "auth": c.settings.auth, "store": type(c.store).__name__,
            "max_request_bytes": c.settings.max_request_bytes,
            "max_object_bytes": c.settings.max_object_bytes,
            "record_types": ["application/vnd.cairn.records", "application/json"]}
