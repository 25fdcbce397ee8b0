"""Liveness (``/health``), readiness (``/ready``) and what this server is (``/api/v1/info``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from ...errors import CairnError
from ..context import ctx

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness: the process answers")
def health() -> dict:
    return {"status": "ok"}


@router.get("/ready", summary="Readiness: the database answers",
            responses={503: {"description": "the database is unreachable"}})
async def ready(request: Request):
    c = ctx(request)

    def check() -> None:
        if hasattr(c.store, "open"):
            c.store.open()
        ping = getattr(c.store, "ping", None)
        if ping is not None:
            ping()
        else:
            c.store.list_experiments()

    try:
        await run_in_threadpool(check)
    except CairnError as exc:
        return JSONResponse({"status": "unavailable", "message": exc.message}, status_code=503)
    return {"status": "ready"}


@router.get("/api/v1/info", summary="Server version and features")
def info(request: Request) -> dict:
    from ... import __version__

    c = ctx(request)
    return {"version": __version__, "auth": c.settings.auth, "store": type(c.store).__name__,
            "max_request_bytes": c.settings.max_request_bytes,
            "max_object_bytes": c.settings.max_object_bytes,
            "record_types": ["application/vnd.cairn.records", "application/json"]}
