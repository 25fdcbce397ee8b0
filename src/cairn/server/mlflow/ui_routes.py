"""Routes ``mlflow server`` serves for its web UI outside the REST API's protos.

``GET /get-artifact`` (at the root), and under ``/ajax-api/2.0/mlflow`` only (MLflow
serves none of these under ``/api/2.0/mlflow``): ``upload-artifact``, a logged model's
file, ``metrics/get-history-bulk`` and ``experiments/search-datasets``.  Each answers as
mlflow server 3.17.2 does, its checks in the same order and with the same messages;
tests/mlflow_compat/test_drop_in_artifacts.py holds what it answered.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ...errors import InvalidArgument, NotFound
from ...search.parser import Clause, format_filter
from ..auth import Principal
from ..context import ServerContext, principal
from ..download_audit import file_downloaded
from . import artifact_area, logged_models
from ._app import _params, raw
from ._common import INPUTS_TAG, MlflowError, Params, invalid, metric_json
from .artifacts import check_safe, file_response, find_file, store_in_run
from .tracking import get_run

MAX_UPLOAD = 10 * 1024 * 1024  # upload-artifact's limit on mlflow server
MAX_HISTORY_RESULTS, MAX_HISTORY_RUNS = 25000, 100
MAX_DATASET_EXPERIMENTS, MAX_DATASET_SUMMARIES = 20, 1000
CONTEXT_TAG = "mlflow.data.context"
NO_CACHE = {"cache-control": "no-cache"}  # Flask's send_file, which these routes use there
# Flask's page for a request it cannot parse (``request.args["path"]`` without a path).
BAD_REQUEST_PAGE = ("<!doctype html>\n<html lang=en>\n<title>400 Bad Request</title>\n"
                    "<h1>Bad Request</h1>\n<p>The browser (or proxy) sent a request that this "
                    "server could not understand.</p>\n")


def get_artifact(c: ServerContext, p: Principal, r: Params) -> Any:
    """``GET /get-artifact?path=&run_uuid=`` (or ``run_id``): one file of a run."""
    if not r.has("path"):
        return Response(BAD_REQUEST_PAGE, 400, media_type="text/html")
    path = check_safe(r.text("path") or "")
    run_id = r.text("run_id") or r.text("run_uuid")
    if not run_id:
        raise NotFound("Run with id=None not found")
    run = get_run(c, p, run_id)
    shown = f"{run.experiment_id}/{run.id}/artifacts/{path}"
    entry, (first, rest) = find_file(c, c.store.list_artifacts(run.id), artifact_area.clean(path), shown)
    file_downloaded(c, p, f"runs/{run.id}", entry)
    return file_response(entry, first, rest, **NO_CACHE)


def logged_model_file(c: ServerContext, p: Principal, r: Params) -> Any:
    """``GET /logged-models/<id>/artifacts/files?artifact_file_path=``: one file of a logged
    model (a directory of its source run's artifacts in Cairn)."""
    file = r.text("artifact_file_path")
    if not file:
        raise MlflowError("BAD_REQUEST", 400,
                          'Request must include the "artifact_file_path" query parameter.')
    check_safe(file)
    run, desc = logged_models.get_model(c, p, r.text("model_id", required=True) or "")
    root = desc["path"]
    rel = artifact_area.clean(f"{root}/{file}")
    shown = f"{run.experiment_id}/{run.id}/artifacts/{root}/{file}"
    entry, (first, rest) = find_file(c, c.store.list_artifacts(run.id), rel, shown)
    file_downloaded(c, p, f"runs/{run.id}", entry)
    return file_response(entry, first, rest, **NO_CACHE)


async def _body(request: Request) -> bytes:
    """The request's bytes, as Flask's ``request.data`` has them: none for a form, and
    read no further than the upload limit."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return b""
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_UPLOAD:
            break
    return bytes(data)


def _too_large() -> InvalidArgument:
    return invalid("Artifact size is too large. Max size is 10MB.")


@raw
async def upload_artifact(c: ServerContext, request: Request) -> Response:
    """``POST /ajax-api/2.0/mlflow/upload-artifact?run_uuid=&path=``: the body is the file
    (the UI's upload; at most 10 MB, as on mlflow server)."""
    p = await run_in_threadpool(principal, request)
    args = request.query_params
    run_id = args.get("run_uuid")
    if not run_id:
        raise invalid("Request must specify run_uuid.")
    path = args.get("path")
    if not path:
        raise invalid("Request must specify path.")
    check_safe(path)
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_UPLOAD:
        raise _too_large()
    data = await _body(request)
    if not data:
        raise invalid("Request must specify data.")
    if len(data) > MAX_UPLOAD:
        raise _too_large()
    run = await run_in_threadpool(get_run, c, p, run_id)
    rel = artifact_area.clean(path)
    fd, tmp = tempfile.mkstemp(prefix="cairn-mlflow-upload-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        await run_in_threadpool(store_in_run, c, p, tmp, run, rel)
    finally:
        os.unlink(tmp)
    return Response(b"", media_type="application/json")


def get_history_bulk(c: ServerContext, p: Principal, r: Params) -> dict:
    """``GET /ajax-api/2.0/mlflow/metrics/get-history-bulk?run_id=…&metric_key=``: every
    point of one metric of up to 100 runs, by run id then (timestamp, step, value).  A run
    that does not exist has no points (no error, as on mlflow server)."""
    run_ids = r.texts("run_id")
    if not run_ids:
        raise invalid("GetMetricHistoryBulk request must specify at least one run_id.")
    if len(run_ids) > MAX_HISTORY_RUNS:
        raise invalid(f"GetMetricHistoryBulk request cannot specify more than "
                      f"{MAX_HISTORY_RUNS} run_ids. Received {len(run_ids)} run_ids.")
    key = r.text("metric_key")
    if key is None:
        raise invalid("GetMetricHistoryBulk request must specify a metric_key.")
    limit = min(r.integer("max_results", MAX_HISTORY_RESULTS) or 0, MAX_HISTORY_RESULTS)
    out: list[dict[str, Any]] = []
    for run_id in sorted(set(run_ids)):
        if 0 <= limit <= len(out):
            break
        try:
            run = get_run(c, p, run_id)
        except NotFound:
            continue
        h = c.store.get_metric_history(run.id, key)
        points = sorted(zip(h.timestamps.tolist(), h.steps.tolist(), h.values.tolist()))
        out += [{**metric_json(key, v, s, t), "run_id": run.id} for t, s, v in points]
    # mlflow server's SQL LIMIT, then its slice: a negative max_results (no LIMIT on
    # SQLite) drops that many points from the end.
    return {"metrics": out[:limit]}


def _summaries(run: Any) -> list[dict[str, Any]]:
    inputs = json.loads(run.tags.get(INPUTS_TAG) or "{}")
    out = []
    for item in inputs.get("dataset_inputs", []):
        ds = item.get("dataset") or {}
        summary = {"experiment_id": run.experiment_id, "name": ds.get("name", ""),
                   "digest": ds.get("digest", "")}
        context = next((t.get("value") for t in item.get("tags") or []
                        if t.get("key") == CONTEXT_TAG), None)
        if context is not None:
            summary["context"] = context
        out.append(summary)
    return out


def _experiment_ids(data: Any) -> list[str]:
    ids = data.get("experiment_ids") if isinstance(data, dict) else None
    if not isinstance(ids, list) or not ids:
        raise invalid("SearchDatasets request must specify at least one experiment_id.")
    if len(ids) > MAX_DATASET_EXPERIMENTS:
        raise invalid(f"SearchDatasets request cannot specify more than "
                      f"{MAX_DATASET_EXPERIMENTS} experiment_ids. Received {len(ids)} "
                      "experiment_ids.")
    return Params({"experiment_ids": ids}).texts("experiment_ids")


def _readable(c: ServerContext, p: Principal, ids: list[str]) -> list[str]:
    """The experiments that exist among ``ids`` (the caller must view each)."""
    out = []
    for i in dict.fromkeys(ids):
        try:  # the store's, not tracking's: that makes Default on first use
            exp = c.store.get_experiment(i)
        except (NotFound, InvalidArgument):
            continue
        c.guard.need(p, "experiment", exp.id)
        out.append(exp.id)
    return out


def search_datasets(c: ServerContext, p: Principal, ids: list[str]) -> dict:
    """The distinct (experiment, name, digest, context) of the data sets the runs of the
    experiments logged (at most 1000)."""
    ids = _readable(c, p, ids)
    flt = format_filter((Clause("tags", INPUTS_TAG, "IS NOT NULL", None),))
    runs, token = [], None
    while ids:
        page, token = c.store.search_runs(ids, flt, (), 1000, token)
        runs += page
        if token is None:
            break
    seen: dict[str, dict[str, Any]] = {}
    for run in sorted(runs, key=lambda r: (r.start_time, r.id)):
        for s in _summaries(run):
            seen.setdefault(json.dumps(s, sort_keys=True), s)
    found = list(seen.values())[:MAX_DATASET_SUMMARIES]
    return {"dataset_summaries": found} if found else {}


def _content_type_error(request: Request) -> InvalidArgument | None:
    """MLflow's ``_validate_content_type(request, ["application/json"])``."""
    kind = request.headers.get("content-type")
    if kind is None:
        return invalid("Bad Request. Content-Type header is missing.")
    if kind.split(";")[0] != "application/json":
        return invalid("Bad Request. Content-Type must be one of ['application/json'].")
    return None


@raw
async def search_datasets_route(c: ServerContext, request: Request) -> Response:
    """``POST /ajax-api/2.0/mlflow/experiments/search-datasets``."""
    from ._app import json_response

    p = await run_in_threadpool(principal, request)
    params = await _params(request)
    err = _content_type_error(request)
    if err is not None:
        raise err
    ids = _experiment_ids(params.data)
    return json_response(await run_in_threadpool(search_datasets, c, p, ids))


ROOT_ROUTES = [("GET", "/get-artifact", get_artifact)]
AJAX_ROUTES = [
    ("POST", "/upload-artifact", upload_artifact),
    ("GET", "/logged-models/{model_id}/artifacts/files", logged_model_file),
    ("GET", "/metrics/get-history-bulk", get_history_bulk),
    ("POST", "/experiments/search-datasets", search_datasets_route),
]
