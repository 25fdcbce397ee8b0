"""The scoring server as a plain ASGI app: MLflow's protocol plus Cairn's ``/v1/predict``.

Routes::

    GET  /ping, /health   200 with "\\n" once a model is loaded (as ``mlflow models serve``)
    GET  /ready           the same, for Cairn's test and deployment tooling
    GET  /version         the Cairn version serving (MLflow answers with its own version)
    POST /invocations     {"predictions": [...]}
    POST /v1/predict      {"predictions": [...], "request_id": "...", "model_version": "..."}

Every answer carries ``Cairn-Model-Version`` and ``Cairn-Request-Id`` headers (a request
id sent by the caller in ``Cairn-Request-Id`` is kept when it is a plain token of at most
128 characters).  A request reads
``holder.current`` once, so a version switch never changes the model under it; parsing,
validation and ``predict`` run in a worker thread, so a slow model does not stall the
event loop.  Errors are ``{"error_code": ..., "message": ...}``: 400 for input that does
not fit, 413 for a body over ``max_body`` bytes, 415 for a content type other than JSON or
CSV, 500 when the model itself raises (for that request only).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Awaitable, Callable

from .errors import RequestError
from .holder import ModelHolder, Served
from .inputs import content_type, parse
from .validate import conform

log = logging.getLogger("cairn.serving")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

DEFAULT_MAX_BODY = 32 * 1024 * 1024
# A caller's own request id is kept when it is a plain token; anything else gets a fresh one.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/@-]{1,128}")
# What an MLflow pyfunc raises when the input does not fit its schema: the caller's fault.
_INPUT_ERRORS = ("BAD_REQUEST", "INVALID_PARAMETER_VALUE")


def _cairn_version() -> str:
    try:
        return version("cairn")
    except PackageNotFoundError:  # pragma: no cover (a source checkout without metadata)
        return "unknown"


class ScoringApp:
    """``ScoringApp(holder)``: an ASGI callable serving ``holder.current``."""

    def __init__(self, holder: ModelHolder, *, max_body: int = DEFAULT_MAX_BODY,
                 allow_nan: bool = False) -> None:
        self.holder = holder
        self.max_body = max_body
        self.allow_nan = allow_nan
        self.version = _cairn_version()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        served = self.holder.current  # this request's version, whatever happens next
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        given = headers.get("cairn-request-id", "")
        request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        extra = [(b"cairn-model-version", served.label.encode()),
                 (b"cairn-request-id", request_id.encode("latin-1"))]
        method, path = scope["method"], scope["path"]
        if path in ("/ping", "/health", "/ready") and method in ("GET", "HEAD"):
            await _send(send, 200, b"\n", "application/json", extra)
        elif path == "/version" and method in ("GET", "HEAD"):
            await _send(send, 200, self.version.encode(), "application/json", extra)
        elif path in ("/invocations", "/v1/predict"):
            if method != "POST":
                await _error(send, RequestError(f"{path} takes POST", 405,
                                                "METHOD_NOT_ALLOWED"), extra)
                return
            meta = {"request_id": request_id, "model_version": served.label} \
                if path == "/v1/predict" else {}
            try:
                body = await self._body(receive, headers)
                answer = await asyncio.to_thread(self._score, served, body,
                                                 headers.get("content-type"), request_id, meta)
            except RequestError as exc:
                await _error(send, exc, extra)
                return
            except Exception:  # noqa: BLE001 (a bug here: still one clear 500)
                # The exception's text can name paths and internals: the log has it, keyed
                # by the request id, and the caller gets the id to quote.
                log.exception("request %s failed", request_id)
                await _error(send, RequestError(f"the server failed on request {request_id}; "
                                                "the server's log has the detail", 500,
                                                "INTERNAL_ERROR", request_id=request_id),
                             extra)
                return
            await _send(send, 200, answer, "application/json", extra)
        else:
            await _error(send, RequestError(f"no route {method} {path}; POST /invocations or "
                                            "/v1/predict", 404, "ENDPOINT_NOT_FOUND"), extra)

    async def _body(self, receive: Receive, headers: dict[str, str]) -> bytes:
        limit = self.max_body
        declared = headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise _too_large(int(declared), limit)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise RequestError("the client went away", 400)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _too_large(size, limit)
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    def _score(self, served: Served, body: bytes, ctype: str | None, request_id: str,
               meta: dict[str, str]) -> bytes:
        """The answer's JSON: parse, fit to the signature, predict, encode (in a worker thread)."""
        mime = content_type(ctype)
        parsed = parse(body, mime)
        inputs = conform(parsed, served.version.signature, allow_nan=self.allow_nan)
        try:
            raw = served.predict(inputs)
        except Exception as exc:  # noqa: BLE001 (the model's fault: 500 for this request)
            if getattr(exc, "error_code", None) in _INPUT_ERRORS:  # an MLflow model's schema
                raise RequestError(f"the model {served.version.uri} refused the input: "
                                   f"{getattr(exc, 'message', exc)}", 400) from None
            # The model's exception text can hold paths and internals: log it with the
            # request id, and answer only the id.
            log.exception("request %s: the model %s raised inside predict", request_id,
                          served.version.uri)
            raise RequestError(f"the model {served.version.uri} failed inside predict on "
                               f"request {request_id}; the server's log has the detail", 500,
                               "INTERNAL_ERROR", request_id=request_id) from None
        try:
            return json.dumps({"predictions": jsonable(raw), **meta}).encode()
        except (TypeError, ValueError):
            log.exception("request %s: the predictions of %s cannot be written as JSON",
                          request_id, served.version.uri)
            raise RequestError(f"the predictions of {served.version.uri} cannot be written as "
                               f"JSON (request {request_id}; the server's log has the "
                               "detail)", 500, "INTERNAL_ERROR",
                               request_id=request_id) from None


def jsonable(value: Any) -> Any:
    """Predictions as JSON values: arrays as lists, data frames as records (as MLflow does)."""
    import sys

    import numpy as np

    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(value, pd.Series):
        # As MLflow's predictions_to_json: a Series is a one-column frame, written as records
        # ([{"name": v}, ...]; an unnamed Series is column "0").
        value = value.to_frame()
    if pd is not None and isinstance(value, pd.DataFrame):
        return [{str(k): _scalar(v) for k, v in row.items()} for row in value.to_dict("records")]
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "mM":  # datetime64 as ISO strings, as MLflow writes them
            text = value.astype(str).astype(object)
            text[np.isnat(value)] = None  # NaT is null, as MLflow writes it
            return text.tolist()
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return _scalar(value)


def _scalar(value: Any) -> Any:
    import datetime

    if isinstance(value, (datetime.date, datetime.time)):  # Timestamp too: ISO 8601, as MLflow
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return str(value)
    if type(value).__name__ in ("NaTType", "datetime64", "timedelta64"):
        return None if str(value) in ("NaT", "NaT NaT") else str(value)
    item = getattr(value, "item", None)
    return item() if callable(item) and not isinstance(value, (list, dict)) else value


def _too_large(size: int, limit: int) -> RequestError:
    return RequestError(f"the body is {size} bytes or more, over this server's limit of "
                        f"{limit} (--max-body)", 413, "RESOURCE_LIMIT_EXCEEDED", limit=limit)


async def _send(send: Send, status: int, body: bytes, media: str,
                extra: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", media.encode()),
                            (b"content-length", str(len(body)).encode()), *extra]})
    await send({"type": "http.response.body", "body": body})


async def _error(send: Send, exc: RequestError, extra: list[tuple[bytes, bytes]]) -> None:
    await _send(send, exc.status, json.dumps(exc.body(), default=str).encode(),
                "application/json", extra)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
