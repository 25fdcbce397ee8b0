"""The check every JSON request body passes before a route sees it.

FastAPI parses the bodies of the app's routes itself (``json.loads``, which accepts a lone
surrogate such as ``"\\ud800"`` and nesting as deep as the interpreter's recursion allows);
what it lets through would reach a store that cannot keep it and fail there as a 500.  This
middleware answers those bodies with a 400 at the door, once for every route (the native
API, the MLflow routes under ``/api/2.0/mlflow`` and ``/ajax-api``, the UI's): a body that
is not UTF-8, that nests deeper than :data:`~cairn.store.validation.MAX_JSON_DEPTH` levels
or that holds a lone surrogate.  Malformed JSON is left to the route (which answers 400).

Only JSON bodies are read here (a JSON content type, or none and a body that starts like
JSON); uploads stream past untouched.  Judging from the bytes first (``json_needs_walk``),
most bodies are not parsed twice.  The routes served before the app (``FastRoutes``: record
ingestion, the plain MLflow routes) parse with :func:`cairn.store.wire.parse_json`, which
makes the same checks.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import InvalidArgument
from ..store.validation import MAX_JSON_DEPTH, check_json
from ..store.wire import json_needs_walk


def body_problem(body: bytes) -> str | None:
    """Why a JSON body must be refused (None: it may go on to its route)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"the request body is not valid UTF-8 (byte {exc.start})"
    if not json_needs_walk(body):
        return None
    try:
        doc = json.loads(text)
    except RecursionError:
        return f"the request body is nested more than {MAX_JSON_DEPTH} levels deep"
    except ValueError:
        return None  # not JSON: the route says so, as it always has
    try:
        check_json(doc, "the request body")
    except InvalidArgument as exc:
        return exc.message
    return None


def _json_type(headers: Any) -> bool | None:
    """True: a JSON content type; None: no content type; False: anything else."""
    for name, value in headers:
        if name == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            return media == b"application/json" or (media.startswith(b"application/")
                                                    and media.endswith(b"+json"))
    return None


class JsonBodyCheck:
    """ASGI middleware: 400 for JSON bodies no route could use (see the module's doc)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        kind = _json_type(scope.get("headers", ()))
        if kind is False:
            return await self.app(scope, receive, send)
        try:
            first = await receive()
        except Exception:  # past the body limit already: the app meets it as it always has
            return await self.app(scope, receive, send)
        if first["type"] != "http.request":
            return await self.app(scope, _replay([first], receive), send)
        head = first.get("body", b"")
        if kind is None and head.lstrip()[:1] not in (b"{", b"[", b""):
            return await self.app(scope, _replay([first], receive), send)
        chunks, message = [head], first
        while message.get("more_body", False):
            try:
                message = await receive()
            except Exception:
                # Past the body limit (BodyTooLarge), or the like: the app meets the same
                # error reading the body, after what was read, and answers as it always has.
                read = [{"type": "http.request", "body": c, "more_body": True} for c in chunks]
                return await self.app(scope, _replay(read, receive), send)
            if message["type"] != "http.request":  # the client went away
                return await self.app(scope, _replay([message], receive), send)
            chunks.append(message.get("body", b""))
        body = b"".join(chunks)
        problem = body_problem(body) if body.strip() else None
        if problem is not None:
            from .app import _error

            return await _error(400, "INVALID_PARAMETER_VALUE", problem)(scope, receive, send)
        whole = {"type": "http.request", "body": body, "more_body": False}
        return await self.app(scope, _replay([whole], receive), send)


def _replay(messages: list[dict], receive: Any) -> Any:
    """A ``receive`` that gives ``messages`` first, then what ``receive`` gives."""
    pending = list(messages)

    async def replayed() -> dict:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
