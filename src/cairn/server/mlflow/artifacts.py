"""MLflow's artifact proxy (``/api/2.0/mlflow-artifacts/artifacts/...``) over a run's artifacts.

The server hands out ``mlflow-artifacts:/<experiment>/<run>/artifacts`` as a run's
artifact URI; the client resolves it to this proxy.  An uploaded file goes into
Cairn's content-addressed object store and is logged to the run as an artifact, so
Cairn's own ``download_artifacts`` and ``cairn artifacts`` see it; logged models
(``logged_models.py``) live under their source run the same way.  A path that is no
run's artifacts is stored as ``mlflow server`` stores it, in the server's free area
(:mod:`.artifact_area`).  Downloads carry ``mlflow server``'s headers: its MIME types
(text files as ``text/plain``, never rendered as HTML by a browser), an attachment
disposition and ``nosniff``.
"""

from __future__ import annotations

import mimetypes
import os
import posixpath
import tempfile
import unicodedata
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any, Iterator
from urllib.parse import quote, unquote, urlparse

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ...cas.tree import check_path
from ...entities import FileEntry, Run
from ...errors import InvalidArgument, NotFound
from ..auth import Principal
from ..context import ServerContext, principal
from ..download_audit import file_downloaded, mlflow_target
from . import artifact_area
from ._app import json_response, raw
from ._common import Params, artifact_uri
from .tracking import get_run, write

# mlflow.utils.mime_type_utils.get_text_extensions(): sent as text/plain whatever the
# mimetypes module says (an .html page is not among them: it goes as text/html, an
# attachment).  Matched case-sensitively, a name without extension by the whole name.
TEXT_EXTENSIONS = frozenset((
    "txt", "log", "err", "cfg", "conf", "cnf", "cf", "ini", "properties", "prop", "hocon",
    "toml", "yaml", "yml", "xml", "json", "js", "py", "py3", "csv", "tsv", "md", "rst",
    "ipynb", "MLmodel", "mlproject"))
# werkzeug's token characters: a file name made of them goes unquoted.
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
                   "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def check_safe(path: str) -> str:
    """``path`` as MLflow's ``validate_path_is_safe`` takes it, or 400 "Invalid path" as it
    answers: a ``..`` part, an absolute (POSIX or Windows) path, a ``#``, checked after
    decoding %-escapes until none is left (so ``%2E%2E`` is a ``..``)."""
    decoded = path
    while (again := unquote(decoded)) != decoded:
        decoded = again
    if decoded.startswith("file:"):
        decoded = urlparse(decoded).path
    if ("#" in decoded or ".." in decoded.split("/") or PurePosixPath(decoded).is_absolute()
            or PureWindowsPath(decoded).is_absolute() or decoded[1:2] == ":"):
        raise InvalidArgument("Invalid path")
    return path


def run_part(c: ServerContext, p: Principal, path: str,
             role: str | None = None) -> tuple[Run, str] | None:
    """(run, path inside its artifacts) when ``path`` is ``<experiment>/<run>/artifacts[/…]``
    of a run of that experiment; None for any other path (a free one)."""
    parts = path.strip("/").split("/", 3)
    if len(parts) < 3 or parts[2] != "artifacts":
        return None
    try:
        run = get_run(c, p, parts[1], role)
    except NotFound:
        return None
    if run.experiment_id != parts[0]:
        return None
    rel = parts[3].strip("/") if len(parts) == 4 else ""
    if rel:
        try:
            check_path(rel)
        except InvalidArgument as exc:
            raise InvalidArgument(f"Invalid artifact path '{rel}': {exc.message}") from None
    return run, rel


def locate(c: ServerContext, p: Principal, path: str,
           role: str | None = None) -> tuple[list[FileEntry], str]:
    """(the files at and under ``path``, path relative to their root): a run's artifacts,
    or the free area's, after the route's permission check."""
    found = run_part(c, p, path, role)
    if found is not None:
        run, rel = found
        return c.store.list_artifacts(run.id), rel
    rel = artifact_area.clean(path)
    artifact_area.check_access(c, p, rel, role)
    return artifact_area.entries(c, rel), rel


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
    path = check_safe(r.text("path") or "")
    entries, rel = locate(c, p, path)
    files = listing(entries, rel)
    return {} if files is None else {"files": files}


def list_run_artifacts(c: ServerContext, p: Principal, r: Params) -> dict:
    """``GET /mlflow/artifacts/list?run_id=&path=``: paths relative to the run's root."""
    rel = check_safe(r.text("path") or "").strip("/")
    run = get_run(c, p, r.run_id())
    files = _run_listing(c, run, rel)
    prefix = rel + "/" if rel else ""
    return {"root_uri": artifact_uri(run),
            "files": [{**f, "path": prefix + f["path"]} for f in files]}


def _run_listing(c: ServerContext, run: Run, rel: str) -> list[dict[str, Any]]:
    """A run's files under ``rel``: its artifacts in Cairn, or, for a run of an experiment
    given another ``mlflow-artifacts:/…`` location, the proxy's free files there (where
    the client uploaded them), as mlflow server lists them."""
    uri = artifact_uri(run)
    if uri == f"mlflow-artifacts:/{run.experiment_id}/{run.id}/artifacts" or \
            not uri.startswith("mlflow-artifacts:/"):
        return listing(c.store.list_artifacts(run.id), rel) or []
    root = artifact_area.clean(urlparse(uri).path)
    return listing(artifact_area.entries(c, root), f"{root}/{rel}".rstrip("/")) or []


def content_type(name: str) -> str:
    """MLflow's ``_guess_mime_type``."""
    extension = os.path.splitext(name)[-1].replace(".", "") or name
    if extension in TEXT_EXTENSIONS:
        return "text/plain"
    guessed, _ = mimetypes.guess_type(name)
    return guessed or "application/octet-stream"


def content_disposition(name: str) -> str:
    """MLflow's ``_content_disposition_attachment``: werkzeug's quoting, and RFC 5987's
    ``filename*`` beside an ASCII fallback for a name that is not ASCII."""
    if not name.isascii():
        fallback = (unicodedata.normalize("NFKD", name).encode("ascii", "ignore")
                    .decode("ascii") or "download")
        return (f"attachment; filename={_quoted(fallback)}; "
                f"filename*=UTF-8''{quote(name, safe='!#$&+-.^_`|~')}")
    return f"attachment; filename={_quoted(name)}"


def _quoted(value: str) -> str:
    if not value:
        return '""'
    if _TOKEN.issuperset(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def find_file(c: ServerContext, entries: list[FileEntry], rel: str,
              shown: str) -> tuple[FileEntry, tuple[bytes, Iterator[bytes]]]:
    """The file at ``rel`` and its first chunk read (so a broken object is an error answer,
    not a cut response); ``shown`` is the path MLflow's messages name."""
    entry = next((e for e in entries if e.path == rel), None) if rel else None
    if entry is None:
        prefix = rel + "/" if rel else ""
        if any(e.path.startswith(prefix) for e in entries):
            raise IsDirectory(shown)
        raise NotFound(f"No such artifact: '{shown}'")
    chunks = c.objects.read_file(entry)
    return entry, (next(chunks, b""), chunks)


class IsDirectory(InvalidArgument):
    def __init__(self, shown: str) -> None:
        super().__init__(f"Artifact path refers to a directory, not a file: '{shown}'")


def file_response(entry: FileEntry, first: bytes, rest: Iterator[bytes],
                  **headers: str) -> Response:
    name = entry.path.rsplit("/", 1)[-1]

    def body() -> Iterator[bytes]:
        yield first
        yield from rest

    response = StreamingResponse(body(), headers={
        "content-disposition": content_disposition(name), "x-content-type-options": "nosniff",
        "content-length": str(entry.size), **headers})
    # Set as is: Starlette would add "; charset=utf-8" to a text type, MLflow does not.
    response.headers["content-type"] = content_type(name)
    return response


def _detail(message: str) -> Response:
    """An error as MLflow's FastAPI artifact routes answer it (``HTTPException``)."""
    return json_response({"detail": message}, 400)


@raw
async def download(c: ServerContext, request: Request) -> Response:
    path = check_safe(request.path_params["path"])

    def find() -> tuple[FileEntry, tuple[bytes, Iterator[bytes]]]:
        entries, rel = locate(c, principal(request), path)
        found = find_file(c, entries, rel, path)
        file_downloaded(c, principal(request), mlflow_target(path), found[0])
        return found

    try:
        entry, (first, rest) = await run_in_threadpool(find)
    except IsDirectory as exc:
        return _detail(exc.message)
    return file_response(entry, first, rest)


@raw
async def upload(c: ServerContext, request: Request) -> Response:
    p = await run_in_threadpool(principal, request)
    path = check_safe(request.path_params["path"])
    if not posixpath.split(path)[1]:
        return _detail("Artifact path must include a filename (cannot end with '/').")
    found = await run_in_threadpool(run_part, c, p, path)
    if found is None:
        rel = artifact_area.clean(path)
        await run_in_threadpool(artifact_area.check_access, c, p, rel)
    elif not found[1]:
        raise InvalidArgument("An upload needs a file path under the run's artifacts")
    fd, tmp = tempfile.mkstemp(prefix="cairn-mlflow-upload-")
    try:
        with os.fdopen(fd, "wb") as f:
            async for chunk in request.stream():
                f.write(chunk)
        if found is None:
            await run_in_threadpool(store_free, c, p, tmp, rel)
        else:
            await run_in_threadpool(store_in_run, c, p, tmp, *found)
    finally:
        os.unlink(tmp)
    return Response(status_code=200)


def store_in_run(c: ServerContext, p: Principal, tmp: str, run: Run, rel: str) -> None:
    entry = c.objects.put_file(tmp, rel)
    write(c, p, run_id=run.id, artifacts=(entry,))
    c.audit(p, "run.log_artifacts", f"runs/{run.id}", None,
            {"files": [rel], "count": 1, "via": "mlflow"})


def store_free(c: ServerContext, p: Principal, tmp: str, rel: str) -> None:
    entry = c.objects.put_file(tmp, rel)
    artifact_area.put(c, entry, p)
    c.audit(p, "mlflow.artifact.upload", f"mlflow-artifacts/{rel}", None,
            {"size": entry.size, "digest": entry.digest})


@raw
async def delete(c: ServerContext, request: Request) -> Response:
    await run_in_threadpool(principal, request)  # 401 without a token, as everywhere
    check_safe(request.path_params["path"])
    raise InvalidArgument("Deleting artifacts is not supported: a run's artifacts are "
                          "immutable in Cairn")


ROUTES = [
    ("GET", "/artifacts", list_files),
    ("GET", "/artifacts/{path:path}", download),
    ("PUT", "/artifacts/{path:path}", upload),
    ("DELETE", "/artifacts/{path:path}", delete),
]
API_ROUTES = [("GET", "/artifacts/list", list_run_artifacts)]
