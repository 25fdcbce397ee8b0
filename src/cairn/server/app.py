"""The app factory: ``create_app(store, objects, settings)``, explicit dependencies only.

Errors leave the server as JSON ``{"error_code", "message", ...}`` with the status of
the :class:`~cairn.errors.CairnError` behind them; bad input is always a 4xx with a
message that says what to change, never a 500.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import CairnError
from ..store.wire import error_to_json
from .config import ServerSettings
from .context import ServerContext

if TYPE_CHECKING:  # pragma: no cover
    from ..cas.odb import ObjectStore

log = logging.getLogger("cairn.server")

API = "/api/v1"


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        self.limit = limit


def _error(status: int, code: str, message: str, **details: Any) -> JSONResponse:
    return JSONResponse({"error_code": code, "message": message, **details}, status_code=status)


class LimitsMiddleware:
    """413 for bodies over the limit (declared or streamed); 400 for NUL bytes in the URL."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if "\x00" in scope.get("path", "") or b"%00" in scope.get("query_string", b""):
            resp = _error(400, "INVALID_PARAMETER_VALUE", "the URL contains a NUL character")
            return await resp(scope, receive, send)
        limit = self.max_bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > limit:
                    resp = _error(413, "REQUEST_TOO_LARGE",
                                  f"the request body has {declared} bytes; this server accepts at "
                                  f"most {limit} (send records in smaller requests)", limit=limit)
                    return await resp(scope, receive, send)
        return await self._streamed(scope, receive, send, limit)

    async def _streamed(self, scope, receive, send, limit: int) -> None:
        """Count the body as it arrives (chunked bodies declare no length): past the limit,
        the app's ``receive`` raises :class:`BodyTooLarge`, and whatever answer the app makes
        of that (FastAPI's body parsing turns any error into a 400) is replaced by the 413,
        unless its answer had already begun."""
        seen = 0
        over: BodyTooLarge | None = None
        started = replaced = False

        async def limited():
            nonlocal seen, over
            if over is not None:
                raise over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    over = BodyTooLarge(limit)
                    raise over
            return message

        async def answer(message) -> None:
            nonlocal started, replaced
            if replaced:  # the app's own answer to the error: dropped
                return
            if message["type"] == "http.response.start":
                started = True
                if over is not None and message["status"] != 413:
                    replaced = True
                    await too_large_response(over)(scope, receive, send)
                    return
            await send(message)

        try:
            await self.app(scope, limited, answer)
        except BodyTooLarge as exc:
            if not started:
                await too_large_response(exc)(scope, receive, send)
            elif not replaced:
                raise


def route_path(scope) -> str:
    """The path the app's router matches: Starlette's, without the root path."""
    path: str = scope["path"]
    root = scope.get("root_path", "")
    if not root or not path.startswith(root):
        return path
    if path == root:
        return ""
    return path[len(root):] if path[len(root)] == "/" else path


def allow_header(request: Request) -> str:
    """The methods the app serves at the request's path, for a 405's ``Allow``: Starlette's
    own header names those of the first route that matched the path only, and each FastAPI
    route serves one method.  Asks every route whether it would take the request under each
    method (``BaseRoute.matches``, so routers that FastAPI nests are asked too)."""
    from starlette.routing import Match

    allowed = [method for method in HTTP_METHODS
               if any(route.matches(dict(request.scope, method=method))[0] == Match.FULL
                      for route in request.app.router.routes)]
    return ", ".join(allowed)


HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def cairn_error_response(request: Request, exc: CairnError) -> JSONResponse:
    if exc.http_status >= 500:
        log.warning("%s %s: %s", request.method, request.url.path, exc.message)
    return JSONResponse(_jsonable(error_to_json(exc)), status_code=exc.http_status)


def too_large_response(exc: BodyTooLarge) -> JSONResponse:
    return _error(413, "REQUEST_TOO_LARGE", f"the request body is larger than {exc.limit} "
                  "bytes, the most this server accepts", limit=exc.limit)


def unexpected_response(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _error(500, "INTERNAL_ERROR", f"internal server error ({type(exc).__name__}); "
                  "the server log has the details")


class FastRoutes:
    """Middleware that serves the hottest plain routes before the app's routing.

    ``endpoints`` maps (path, method) to an ``async endpoint(request) -> Response`` that
    does its own authentication and error answers; a request that names one exactly is
    served by it behind the same :class:`LimitsMiddleware` the app applies, and every other
    request takes the app's own way.  What is skipped is the walk through the app's inner
    middleware, its route table and dependency solving: sampling a loaded worker put that at
    a fifth of a small request's time.  The table holds ``POST /api/v1/records`` (every
    training client's hot path) and the plain MLflow routes (see ``mlflow.fast_endpoints``).
    """

    def __init__(self, app: Any, endpoints: dict[tuple[str, str], Any], max_bytes: int) -> None:
        self.app = app
        self.endpoints = endpoints
        self._limited = LimitsMiddleware(self._serve, max_bytes)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and (route_path(scope), scope["method"]) in self.endpoints:
            return await self._limited(scope, receive, send)
        return await self.app(scope, receive, send)

    async def _serve(self, scope, receive, send) -> None:
        endpoint = self.endpoints[(route_path(scope), scope["method"])]
        response = await endpoint(Request(scope, receive, send))
        await response(scope, receive, send)


async def ingest_endpoint(request: Request) -> Response:
    """``POST /api/v1/records`` for :class:`FastRoutes`: the route's own function, with the
    app's error answers."""
    from .context import principal
    from .routes import records

    try:
        return await records.ingest(request, principal(request), request.query_params.get("strict"))
    except CairnError as exc:
        return cairn_error_response(request, exc)
    except BodyTooLarge as exc:
        return too_large_response(exc)
    except Exception as exc:  # pragma: no cover - a bug
        return unexpected_response(request, exc)


def create_app(store: Any, objects: "ObjectStore | None" = None,
               settings: ServerSettings | None = None) -> FastAPI:
    """A FastAPI app serving ``store`` (and ``objects``, by default the store's own)."""
    from .. import __version__
    from . import openapi
    from .routes import (
        admin, artifacts, audit, collab, datasets, experiments, health, lineage, metrics, models,
        records, registry_admin, reports, runs,
    )

    settings = settings or ServerSettings()
    context = ServerContext(store, objects if objects is not None else store.objects, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        try:  # queued audit events go out before the process does
            await run_in_threadpool(context.close)
        except CairnError as exc:
            log.error("audit events lost at shutdown: %s", exc.message)

    app = FastAPI(
        lifespan=lifespan,
        title="Cairn tracking server", version=__version__,
        description="Native REST API of Cairn: experiments, runs, record ingestion, metric "
                    "history, search, artifacts, users and roles, audit log. Errors are JSON "
                    "objects with `error_code` and `message`.",
        # Ignored by FastAPI releases before its native telemetry.
        telemetry={"tracing": settings.telemetry, "metrics": settings.telemetry,
                   "logs": settings.telemetry},
    )
    app.state.cairn = context
    openapi.install(app, auth=settings.auth)  # the errors as the handlers below send them

    @app.exception_handler(CairnError)
    async def _cairn_error(request: Request, exc: CairnError):
        return cairn_error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        problems = []
        for e in exc.errors():
            loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
            problems.append(f"{loc}: {e.get('msg', 'invalid')}")
        message = "invalid request: " + "; ".join(problems[:10])
        return _error(400, "INVALID_PARAMETER_VALUE", message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        code = {404: "ENDPOINT_NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code,
                                                                          "BAD_REQUEST")
        message = (f"no such endpoint: {request.method} {request.url.path}"
                   if exc.status_code == 404 else str(exc.detail))
        response = _error(exc.status_code, code, message)
        if exc.status_code == 405:
            response.headers["Allow"] = allow_header(request)
        return response

    @app.exception_handler(BodyTooLarge)
    async def _too_large(request: Request, exc: BodyTooLarge):
        return too_large_response(exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):  # pragma: no cover - a bug
        return unexpected_response(request, exc)

    from .jsonbody import JsonBodyCheck

    app.add_middleware(JsonBodyCheck)  # inside the limits: reads no more than they allow
    app.add_middleware(LimitsMiddleware, max_bytes=settings.max_request_bytes)
    app.include_router(health.router)
    for module in (experiments, runs, records, metrics, artifacts, models, admin, audit):
        app.include_router(module.router, prefix=API)
    from .routes import erasure

    app.include_router(erasure.router, prefix=API)
    from .routes import retention

    app.include_router(retention.router, prefix=API)
    app.include_router(datasets.router, prefix=API)
    app.include_router(lineage.router, prefix=API)
    app.include_router(registry_admin.router, prefix=API)
    app.include_router(collab.router, prefix=API)
    app.include_router(reports.router, prefix=API)
    from . import mlflow, ui

    mlflow.mount(app)
    ui.mount(app)  # last: the UI's page routes must not shadow an API route
    fast = {(API + "/records", "POST"): ingest_endpoint}
    if not settings.telemetry:  # FastAPI's telemetry sees only the requests it serves
        fast.update(mlflow.fast_endpoints())
    app.add_middleware(FastRoutes, endpoints=fast, max_bytes=settings.max_request_bytes)
    return app


def _jsonable(d: dict) -> dict:
    import json

    return json.loads(json.dumps(d, default=str))
