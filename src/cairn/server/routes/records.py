"""Record ingestion: batches of run records, idempotent by (writer id, sequence number).

The body is either concatenated journal frames (``application/vnd.cairn.records``,
what the Python client's spool holds, metric points packed as columnar segments) or
JSON ``{"batches": [...]}``.  Each batch is applied in its own transaction and gets a
result; a client advances its acknowledged position over ``applied``, ``duplicate``
and ``rejected`` results and sends ``unavailable`` ones again later.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from ...errors import InvalidArgument
from ...store.wire import RECORDS_TYPE, batch_from_json, iter_frames, no_nul
from ..auth import Principal
from ..context import ctx, principal
from ._common import apply_batches

router = APIRouter(tags=["records"])
User = Annotated[Principal, Depends(principal)]
MAX_BATCHES = 10_000


class BatchResult(BaseModel):
    writer_id: str
    seq: int
    run_id: str
    status: Literal["applied", "duplicate", "rejected", "unavailable"]
    error: dict[str, Any] | None = None


class RecordsResult(BaseModel):
    results: list[BatchResult]


_BATCH_SCHEMA = {
    "type": "object",
    "required": ["run_id", "writer_id", "seq"],
    "properties": {
        "run_id": {"type": "string"}, "writer_id": {"type": "string"},
        "seq": {"type": "integer", "minimum": 1}, "time": {"type": "integer"},
        "params": {"type": "object", "additionalProperties": {"type": "string"}},
        "tags": {"type": "object", "additionalProperties": {"type": "string"}},
        "deleted_tags": {"type": "array", "items": {"type": "string"}},
        "metrics": {"type": "object", "additionalProperties": {
            "type": "object", "properties": {
                "steps": {"type": "array", "items": {"type": "integer"}},
                "timestamps": {"type": "array", "items": {"type": "integer"}},
                "values": {"type": "array", "items": {}}}}},
        "artifacts": {"type": "array", "items": {"type": "object"}},
        "status": {"type": "string", "enum": ["RUNNING", "FINISHED", "FAILED", "KILLED"]},
        "end_time": {"type": "integer"},
        "create": {"type": "object"}, "env": {"type": "object"},
    },
}


@router.post(
    "/records", response_model=RecordsResult,
    summary="Ingest record batches (idempotent per writer id + seq)",
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"type": "object", "required": ["batches"], "properties": {
            "batches": {"type": "array", "items": _BATCH_SCHEMA}}}},
        RECORDS_TYPE: {"schema": {"type": "string", "format": "binary"}},
    }}})
async def ingest(request: Request, p: User):
    body = await request.body()
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()

    def work() -> dict:
        segs: list | None = None
        if ctype == RECORDS_TYPE:
            segs = []
            batches = list(iter_frames(body, segs))
        elif ctype in ("application/json", ""):
            try:
                doc = json.loads(body)
            except (ValueError, UnicodeDecodeError) as exc:
                raise InvalidArgument(f"the body is not valid JSON: {exc}") from None
            if not isinstance(doc, dict) or not isinstance(doc.get("batches"), list):
                raise InvalidArgument('the body must be {"batches": [...]}')
            no_nul(doc, "records")
            batches = [batch_from_json(b) for b in doc["batches"]]
        else:
            raise InvalidArgument(f"unsupported content type {ctype!r}; send {RECORDS_TYPE} "
                                  "frames or application/json")
        if len(batches) > MAX_BATCHES:
            raise InvalidArgument(f"{len(batches)} batches in one request; at most {MAX_BATCHES}")
        c = ctx(request)
        results = apply_batches(c, p, batches, segs)
        applied = [r for r in results if r["status"] == "applied"]
        if applied:
            runs = sorted({r["run_id"] for r in applied})
            c.audit(p, "records.write", f"runs/{runs[0]}" if len(runs) == 1 else "runs", None,
                    {"runs": runs[:100], "count": len(applied),
                     "batches": [[r["run_id"], r["writer_id"], r["seq"]] for r in applied[:100]]})
        return {"results": results}

    # Serialised here rather than validated against RecordsResult: the results are
    # built above, and pydantic's pass over them was a tenth of a request's time.
    return Response(orjson.dumps(await run_in_threadpool(work)), media_type="application/json")
