"""The OpenAPI document (``/openapi.json``) as the server answers, errors included.

FastAPI generates each operation's success answer from the route, and a 422 with its
own ``{"detail": [...]}`` body for every operation that takes parameters; Cairn answers
neither shape for errors.  Its exception handlers (``cairn.server.app``) send every error
as JSON ``{"error_code", "message", ...}``, with the status of the
:class:`~cairn.errors.CairnError` behind it::

    400  InvalidArgument, a request that fails validation (never 422), a NUL in the URL
    401  Unauthenticated: no token, a malformed one, or one unknown, revoked or expired
    403  PermissionDenied: the caller lacks the role
    404  NotFound: an unknown id or name, in the path, the query or the body
    409  AlreadyExists, Conflict (a finished run's params and metrics, missing objects)
    413  a request body over the server's limit (declared or streamed)
    503  StoreUnavailable: the database is unreachable or busy, the disk is full
    405  a method the path does not serve, with ``Allow`` naming those it does

:func:`describe_errors` rewrites the generated document to say so, centrally, so that
route functions declare only their success answers.  401 and the bearer security
scheme are declared when the server runs with auth; the probes (``/health``,
``/ready``) and ``/api/v1/ui/session`` never ask for a token.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # pragma: no cover
    from fastapi import FastAPI

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "description": "Every error answer of the server: a stable `error_code`, a `message` "
                   "that says what to change, and details that depend on the error "
                   "(`error_class` names the Python exception; `limit` for 413).",
    "properties": {
        "error_code": {"type": "string", "description": "e.g. INVALID_PARAMETER_VALUE, "
                       "UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_DOES_NOT_EXIST, "
                       "RESOURCE_ALREADY_EXISTS, INVALID_STATE, REQUEST_TOO_LARGE, "
                       "TEMPORARILY_UNAVAILABLE"},
        "message": {"type": "string"},
        "error_class": {"type": "string"},
    },
    "required": ["error_code", "message"],
    "additionalProperties": True,
}

DESCRIPTIONS = {
    400: "Bad input: a parameter or body that fails validation, a bad value (never 422)",
    401: "No token, a malformed one, or one unknown, revoked or expired (servers with auth)",
    403: "The caller lacks the role this needs",
    404: "An id or name in the request names nothing (or nothing the caller may see)",
    405: "The path does not serve this method; `Allow` names those it does",
    409: "A conflict: the resource exists, a finished run is immutable, objects are missing",
    413: "The request body is larger than the server accepts (see `max_request_bytes` of "
         "GET /api/v1/info)",
    503: "The database is unavailable or busy, or the store's disk is full: try again later",
}

# Operations that answer without a token.
PUBLIC = {("get", "/health"), ("get", "/ready"), ("get", "/api/v1/ui/session")}
# Operations that only read although they are POSTs: no 409.
READ_ONLY_POSTS = {"/api/v1/runs/search", "/api/v1/objects/missing", "/api/v1/ui/runs",
                   "/api/v1/ui/compare/aggregate"}
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def error_statuses(method: str, path: str, operation: dict[str, Any], auth: bool) -> list[int]:
    """The error statuses ``method path`` can answer with, as the server behaves."""
    statuses = [400]
    public = (method, path) in PUBLIC
    if not public:
        if auth:
            statuses.append(401)
        statuses.append(403)
        if operation.get("parameters") or operation.get("requestBody"):
            statuses.append(404)
        if method != "get" and path not in READ_ONLY_POSTS:
            statuses.append(409)
    if operation.get("requestBody"):
        statuses.append(413)
    if path != "/health":  # the one answer that never reads the database
        statuses.append(503)
    return statuses


def describe_errors(schema: dict[str, Any], *, auth: bool) -> dict[str, Any]:
    """``schema`` (FastAPI's document) with the errors Cairn sends: no 422, each operation's
    error statuses with the :data:`ERROR_SCHEMA` body, bearer security when ``auth``."""
    schema = copy.deepcopy(schema)
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    if schemas.get("Error", ERROR_SCHEMA) != ERROR_SCHEMA:  # a route's own model: rename one
        raise RuntimeError("a route's model is named Error, the name of the error body")
    schemas["Error"] = ERROR_SCHEMA
    error_body = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    responses = components.setdefault("responses", {})
    for status, description in DESCRIPTIONS.items():
        responses[f"Error{status}"] = {"description": description, "content": error_body}
    responses["Error405"]["headers"] = {"Allow": {
        "description": "The methods the path serves, e.g. `GET, POST`", "required": True,
        "schema": {"type": "string"}}}
    info = schema.setdefault("info", {})
    info["description"] = (info.get("description", "") + " Every error answer has the `Error` "
                           "body; request validation errors are 400, never 422. A method a "
                           "path does not serve is answered 405 with an `Allow` header "
                           "(`#/components/responses/Error405`).").strip()
    if auth:
        components["securitySchemes"] = {"bearer": {
            "type": "http", "scheme": "bearer",
            "description": "An API token: `Authorization: Bearer <token>`"}}
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            answers = operation.setdefault("responses", {})
            answers.pop("422", None)
            for status in error_statuses(method, path, operation, auth):
                if str(status) in answers:  # the route's own (/ready's 503)
                    continue
                answers[str(status)] = {"$ref": f"#/components/responses/Error{status}"}
            if auth:
                operation["security"] = [] if (method, path) in PUBLIC else [{"bearer": []}]
    _exact_integer_bounds(schema)
    _no_nul_in_url(schema)
    _drop_unused(components.get("schemas", {}), schema)
    return schema


INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def _exact_integer_bounds(node: Any) -> None:
    """Integer bounds as integers: FastAPI's OpenAPI models hold ``maximum`` and ``minimum``
    as floats, so ``le=2**63 - 1`` (what BIGINT columns hold) was published as
    9.223372036854776e18, which admits numbers up to 2**63 + 1023 that the server refuses.
    Every integer the server takes fits in 64 bits: bounds past them are INT64's."""
    if isinstance(node, list):
        for item in node:
            _exact_integer_bounds(item)
        return
    if not isinstance(node, dict):
        return
    if node.get("type") == "integer":
        for key, clamp in (("maximum", min), ("exclusiveMaximum", min),
                           ("minimum", max), ("exclusiveMinimum", max)):
            value = node.get(key)
            if isinstance(value, float) and value.is_integer():
                bound = INT64_MAX if key.endswith("aximum") else INT64_MIN
                node[key] = clamp(int(value), bound)
    for value in node.values():
        _exact_integer_bounds(value)


NO_NUL = "^[^\u0000]*$"


def _no_nul_in_url(schema: dict[str, Any]) -> None:
    """Path and query strings without NUL: the server refuses a URL holding one (400)."""
    for item in schema.get("paths", {}).values():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            for parameter in operation.get("parameters", ()):
                if parameter.get("in") in ("path", "query"):
                    _forbid_nul(parameter.get("schema", {}))


def _forbid_nul(node: dict[str, Any]) -> None:
    for branch in node.get("anyOf", ()):
        _forbid_nul(branch)
    if node.get("type") == "string" and "pattern" not in node and "enum" not in node \
            and "const" not in node:
        node["pattern"] = NO_NUL
    if node.get("type") == "array" and isinstance(node.get("items"), dict):
        _forbid_nul(node["items"])


def _drop_unused(schemas: dict[str, Any], document: dict[str, Any]) -> None:
    """Remove FastAPI's validation error schemas once nothing refers to them."""
    import json

    for name in ("HTTPValidationError", "ValidationError"):
        if name not in schemas:
            continue
        rest = {k: v for k, v in schemas.items() if k != name}
        text = json.dumps({**document, "components": {**document["components"],
                                                       "schemas": rest}})
        if f'"#/components/schemas/{name}"' not in text:
            del schemas[name]


def install(app: "FastAPI", *, auth: bool) -> None:
    """Make ``app.openapi()`` (what ``/openapi.json`` and ``/docs`` serve) describe the
    errors as the server sends them."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = describe_errors(generate(), auth=auth)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
