"""MLflow's artifact proxy (``/api/2.0/mlflow-artifacts/artifacts/...``) over a run's artifacts.

The server hands out ``mlflow-artifacts:/<experiment>/<run>/artifacts`` as a run's
artifact URI; the client resolves it to this proxy.  An uploaded file goes into
Cairn's content-addressed object store and is logged to the run as an artifact, so
Cairn's own ``download_artifacts`` and ``cairn artifacts`` see it; logged models
(``logged_models.py``) live under their source run the same way.
"""

from __future__ import annotations

import mimetypes
import os
import tempfile
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ...cas.tree import check_path
from ...entities import FileEntry, Run
from ...errors import InvalidArgument, NotFound
from ..auth import Principal
from ..context import ServerContext, principal
from ._app import raw
from ._common import Params, artifact_uri
from .tracking import get_run, write

_TEXT_NAMES = {"MLmodel", "MLproject"}


def resolve(c: ServerContext, p: Principal, path: str, role: str = "viewer") -> tuple[Run, str]:
    """``<experiment>/<run>/artifacts[/<path>]`` -> (run, path inside its artifacts)."""
    parts = path.strip("/").split("/", 3)
    if len(parts) < 3 or parts[2] != "artifacts":
        raise NotFound(f"No artifacts at '{path}': artifact paths look like "
                       "'<experiment id>/<run id>/artifacts/<path>'")
    run = get_run(c, p, parts[1], role)
    if run.experiment_id != parts[0]:
        raise NotFound(f"Run {run.id} is not in experiment {parts[0]}")
    rel = parts[3].strip("/") if len(parts) == 4 else ""
    if rel:
        try:
            check_path(rel)
        except InvalidArgument as exc:
            raise InvalidArgument(f"Invalid artifact path '{rel}': {exc.message}") from None
    return run, rel


def listing(entries: list[FileEntry], rel: str) -> list[dict[str, Any]] | None:
    """The files and directories right under ``rel`` (paths relative to it); None when
    ``rel`` is a file or holds nothing."""
    if any(e.path == rel for e in entries):
        return None
    prefix = rel + "/" if rel else ""
    files: dict[str, dict[str, Any]] = {}
    for e in entries:
        if not e.path.startswith(prefix):
            continue
        head, sep, _ = e.path[len(prefix):].partition("/")
        if sep:
            files.setdefault(head, {"path": head, "is_dir": True})
        else:
            files[head] = {"path": head, "is_dir": False, "file_size": e.size}
    return [files[k] for k in sorted(files)] or None


def list_files(c: ServerContext, p: Principal, r: Params) -> dict:
    path = r.text("path") or ""
    if len(path.strip("/").split("/")) < 3:  # an experiment's or the root's listing
        return {}
    run, rel = resolve(c, p, path)
    files = listing(c.store.list_artifacts(run.id), rel)
    return {} if files is None else {"files": files}


def list_run_artifacts(c: ServerContext, p: Principal, r: Params) -> dict:
    """``GET /mlflow/artifacts/list?run_id=&path=``: paths relative to the run's root."""
    run = get_run(c, p, r.run_id())
    rel = (r.text("path") or "").strip("/")
    files = listing(c.store.list_artifacts(run.id), rel) or []
    prefix = rel + "/" if rel else ""
    return {"root_uri": artifact_uri(run),
            "files": [{**f, "path": prefix + f["path"]} for f in files]}


def content_type(name: str) -> str:
    if name in _TEXT_NAMES:
        return "text/plain"
    guessed, _ = mimetypes.guess_type(name)
    return guessed or "application/octet-stream"


@raw
async def download(c: ServerContext, request: Request) -> Response:
    path = request.path_params["path"]

    def find() -> tuple[FileEntry, Any]:
        p = principal(request)
        run, rel = resolve(c, p, path)
        entry = next((e for e in c.store.list_artifacts(run.id) if e.path == rel), None)
        if entry is None or not rel:
            raise NotFound(f"File {rel or path} does not exist in the artifacts of run {run.id}")
        chunks = c.objects.read_file(entry)
        return entry, (next(chunks, b""), chunks)

    entry, (first, rest) = await run_in_threadpool(find)
    name = entry.path.rsplit("/", 1)[-1]

    def body():
        yield first
        yield from rest

    return StreamingResponse(body(), media_type=content_type(name), headers={
        "content-length": str(entry.size), "x-content-type-options": "nosniff",
        "content-disposition": f'attachment; filename="{name.replace(chr(34), "")}"'})


@raw
async def upload(c: ServerContext, request: Request) -> Response:
    path = request.path_params["path"]
    p = await run_in_threadpool(principal, request)
    run, rel = await run_in_threadpool(resolve, c, p, path, "editor")
    if not rel:
        raise InvalidArgument("An upload needs a file path under the run's artifacts")
    fd, tmp = tempfile.mkstemp(prefix="cairn-mlflow-upload-")
    try:
        with os.fdopen(fd, "wb") as f:
            async for chunk in request.stream():
                f.write(chunk)

        def store() -> None:
            entry = c.objects.put_file(tmp, rel)
            write(c, p, run_id=run.id, artifacts=(entry,))
            c.audit(p, "run.log_artifacts", f"runs/{run.id}", None,
                    {"files": [rel], "count": 1, "via": "mlflow"})

        await run_in_threadpool(store)
    finally:
        os.unlink(tmp)
    return Response(status_code=200)


@raw
async def delete(c: ServerContext, request: Request) -> Response:
    raise InvalidArgument("Deleting artifacts is not supported: a run's artifacts are "
                          "immutable in Cairn")


ROUTES = [
    ("GET", "/artifacts", list_files),
    ("GET", "/artifacts/{path:path}", download),
    ("PUT", "/artifacts/{path:path}", upload),
    ("DELETE", "/artifacts/{path:path}", delete),
]
API_ROUTES = [("GET", "/artifacts/list", list_run_artifacts)]
