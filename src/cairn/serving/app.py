"""The scoring server as a plain ASGI app: MLflow's protocol plus Cairn's ``/v1/predict``.

Routes::

    GET  /ping, /health   200 with "\\n" once a model is loaded (as ``mlflow models serve``)
    GET  /ready           the same, for Cairn's test and deployment tooling
    GET  /version         the Cairn version serving (MLflow answers with its own version)
    POST /invocations     {"predictions": [...]}
    POST /v1/predict      {"predictions": [...], "request_id": "...", "model_version": "...",
                           "arm": "..."}
    GET  /v1/status       the model, each arm's version, share and counts
    POST /v1/feedback     labels by request id (also POST /feedback): {"accepted": n,
                          "rejected": [{"index": i, "error": "..."}]}, when the app has
                          a ``feedback`` log (:mod:`.feedback_log`)
    GET  /metrics         Prometheus metrics, when the deployment has them

Every answer carries ``Cairn-Model-Version``, ``Cairn-Serving-Arm`` and ``Cairn-Request-Id``
headers (a request id sent by the caller in ``Cairn-Request-Id`` is kept when it is a plain
token of at most 128 characters).  The router picks the arm (primary, canary share, or the
standby when asked for); a request reads that arm's
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
import os
import re
import time
import uuid
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Awaitable, Callable, Sequence

from ..errors import InvalidArgument
from .errors import RequestError
from .events import PRIMARY, Scored
from .holder import ModelHolder, Served
from .routing import Arm, Router
from .inputs import content_type, parse
from .validate import conform

log = logging.getLogger("cairn.serving")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

DEFAULT_MAX_BODY = 32 * 1024 * 1024
# A batched answer of more rows than this is JSON-encoded in a worker thread, not on the loop.
_INLINE_ROWS = 1000
# With micro-batching, a body this small is parsed and checked on the event loop: a few
# hundred microseconds, less than handing it to a thread and back.
_INLINE_BODY = 4096
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
    """``ScoringApp(holder_or_router)``: an ASGI callable serving the router's arms.

    ``observers`` see every answered scoring request (:mod:`~cairn.serving.events`);
    ``metrics`` (with ``render(accept) -> (body, content_type)``) answers ``GET /metrics``;
    ``batcher`` (with ``async predict(served, inputs)``) gathers concurrent requests into
    one ``predict``; ``on_startup``/``on_shutdown`` run at the ASGI lifespan's start and
    end (the followers start, the prediction log flushes)."""

    def __init__(self, holder: ModelHolder | Router, *, max_body: int = DEFAULT_MAX_BODY,
                 allow_nan: bool = False, observers: Sequence[Any] = (),
                 metrics: Any = None, batcher: Any = None,
                 on_startup: Callable[[], None] | None = None,
                 on_shutdown: Callable[[], None] | None = None,
                 threads: int | None = None, feedback: Any = None) -> None:
        self.router = holder if isinstance(holder, Router) else \
            Router(Arm(PRIMARY, "", holder))
        self.holder = self.router.primary.holder
        self.max_body = max_body
        self.allow_nan = allow_nan
        self.observers = list(observers)
        self.metrics = metrics
        self.batcher = batcher
        self.on_startup = on_startup
        self.on_shutdown = on_shutdown
        self.threads = threads
        self.feedback = feedback
        self.version = _cairn_version()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            if self.threads:
                # Parsing, checks and predict run in this many threads.  A model that holds
                # the GIL (most of scikit-learn's) gains nothing from more, and a handful
                # of threads taking turns at it cost each other a third of the throughput.
                from concurrent.futures import ThreadPoolExecutor

                asyncio.get_running_loop().set_default_executor(
                    ThreadPoolExecutor(self.threads, thread_name_prefix="cairn-serve"))
            await _lifespan(receive, send, self.on_startup, self.on_shutdown, self.batcher)
            return
        if scope["type"] != "http":
            return
        arrived, clock = time.time(), time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        arm = self.router.pick(headers.get("cairn-arm"), headers.get("cairn-routing-key"))
        served = arm.holder.current  # this request's version, whatever happens next
        given = headers.get("cairn-request-id", "")
        request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        extra = [(b"cairn-model-version", served.label.encode()),
                 (b"cairn-serving-arm", arm.name.encode()),
                 (b"cairn-request-id", request_id.encode("latin-1"))]
        method, path = scope["method"], scope["path"]
        if path in ("/invocations", "/v1/predict"):
            if method != "POST":
                await _error(send, RequestError(f"{path} takes POST", 405,
                                                "METHOD_NOT_ALLOWED"), extra)
                return
            meta = {"request_id": request_id, "model_version": served.label,
                    "arm": arm.name} if path == "/v1/predict" else {}
            inputs = raw = None
            try:
                body = await self._body(receive, headers)
                ctype = headers.get("content-type")
                if self.batcher is None:
                    inputs, raw, answer = await asyncio.to_thread(
                        self._score, served, body, ctype, request_id, meta)
                else:
                    if len(body) <= _INLINE_BODY:  # cheaper here than a thread hop
                        inputs = self._prepare(served, body, ctype)
                    else:
                        inputs = await asyncio.to_thread(self._prepare, served, body, ctype)
                    try:
                        raw = await self.batcher.predict(served, inputs, _batch_key(served))
                    except Exception as exc:  # noqa: BLE001 (mapped as _score maps it)
                        raise _model_error(exc, served, request_id) from None
                    if _rows(inputs) > _INLINE_ROWS:  # a large answer: off the event loop
                        answer = await asyncio.to_thread(_encode, raw, meta, served,
                                                         request_id)
                    else:
                        answer = _encode(raw, meta, served, request_id)
            except RequestError as exc:
                await _error(send, exc, extra)
                self._done(arm, served, path, request_id, exc.status, exc.code, arrived,
                           clock, inputs, None)
                return
            except Exception:  # noqa: BLE001 (a bug here: still one clear 500)
                # The exception's text can name paths and internals: the log has it, keyed
                # by the request id, and the caller gets the id to quote.
                log.exception("request %s failed", request_id)
                await _error(send, RequestError(f"the server failed on request {request_id}; "
                                                "the server's log has the detail", 500,
                                                "INTERNAL_ERROR", request_id=request_id),
                             extra)
                self._done(arm, served, path, request_id, 500, "INTERNAL_ERROR", arrived,
                           clock, inputs, None)
                return
            await _send(send, 200, answer, "application/json", extra)
            self._done(arm, served, path, request_id, 200, None, arrived, clock, inputs, raw)
        elif path in ("/v1/feedback", "/feedback"):
            await self._feedback(method, path, receive, send, headers, served, extra)
        elif method not in ("GET", "HEAD"):
            await _error(send, RequestError(f"no route {method} {path}; POST /invocations or "
                                            "/v1/predict", 404, "ENDPOINT_NOT_FOUND"), extra)
        elif path in ("/ping", "/health", "/ready"):
            await _send(send, 200, b"\n", "application/json", extra)
        elif path == "/version":
            await _send(send, 200, self.version.encode(), "application/json", extra)
        elif path == "/metrics" and self.metrics is not None:
            # Multiprocess mode reads every worker's files: not on the event loop.
            text, media = await asyncio.to_thread(self.metrics.render, headers.get("accept"))
            await _send(send, 200, text, media, extra)
        elif path == "/v1/status":
            await _send(send, 200, json.dumps(self.status()).encode(), "application/json",
                        extra)
        else:
            await _error(send, RequestError(f"no route {method} {path}; POST /invocations or "
                                            "/v1/predict", 404, "ENDPOINT_NOT_FOUND"), extra)

    async def _feedback(self, method: str, path: str, receive: Receive, send: Send,
                        headers: dict[str, str], served: Served,
                        extra: list[tuple[bytes, bytes]]) -> None:
        """Labels by request id for the served model: checked in a worker thread, handed
        to the feedback log's writer (never stored on the event loop)."""
        from .feedback_log import parse

        try:
            if method != "POST":
                raise RequestError(f"{path} takes POST", 405, "METHOD_NOT_ALLOWED")
            if self.feedback is None:
                raise RequestError("this server keeps no feedback", 404, "ENDPOINT_NOT_FOUND")
            body = await self._body(receive, headers)
            try:
                labels, rejected = await asyncio.to_thread(parse, body)
            except InvalidArgument as exc:
                raise RequestError(exc.message, 400) from None
            if not labels:
                raise RequestError("no valid feedback record", 400, accepted=0,
                                   rejected=rejected)
            taken = self.feedback.put(served.version.name, [lab for _, lab in labels])
            rejected += [{"index": i, "error": "the server's feedback queue is full; send "
                          "it again later"} for i, _ in labels[taken:]]
        except RequestError as exc:
            await _error(send, exc, extra)
            return
        answer = {"accepted": taken, "rejected": sorted(rejected, key=lambda r: r["index"])}
        await _send(send, 200, json.dumps(answer).encode(), "application/json", extra)

    def status(self) -> dict[str, Any]:
        """What ``GET /v1/status`` answers: the model, each arm's version, share and counts."""
        primary = self.router.primary.holder.current.version
        # Per worker process: with --workers, /metrics sums them all, this does not.
        out: dict[str, Any] = {"model": primary.name, "worker": os.getpid(),
                               "arms": self.router.status()}
        # The batcher and any observer with a ``status_name`` and ``stats()`` (the
        # prediction log) report under that name.
        for part in (self.batcher, *self.observers, self.feedback):
            name, stats = getattr(part, "status_name", None), getattr(part, "stats", None)
            if name and callable(stats):
                out[name] = stats()
        return out

    def _done(self, arm: Arm, served: Served, route: str, request_id: str, status: int,
              code: str | None, arrived: float, clock: float, inputs: Any, raw: Any) -> None:
        """Count the answer on its arm and hand it to the observers (never failing it:
        the answer is already sent)."""
        try:
            self._count(arm, served, route, request_id, status, code, arrived, clock, inputs,
                        raw)
        except Exception:  # noqa: BLE001 (bookkeeping must not raise after the answer)
            log.exception("counting request %s failed", request_id)

    def _count(self, arm: Arm, served: Served, route: str, request_id: str, status: int,
               code: str | None, arrived: float, clock: float, inputs: Any, raw: Any) -> None:
        latency = time.perf_counter() - clock
        stats = arm.stats
        stats.requests += 1
        stats.latency_s += latency
        if status >= 500:
            stats.errors += 1
        elif status >= 400:
            stats.rejected += 1
        rows = _rows(inputs) if status == 200 else 0
        stats.rows += rows
        if not self.observers:
            return
        event = Scored(request_id, served.version.name, served.label, arm.name, route, status,
                       code, arrived, latency, rows, inputs, raw)
        for observer in self.observers:
            try:
                observer.scored(event)
            except Exception:  # noqa: BLE001 (an observer never fails a request)
                log.exception("observer %s failed on request %s", type(observer).__name__,
                              request_id)

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

    def _prepare(self, served: Served, body: bytes, ctype: str | None) -> Any:
        """The body parsed and fitted to the version's signature (in a worker thread)."""
        return conform(parse(body, content_type(ctype)), served.version.signature,
                       allow_nan=self.allow_nan)

    def _score(self, served: Served, body: bytes, ctype: str | None, request_id: str,
               meta: dict[str, str]) -> tuple[Any, Any, bytes]:
        """Inputs, predictions and the answer's JSON: parse, fit to the signature, predict,
        encode (in a worker thread)."""
        inputs = self._prepare(served, body, ctype)
        try:
            raw = served.predict(inputs)
        except Exception as exc:  # noqa: BLE001 (the model's fault: 500 for this request)
            raise _model_error(exc, served, request_id) from None
        return inputs, raw, _encode(raw, meta, served, request_id)


def _model_error(exc: Exception, served: Served, request_id: str) -> RequestError:
    """What a caller is told when ``predict`` raised: 400 when an MLflow model refused the
    input's schema, else a 500 naming only the request (the log has the exception)."""
    if isinstance(exc, RequestError):
        return exc
    if getattr(exc, "error_code", None) in _INPUT_ERRORS:  # an MLflow model's schema
        return RequestError(f"the model {served.version.uri} refused the input: "
                            f"{getattr(exc, 'message', exc)}", 400)
    # The model's exception text can hold paths and internals: log it with the request id,
    # and answer only the id.
    log.error("request %s: the model %s raised inside predict", request_id, served.version.uri,
              exc_info=(type(exc), exc, exc.__traceback__))
    return RequestError(f"the model {served.version.uri} failed inside predict on request "
                        f"{request_id}; the server's log has the detail", 500,
                        "INTERNAL_ERROR", request_id=request_id)


def _encode(raw: Any, meta: dict[str, str], served: Served, request_id: str) -> bytes:
    try:
        return json.dumps({"predictions": jsonable(raw), **meta}).encode()
    except (TypeError, ValueError):
        log.exception("request %s: the predictions of %s cannot be written as JSON",
                      request_id, served.version.uri)
        raise RequestError(f"the predictions of {served.version.uri} cannot be written as "
                           f"JSON (request {request_id}; the server's log has the "
                           "detail)", 500, "INTERNAL_ERROR", request_id=request_id) from None


def _batch_key(served: Served) -> str | None:
    """Inputs fitted to a data frame signature all have its columns and dtypes: one shape."""
    schema = (served.version.signature or {}).get("inputs") or {}
    return "signature" if schema.get("type") == "dataframe" else None


def _rows(inputs: Any) -> int:
    """Rows in a request's inputs: the first axis of a frame, array or list, or of a dict's
    first value; a scalar (or 0-d array) is one row."""
    if inputs is None:
        return 0
    if isinstance(inputs, dict):
        inputs = next(iter(inputs.values()), None)
        if inputs is None:
            return 0
    shape = getattr(inputs, "shape", None)
    if shape is not None:
        return int(shape[0]) if len(shape) else 1
    try:
        return len(inputs)
    except TypeError:
        return 1


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


async def _lifespan(receive: Receive, send: Send, on_startup: Callable[[], None] | None,
                    on_shutdown: Callable[[], None] | None, batcher: Any = None) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                if on_startup is not None:
                    await asyncio.to_thread(on_startup)
            except Exception as exc:  # noqa: BLE001 (uvicorn reports it and exits)
                log.exception("the server could not start")
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            try:
                closing = getattr(batcher, "close", None)
                if closing is not None and asyncio.iscoroutinefunction(closing):
                    await closing()  # the batches waiting are sent and answered first
                if on_shutdown is not None:  # flushes the prediction log: wait for it
                    await asyncio.to_thread(on_shutdown)
            finally:
                await send({"type": "lifespan.shutdown.complete"})
            return
