"""Record ingestion: batches of run records, idempotent by (writer id, sequence number).

The body is either concatenated journal frames (``application/vnd.cairn.records``,
what the Python client's spool holds, metric points packed as columnar segments) or
JSON ``{"batches": [...]}``.  Each batch is applied in its own transaction and gets a
result; a client advances its acknowledged position over ``applied``, ``duplicate``
and ``rejected`` results and sends ``unavailable`` ones again later.

One bad item never costs a batch its good ones: a param, tag or metric key the server
cannot store (a bad key, a lone surrogate, a param changed to another value) is left
out, the rest of the batch is applied, and the result lists what was left out under
``rejected_items`` (``[{"field", "key", "error"}]``).  The batch named by ``?strict=
writer_id:seq`` is the exception: the caller's own write, applied whole or refused
whole as on every other backend (the Python client names its caller's batch so).
A batch that fails in a way
that is not its fault (an unexpected error of the server or its store) is
``unavailable``, never ``rejected``: the client keeps it and sends it again.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Annotated, Any, Collection, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from ...entities import RecordBatch
from ...errors import CairnError, InvalidArgument, NotFound
from ...store.validation import check_key
from ...store.wire import (
    RECORDS_TYPE, STRICT, batch_from_json, check_param, check_tag, error_to_json, iter_frames,
    no_nul, parse_json,
)
from ..auth import Principal
from ..context import ctx, principal
from ._common import apply_batches, check_reserved_tags, require_run

router = APIRouter(tags=["records"])
User = Annotated[Principal, Depends(principal)]
MAX_BATCHES = 10_000
log = logging.getLogger("cairn.server.records")


class BatchResult(BaseModel):
    writer_id: str
    seq: int
    run_id: str
    status: Literal["applied", "duplicate", "rejected", "unavailable"]
    error: dict[str, Any] | None = None
    rejected_items: list[dict[str, Any]] | None = None


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
async def ingest(request: Request, p: User, strict: Annotated[str | None, Query(
        pattern=STRICT.pattern, description="writer_id:seq of a batch applied whole or refused "
        "whole (the caller's own write); other batches lose only the items the server refuses")
        ] = None):
    body = await request.body()
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()

    def work() -> dict:
        segs: list | None = None
        if ctype == RECORDS_TYPE:
            segs = []
            batches = list(iter_frames(body, segs))
        elif ctype in ("application/json", ""):
            doc = parse_json(body)  # 400: not JSON, too deep, a lone surrogate
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
        whole: set[tuple[str, int]] = set()
        if strict is not None:  # checked here too: the fast path skips FastAPI's checks
            m = STRICT.fullmatch(strict)
            if m is None:
                raise InvalidArgument(f"strict must be writer_id:seq, got {strict[:80]!r}")
            whole = {(m[1], int(m[2]))}
        batches, segs, dropped = _leave_out_bad_items(c, p, batches, segs, whole)
        results = _apply(c, p, batches, segs)
        for i, items in dropped.items():
            results[i]["rejected_items"] = items
        applied = [r for r in results if r["status"] == "applied"]
        if applied:
            runs = sorted({r["run_id"] for r in applied})
            c.audit(p, "records.write", f"runs/{runs[0]}" if len(runs) == 1 else "runs", None,
                    {"runs": runs[:100], "count": len(applied),
                     "batches": [[r["run_id"], r["writer_id"], r["seq"]] for r in applied[:100]]})
        return {"results": results}

    # Serialised here rather than validated against RecordsResult: the results are
    # built above, and pydantic's pass over them was a tenth of a request's time.
    out = await run_in_threadpool(work)
    try:
        data = orjson.dumps(out)
    except TypeError:  # a lone surrogate in an id or message: json escapes it
        data = json.dumps(out).encode()
    return Response(data, media_type="application/json")


# -- one bad item, or one bad batch, never costs the others -----------------------------
def _apply(c: Any, p: Principal, batches: list[RecordBatch], segs: list | None) -> list[dict]:
    """apply_batches, with an unexpected error of one batch made that batch's
    ``unavailable`` (the batches before it keep their results; none after it is tried)."""
    try:
        return apply_batches(c, p, batches, segs)
    except Exception:  # not a CairnError: retry one by one to find the batch, if any
        log.exception("applying %d record batches failed; retrying them one by one",
                      len(batches))
    results: list[dict] = []
    for i, b in enumerate(batches):
        if results and results[-1]["status"] == "unavailable":
            results.append({"writer_id": b.writer_id, "seq": b.seq, "run_id": b.run_id,
                            "status": "unavailable"})
            continue
        try:
            results.extend(apply_batches(c, p, [b], [segs[i]] if segs is not None else None))
        except Exception as exc:
            log.exception("record %d of writer %s (run %s) failed", b.seq, b.writer_id, b.run_id)
            err = CairnError(f"the server failed to apply this record ({type(exc).__name__}); "
                             "it is kept by the client and sent again")
            results.append({"writer_id": b.writer_id, "seq": b.seq, "run_id": b.run_id,
                            "status": "unavailable", "error": error_to_json(err)})
    return results


def _leave_out_bad_items(c: Any, p: Principal, batches: list[RecordBatch], segs: list | None,
                         whole: Collection[tuple[str, int]] = ()
                         ) -> tuple[list[RecordBatch], list | None, dict[int, list[dict]]]:
    """Each batch without the params, tags and metrics the server would refuse, and,
    by batch index, what was left out and why.  The batches in ``whole`` (writer id,
    seq) are left as they are: applied whole or refused whole."""
    dropped: dict[int, list[dict]] = {}
    def tag_ok(key: Any, value: Any) -> None:
        check_tag(key, value)
        check_reserved_tags(c, p, [key])

    def deleted_ok(key: Any, _value: Any) -> None:
        check_key(key, "tag")
        check_reserved_tags(c, p, [key])

    params_of: dict[str, dict[str, str]] = {}  # run id -> params as this request leaves them
    read: set[str] = set()  # runs whose stored params are in params_of
    out = list(batches)
    out_segs = list(segs) if segs is not None else None
    for i, b in enumerate(batches):
        bad: list[dict] = []
        params = _good(b.params, "param", bad, check_param)
        tags = _good(b.tags, "tag", bad, tag_ok)
        deleted = tuple(k for k in b.deleted_tags if _item_ok(k, None, "tag", bad, deleted_ok))
        metrics = {k: v for k, v in b.metrics.items()
                   if _item_ok(k, None, "metric", bad, lambda k, _v: check_key(k, "metric"))}
        env = b.env
        if env is not None and not _utf8(env):
            bad.append(_item("env", None, InvalidArgument(
                "the environment holds text that is not valid Unicode (a lone surrogate)")))
            env = None
        if params and b.create is None and isinstance(b.run_id, str):
            params = _unchanged(c, p, b.run_id, params, params_of, read, bad)
        if isinstance(b.run_id, str):
            params_of.setdefault(b.run_id, {}).update(params)
        if not bad or (b.writer_id, b.seq) in whole:
            continue
        dropped[i] = bad
        out[i] = dataclasses.replace(b, params=params, tags=tags, deleted_tags=deleted,
                                     metrics=metrics, env=env)
        if out_segs is not None and len(metrics) != len(b.metrics):
            out_segs[i] = [s for s in out_segs[i] if s.key in metrics]
    return out, out_segs, dropped


def _good(items: Any, kind: str, bad: list[dict], check: Any) -> dict:
    if not isinstance(items, dict):
        return items  # check_batch refuses the whole batch
    return {k: v for k, v in items.items() if _item_ok(k, v, kind, bad, check)}


def _item_ok(key: Any, value: Any, kind: str, bad: list[dict], check: Any) -> bool:
    """``check(key, value)`` (what wire.check_batch checks of one item), a refusal noted."""
    try:
        check(key, value)
    except CairnError as exc:
        bad.append(_item(kind, key, exc))
        return False
    return True


def _unchanged(c: Any, p: Principal, run_id: str, params: dict[str, str],
               params_of: dict[str, dict[str, str]], read: set[str], bad: list[dict]
               ) -> dict[str, str]:
    """``params`` less those the run already has with another value (params are immutable),
    in the store or from an earlier batch of this request."""
    known = params_of.get(run_id) or {}
    if run_id not in read and any(k not in known for k in params):
        read.add(run_id)
        try:
            if c.guard.enabled:  # only an editor of the run may learn about its params
                require_run(c, p, run_id, "editor")
            stored = dict(c.store.get_run(run_id).params)
        except NotFound:  # not yet, or never (then the store refuses the whole batch)
            stored = {}
        except CairnError:  # not theirs: the whole batch is refused for that
            return params
        known = params_of[run_id] = {**stored, **known}
    keep = {}
    for k, v in params.items():
        if k in known and known[k] != v:
            bad.append(_item("param", k, InvalidArgument(
                f"param {k!r} of run {run_id} already has another value; params are "
                "immutable")))
        else:
            keep[k] = v
    return keep


def _item(field: str, key: Any, exc: CairnError) -> dict:
    return {"field": field, "key": key if isinstance(key, str) and _utf8(key) else repr(key),
            "error": error_to_json(exc)}


def _utf8(obj: Any) -> bool:
    """True if every string in ``obj`` can be stored as UTF-8 (no lone surrogates)."""
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(obj, dict):
        return all(_utf8(k) and _utf8(v) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return all(_utf8(v) for v in obj)
    return True
