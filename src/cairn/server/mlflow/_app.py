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
from ...store.wire import parse_json
from ..context import NEED_KEY, principal
from ..permissions import Need
from ._common import Params, dumps, error_json, mlflow_error

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
            # 400 for what is not JSON, nests too deep or holds a lone surrogate
            data = parse_json(body, "Malformed request: the body", loads=orjson.loads)
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


def _endpoint(handlers: dict[str, Callable], needs: dict[str, Need]) -> Callable:
    async def endpoint(request: Request) -> Response:
        from ..app import BodyTooLarge

        context = request.app.state.cairn
        method = request.method if request.method != "HEAD" else "GET"
        handler = handlers[method]
        request.scope[NEED_KEY] = needs.get(method)  # principal() reads it
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
            return json_response(error_json("REQUEST_LIMIT_EXCEEDED",
                                            f"the request body is larger than {exc.limit} "
                                            "bytes, the most this server accepts"), 413)
        except Exception as exc:  # a bug: say so as MLflow would, and keep the details in the log
            log.exception("unhandled error on %s %s", request.method, request.url.path)
            return json_response(error_json("INTERNAL_ERROR",
                                            f"internal server error ({type(exc).__name__})"),
                                 500)

    return endpoint


async def _http_error(request: Request, exc: HTTPException) -> Response:
    if exc.status_code == 404:
        return json_response(error_json("ENDPOINT_NOT_FOUND",
                                        f"no such endpoint: {request.method} {request.url.path}"),
                             404)
    response = json_response(error_json("BAD_REQUEST", str(exc.detail)), exc.status_code)
    response.headers.update(exc.headers or {})  # a 405's Allow
    return response


def _by_path(routes: list[tuple[str, str, Callable]]) -> dict[str, dict[str, Callable]]:
    by_path: dict[str, dict[str, Callable]] = {}
    for method, path, handler in routes:
        by_path.setdefault(path, {})[method] = handler
    return by_path


def _needs(table: dict[tuple[str, str], Need], path: str) -> dict[str, Need]:
    """method -> need of one path, from the permissions table (a route missing there gets
    none, and so only admins pass its checks)."""
    return {m: n for (m, p), n in table.items() if p == path}


def build_app(context: Any, routes: list[tuple[str, str, Callable]],
              table: dict[tuple[str, str], Need]) -> Starlette:
    app = Starlette(routes=[Route(path, _endpoint(handlers, _needs(table, path)),
                                  methods=list(handlers))
                            for path, handlers in _by_path(routes).items()],
                    exception_handlers={HTTPException: _http_error})
    app.state.cairn = context
    return app


def fast_routes(prefixes: tuple[str, ...], routes: list[tuple[str, str, Callable]],
                table: dict[tuple[str, str], Need]) -> dict[tuple[str, str], Callable]:
    """(full path, method) -> endpoint, for the app's ``FastRoutes``: the plain routes
    without path parameters, under each prefix."""
    out: dict[tuple[str, str], Callable] = {}
    for path, handlers in _by_path(routes).items():
        if "{" in path:
            continue
        endpoint = _endpoint(handlers, _needs(table, path))
        for method, handler in handlers.items():
            if not getattr(handler, "raw", False):
                for prefix in prefixes:
                    out[(prefix + path, method)] = endpoint
    return out


async def server_info(request: Request) -> JSONResponse:
    """What the 3.x client asks once a minute: no multipart, no workspaces (needs a token
    when auth is on)."""
    await run_in_threadpool(principal, request)
    return JSONResponse({"store_type": "SqlStore", "workspaces_enabled": False,
                         "multipart_uploads_enabled": False,
                         "multipart_downloads_enabled": False})


# The mlflow release whose REST API Cairn serves and tests against (docs/mlflow.md).
MLFLOW_VERSION = "3.17.2"


async def version(request: Request) -> Response:
    """``GET /version``: the mlflow version, as ``mlflow server`` answers it (its Flask view
    returns a bare string: ``text/html``).  Needs a token when auth is on, as MLflow's auth
    asks credentials for every route but its static files, ``/health`` and server-info."""
    await run_in_threadpool(principal, request)
    return Response(MLFLOW_VERSION, media_type="text/html",
                    headers={"x-content-type-options": "nosniff"})
