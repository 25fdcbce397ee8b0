"""Artifacts: content-addressed objects, and the files each run lists.

Uploading a directory is: ask which objects the server lacks
(``POST /objects/missing``), ``PUT`` only those (in parallel, any order; an
interrupted upload resumes by asking again), then log the file entries to the run
(a record batch, or ``POST /runs/{id}/artifacts``).  Objects are checked against
their SHA-256 on the way in and on the way out.
"""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, StrictInt

from ... import clock
from ...cas import codec
from ...cas.backends.base import check_oid, freshen
from ...cas.tree import check_path
from ...entities import RecordBatch
from ...errors import CorruptObject, InvalidArgument, NotFound
from ...store.wire import entry_from_json, entry_to_json, from_results
from ..auth import Principal
from ..context import ctx, principal
from ..download_audit import file_downloaded, object_read
from ._common import apply_batches, require_run

router = APIRouter(tags=["artifacts"])
User = Annotated[Principal, Depends(principal)]
OBJECT_TYPE = "application/vnd.cairn.object"  # codec-tagged stored bytes (docs/objects.md)
Oid = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="SHA-256 hex of the content")]
RunId = Annotated[str, Path(min_length=1, max_length=64)]


class OidList(BaseModel):
    oids: list[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]] = Field(max_length=100_000)


class Missing(BaseModel):
    missing: list[str]


_INT64_MAX = (1 << 63) - 1  # what the index's BIGINT columns hold


class FileEntryModel(BaseModel):
    path: Annotated[str, Field(min_length=1, max_length=1000)]
    size: Annotated[StrictInt, Field(ge=0, le=_INT64_MAX)]
    digest: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    chunks: list[tuple[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")],
                       Annotated[StrictInt, Field(ge=1, le=_INT64_MAX)]]] = Field(default_factory=list)


class FileList(BaseModel):
    files: list[FileEntryModel]


class Stored(BaseModel):
    oid: str
    stored: bool


@router.post("/objects/missing", response_model=Missing,
             summary="Which of these objects the server lacks (upload only those)")
def missing(body: OidList, request: Request, p: User):
    c = ctx(request)
    return {"missing": sorted(c.objects.missing(body.oids))}


@router.put("/objects/{oid}", response_model=Stored,
            summary="Upload one object: its raw content, or its stored bytes as "
                    "application/vnd.cairn.object",
            openapi_extra={"requestBody": {"required": True, "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                OBJECT_TYPE: {"schema": {"type": "string", "format": "binary"}}}}})
async def put_object(oid: Oid, request: Request, p: User):
    c = ctx(request)
    limit = c.settings.max_object_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    data = await request.body()
    if len(data) > limit:
        raise _too_large(limit)
    encoded = request.headers.get("content-type", "").split(";")[0].strip() == OBJECT_TYPE

    def store() -> bool:
        # Found, it is freshened as any put's is: the record naming it comes later, and
        # garbage collection must not take an old copy in between.
        if freshen(c.objects.backend, oid):
            return False
        try:
            content = codec.decode(oid, data) if encoded else data
        except CorruptObject as exc:
            raise InvalidArgument(f"object {oid}: {exc.message}") from None
        if hashlib.sha256(content).hexdigest() != oid:
            raise InvalidArgument(f"the uploaded content does not hash to {oid}; the upload was "
                                  "damaged or the id is wrong")
        c.objects.backend.put(oid, data if encoded else codec.encode(content))
        return True

    stored = await run_in_threadpool(store)
    if stored:
        await run_in_threadpool(c.audit, p, "object.put", f"objects/{oid}", None,
                                {"bytes": len(data)})
    return {"oid": oid, "stored": stored}


def _too_large(limit: int):
    from ..app import BodyTooLarge

    return BodyTooLarge(limit)


@router.get("/objects/{oid}", response_class=Response,
            responses={200: {"content": {"application/octet-stream": {}, OBJECT_TYPE: {}}}},
            summary="Download one object (its content, verified)")
def get_object(oid: Oid, request: Request, p: User):
    c = ctx(request)
    check_oid(oid)
    if OBJECT_TYPE in request.headers.get("accept", ""):
        stored = c.objects.backend.get(oid)
        object_read(c, p, oid, stored, encoded=True)
        return Response(stored, media_type=OBJECT_TYPE)
    data = c.objects.get_bytes(oid)
    object_read(c, p, oid, data)
    return Response(data, media_type="application/octet-stream")


@router.get("/runs/{run_id}/artifacts", response_model=FileList,
            summary="A run's artifact files (under path, if given)")
def list_artifacts(run_id: RunId, request: Request, p: User,
                   path: Annotated[str, Query(max_length=1000)] = ""):
    c = ctx(request)
    require_run(c, p, run_id)
    prefix = path.strip("/")
    if prefix:
        check_path(prefix)
    entries = c.store.list_artifacts(run_id)
    if prefix:
        entries = [e for e in entries if e.path == prefix or e.path.startswith(prefix + "/")]
    return {"files": [entry_to_json(e) for e in entries]}


@router.get("/runs/{run_id}/artifacts/download", response_class=StreamingResponse,
            responses={200: {"content": {"application/octet-stream": {}}}},
            summary="Download one artifact file, streamed and verified")
def download_artifact(run_id: RunId, request: Request, p: User,
                      path: Annotated[str, Query(min_length=1, max_length=1000)]):
    c = ctx(request)
    check_path(path)  # no '..', no absolute paths, no backslashes
    require_run(c, p, run_id)
    entry = next((e for e in c.store.list_artifacts(run_id) if e.path == path), None)
    if entry is None:
        raise NotFound(f"run {run_id} has no artifact file {path!r}")
    chunks = c.objects.read_file(entry)
    first = next(chunks, b"")  # missing or corrupt objects fail here, as a clean error
    file_downloaded(c, p, f"runs/{run_id}", entry)
    name = path.rsplit("/", 1)[-1].replace('"', "")

    def body():
        yield first
        yield from chunks

    return StreamingResponse(body(), media_type="application/octet-stream",
                             headers={"content-length": str(entry.size),
                                      "content-disposition": f'attachment; filename="{name}"',
                                      "x-cairn-digest": entry.digest})


@router.post("/runs/{run_id}/artifacts", response_model=FileList,
             summary="Log uploaded files to a run (their objects must be on the server)")
def log_artifacts(run_id: RunId, body: FileList, request: Request, p: User):
    c = ctx(request)
    require_run(c, p, run_id)
    entries = tuple(entry_from_json(f.model_dump()) for f in body.files)
    if not entries:
        raise InvalidArgument("no files given")
    res = apply_batches(c, p, [RecordBatch(run_id=run_id, writer_id=clock.new_server_writer_id(), seq=1,
                                           time=clock.now_ms(), artifacts=entries)])
    err = from_results(res)
    if err is not None:
        raise err
    c.audit(p, "run.log_artifacts", f"runs/{run_id}", None,
            {"files": [e.path for e in entries[:100]], "count": len(entries)})
    return {"files": [entry_to_json(e) for e in entries]}
