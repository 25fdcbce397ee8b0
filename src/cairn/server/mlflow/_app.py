"""The Starlette apps that serve MLflow's routes: dispatch, parsing and error mapping.

A route is ``(method, path, handler)``.  A plain handler is called in the thread pool
as ``handler(context, principal, params)`` and returns a dict (the JSON answer);
a handler marked :func:`raw` is awaited as ``handler(context, request)`` and returns
a response itself (artifact uploads and downloads stream their bodies).
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import orjson

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ...errors import CairnError, InvalidArgument
from ..context import principal
from ._common import Params, dumps, mlflow_error

log = logging.getLogger("cairn.server.mlflow")
JSON = "application/json"


def raw(fn: Callable) -> Callable:
    """Mark an async handler that takes (context, request) and returns a Response."""
    fn.raw = True  # type: ignore[attr-defined]
    return fn


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(dumps(payload), status_code=status, media_type=JSON)


def error_response(exc: CairnError) -> Response:
    body, status = mlflow_error(exc)
    return json_response(body, status)


async def _params(request: Request) -> Params:
    if request.method in ("GET", "HEAD"):
        params = Params.from_query_items(request.query_params.multi_items())
    else:
        body = await request.body()
        if body.strip():
            try:
                data = orjson.loads(body)
            except ValueError:
                raise InvalidArgument("Malformed request: the body is not valid JSON") from None
            if not isinstance(data, dict):
                raise InvalidArgument("Malformed request: the body must be a JSON object")
        else:
            data = {}
        params = Params(data)
    if request.path_params:
        params.data = {**params.data, **request.path_params}
    return params


def _call(handler: Callable, context: Any, request: Request, params: Params) -> Any:
    return handler(context, principal(request), params)


def _endpoint(handlers: dict[str, Callable]) -> Callable:
    async def endpoint(request: Request) -> Response:
        from ..app import BodyTooLarge

        context = request.app.state.cairn
        handler = handlers[request.method if request.method != "HEAD" else "GET"]
        try:
            if getattr(handler, "raw", False):
                return await handler(context, request)
            params = await _params(request)
            # One trip to the thread pool per request: each costs more than a small handler.
            result = await run_in_threadpool(_call, handler, context, request, params)
            return result if isinstance(result, Response) else json_response(result)
        except CairnError as exc:
            return error_response(exc)
        except BodyTooLarge as exc:
            return json_response({"error_code": "REQUEST_LIMIT_EXCEEDED",
                                  "message": f"the request body is larger than {exc.limit} "
                                             "bytes, the most this server accepts"}, 413)
        except Exception as exc:  # a bug: say so as MLflow would, and keep the details in the log
            log.exception("unhandled error on %s %s", request.method, request.url.path)
            return json_response({"error_code": "INTERNAL_ERROR",
                                  "message": f"internal server error ({type(exc).__name__})"}, 500)

    return endpoint


async def _http_error(request: Request, exc: HTTPException) -> Response:
    if exc.status_code == 404:
        return json_response({"error_code": "ENDPOINT_NOT_FOUND",
                              "message": f"no such endpoint: {request.method} {request.url.path}"},
                             404)
    return json_response({"error_code": "BAD_REQUEST", "message": str(exc.detail)},
                         exc.status_code)


def _by_path(routes: list[tuple[str, str, Callable]]) -> dict[str, dict[str, Callable]]:
    by_path: dict[str, dict[str, Callable]] = {}
    for method, path, handler in routes:
        by_path.setdefault(path, {})[method] = handler
    return by_path


def build_app(context: Any, routes: list[tuple[str, str, Callable]]) -> Starlette:
    app = Starlette(routes=[Route(path, _endpoint(handlers), methods=list(handlers))
                            for path, handlers in _by_path(routes).items()],
                    exception_handlers={HTTPException: _http_error})
    app.state.cairn = context
    return app


def fast_routes(prefixes: tuple[str, ...],
                routes: list[tuple[str, str, Callable]]) -> dict[tuple[str, str], Callable]:
    """(full path, method) -> endpoint, for the app's ``FastRoutes``: the plain routes
    without path parameters, under each prefix."""
    out: dict[tuple[str, str], Callable] = {}
    for path, handlers in _by_path(routes).items():
        if "{" in path:
            continue
        endpoint = _endpoint(handlers)
        for method, handler in handlers.items():
            if not getattr(handler, "raw", False):
                for prefix in prefixes:
                    out[(prefix + path, method)] = endpoint
    return out


async def server_info() -> JSONResponse:
    """What the 3.x client asks once a minute: no multipart, no workspaces."""
    return JSONResponse({"store_type": "SqlStore", "workspaces_enabled": False,
                         "multipart_uploads_enabled": False,
                         "multipart_downloads_enabled": False})
