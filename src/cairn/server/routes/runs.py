"""Runs: create, read, search, log, end, tags, rename, delete/restore (soft), heartbeats.

The Python client writes through ``POST /api/v1/records`` (batches with writer id and
sequence number); these endpoints are the same operations for other clients, each
turned into one batch.  Pass ``writer_id`` and ``seq`` to make a retry idempotent.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field, StrictInt

from ... import clock
from ...entities import RUN_LIFECYCLE_TAG, RUN_NAME_TAG, RecordBatch, RunStatus
from ...errors import InvalidArgument, NotFound
from ...search import decode_page_token
from ...store.wire import INT64_MAX, INT64_MIN, from_results, no_nul, run_to_json
from ..auth import Principal
from ..context import ctx, principal
from ._common import apply_batches, require_run

router = APIRouter(tags=["runs"])
User = Annotated[Principal, Depends(principal)]
RunId = Annotated[str, Path(min_length=1, max_length=64)]
Int64 = Annotated[StrictInt, Field(ge=INT64_MIN, le=INT64_MAX)]
Float = float | Literal["NaN", "Infinity", "-Infinity"]
Text = Annotated[str, Field(max_length=8000)]
Key = Annotated[str, Field(min_length=1, max_length=250)]


class MetricSummary(BaseModel):
    value: Float
    step: int
    timestamp: int
    min: Float
    max: Float
    count: int


class RunOut(BaseModel):
    id: str
    name: str
    experiment_id: str
    experiment: str
    status: RunStatus
    start_time: int
    end_time: int | None
    user: str
    parent_id: str | None
    lifecycle: str
    heartbeat: int | None
    params: dict[str, str]
    tags: dict[str, str]
    metrics: dict[str, Float]
    metric_summaries: dict[str, MetricSummary]
    env: dict[str, Any]


class CreateRun(BaseModel):
    experiment_id: Annotated[str, Field(min_length=1, max_length=64)]
    name: Annotated[str, Field(max_length=500)] | None = None
    run_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")] | None = None
    params: dict[Key, Annotated[str, Field(max_length=6000)]] = Field(default_factory=dict)
    tags: dict[Key, Text] = Field(default_factory=dict)
    parent_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    start_time: Int64 | None = None
    user: Annotated[str, Field(max_length=256)] | None = None


class SearchRuns(BaseModel):
    experiment_ids: list[Annotated[str, Field(max_length=64)]] | None = None
    filter: Annotated[str, Field(max_length=20_000)] = ""
    order_by: list[Annotated[str, Field(max_length=1000)]] = Field(default_factory=list)
    max_results: Annotated[StrictInt, Field(ge=1, le=10_000)] = 1000
    page_token: Annotated[str, Field(max_length=1000)] | None = None
    lifecycle: Literal["active", "deleted", "all"] = "active"  # "deleted": soft-deleted runs


class RunPage(BaseModel):
    runs: list[RunOut]
    next_page_token: str | None


class MetricPoint(BaseModel):
    key: Key
    value: Float
    step: Int64 = 0
    timestamp: Int64 | None = None


class LogBatch(BaseModel):
    metrics: list[MetricPoint] = Field(default_factory=list)
    params: dict[Key, Annotated[str, Field(max_length=6000)]] = Field(default_factory=dict)
    tags: dict[Key, Text] = Field(default_factory=dict)
    writer_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^/\x00]+$")] | None = None
    seq: Annotated[StrictInt, Field(ge=1, le=INT64_MAX)] | None = None


class EndRun(BaseModel):
    status: RunStatus = RunStatus.FINISHED
    end_time: Int64 | None = None


class RenameRun(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=500)]


class Heartbeat(BaseModel):
    run_ids: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(max_length=10_000)
    time: Int64 | None = None


class Ok(BaseModel):
    ok: bool = True


def _apply_one(request: Request, p: Principal, batch: RecordBatch) -> None:
    c = ctx(request)
    res = apply_batches(c, p, [batch])[0]
    err = from_results([res])
    if err is not None:
        raise err


@router.post("/runs", response_model=RunOut, status_code=201, summary="Create a run (RUNNING)")
def create_run(body: CreateRun, request: Request, p: User):
    c = ctx(request)
    no_nul(body.model_dump(), "run")
    exp = c.store.get_experiment(body.experiment_id)
    c.guard.need(p, "experiment", exp.id)
    from ...client import refuse_deleted

    refuse_deleted(exp)
    run_id = body.run_id or clock.new_run_id()
    if body.parent_id is not None:
        c.store.get_run(body.parent_id)  # 404 for an unknown parent
    from ...names import random_name

    create = {"experiment_id": exp.id, "experiment_name": exp.name,
              "experiment_created_at": exp.created_at, "name": body.name or random_name(run_id),
              "parent_id": body.parent_id, "user": body.user or p.user,
              "start_time": body.start_time or clock.now_ms()}
    batch = RecordBatch(run_id=run_id, writer_id=clock.new_server_writer_id(), seq=1, time=clock.now_ms(),
                        create=create, params=body.params, tags=body.tags)
    if body.run_id is not None:
        try:
            c.store.get_run(run_id)
            raise InvalidArgument(f"run {run_id!r} exists already")
        except NotFound:
            pass
    _apply_one(request, p, batch)
    run = c.store.get_run(run_id)
    c.audit(p, "run.create", f"runs/{run_id}", None,
            {"experiment_id": exp.id, "name": run.name, "params": dict(body.params),
             "tags": dict(body.tags)})
    return run_to_json(run)


@router.get("/runs/{run_id}", response_model=RunOut)
def get_run(run_id: RunId, request: Request, p: User):
    c = ctx(request)
    run = c.store.get_run(run_id)
    c.guard.need(p, "experiment", run.experiment_id)
    return run_to_json(run)


@router.post("/runs/search", response_model=RunPage,
             summary="Search runs with the filter grammar of docs/search.md")
def search_runs(body: SearchRuns, request: Request, p: User):
    c = ctx(request)
    no_nul(body.model_dump(), "search")
    if body.page_token and decode_page_token(body.page_token) > 1 << 40:
        raise InvalidArgument(f"Invalid page token {body.page_token!r}")
    ids = body.experiment_ids
    if c.guard.enabled and not c.guard.sees_all(p, "experiment"):
        allowed = c.guard.visible(p, "experiment", [e.id for e in c.store.list_experiments()])
        ids = allowed if ids is None else [i for i in ids if i in set(allowed)]
        if not ids:
            return {"runs": [], "next_page_token": None}
    if body.lifecycle == "active":
        runs, token = c.store.search_runs(ids, body.filter, body.order_by, body.max_results,
                                          body.page_token)
    else:
        runs, token = c.store.search_runs(ids, body.filter, body.order_by, body.max_results,
                                          body.page_token,
                                          lifecycle=None if body.lifecycle == "all" else "deleted")
    return {"runs": [run_to_json(r) for r in runs], "next_page_token": token}


@router.post("/runs/{run_id}/log", response_model=Ok,
             summary="Log metrics, params and tags (one batch; 409 once the run has ended)")
def log_batch(run_id: RunId, body: LogBatch, request: Request, p: User):
    c = ctx(request)
    no_nul(body.model_dump(), "log")
    exp = require_run(c, p, run_id)
    series: dict[str, tuple[list, list, list]] = {}
    t = clock.now_ms()
    from ...store.wire import pfloat

    for m in body.metrics:
        s = series.setdefault(m.key, ([], [], []))
        s[0].append(m.step)
        s[1].append(m.timestamp if m.timestamp is not None else t)
        s[2].append(pfloat(m.value))
    if (body.writer_id is None) != (body.seq is None):
        raise InvalidArgument("pass writer_id and seq together (or neither)")
    batch = RecordBatch(run_id=run_id, writer_id=body.writer_id or clock.new_server_writer_id(),
                        seq=body.seq or 1, time=t, metrics=series, params=body.params,
                        tags=body.tags)
    _apply_one(request, p, batch)
    c.audit(p, "run.log", f"runs/{run_id}", None,
            {"experiment_id": exp, "params": dict(body.params), "tags": dict(body.tags),
             "points": len(body.metrics)})
    return {"ok": True}


@router.post("/runs/{run_id}/end", response_model=RunOut, summary="Set the run's final status")
def end_run(run_id: RunId, body: EndRun, request: Request, p: User):
    c = ctx(request)
    require_run(c, p, run_id)
    before = c.store.get_run(run_id)
    batch = RecordBatch(run_id=run_id, writer_id=clock.new_server_writer_id(), seq=1, time=clock.now_ms(),
                        status=body.status, end_time=body.end_time or clock.now_ms())
    _apply_one(request, p, batch)
    run = c.store.get_run(run_id)
    c.audit(p, "run.end", f"runs/{run_id}", {"status": before.status.value},
            {"status": run.status.value, "end_time": run.end_time})
    return run_to_json(run)


@router.put("/runs/{run_id}/tags/{key:path}", response_model=Ok, summary="Set one tag")
async def set_tag(run_id: RunId, key: str, request: Request, p: User):
    body = await request.body()
    try:
        value = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidArgument("a tag value must be UTF-8 text") from None
    from fastapi.concurrency import run_in_threadpool

    def work():
        c = ctx(request)
        no_nul([key, value], "tag")
        require_run(c, p, run_id)
        old = c.store.get_run(run_id).tags.get(key)
        _apply_one(request, p, RecordBatch(run_id=run_id, writer_id=clock.new_server_writer_id(), seq=1,
                                           time=clock.now_ms(), tags={key: value}))
        c.audit(p, "run.set_tag", f"runs/{run_id}/tags/{key}", old, value)

    await run_in_threadpool(work)
    return {"ok": True}


@router.delete("/runs/{run_id}/tags/{key:path}", response_model=Ok, summary="Delete one tag")
def delete_tag(run_id: RunId, key: str, request: Request, p: User):
    c = ctx(request)
    no_nul(key, "tag key")
    require_run(c, p, run_id)
    old = c.store.get_run(run_id).tags.get(key)
    _apply_one(request, p, RecordBatch(run_id=run_id, writer_id=clock.new_server_writer_id(), seq=1,
                                       time=clock.now_ms(), deleted_tags=(key,)))
    c.audit(p, "run.delete_tag", f"runs/{run_id}/tags/{key}", old, None)
    return {"ok": True}


@router.patch("/runs/{run_id}", response_model=RunOut,
              summary="Rename a run (also a finished one; journalled as the tag cairn.run.name)")
def rename_run(run_id: RunId, body: RenameRun, request: Request, p: User):
    c = ctx(request)
    no_nul(body.name, "run name")
    require_run(c, p, run_id)
    before = c.store.get_run(run_id)
    _apply_one(request, p, RecordBatch(run_id=run_id, writer_id=clock.new_server_writer_id(),
                                       seq=1, time=clock.now_ms(), tags={RUN_NAME_TAG: body.name}))
    run = c.store.get_run(run_id)
    c.audit(p, "run.rename", f"runs/{run_id}", before.name, run.name)
    return run_to_json(run)


def _set_lifecycle(run_id: str, request: Request, p: Principal, lifecycle: str) -> dict:
    c = ctx(request)
    require_run(c, p, run_id)
    before = c.store.get_run(run_id)
    _apply_one(request, p, RecordBatch(run_id=run_id, writer_id=clock.new_server_writer_id(),
                                       seq=1, time=clock.now_ms(),
                                       tags={RUN_LIFECYCLE_TAG: lifecycle}))
    run = c.store.get_run(run_id)
    c.audit(p, "run.delete" if lifecycle == "deleted" else "run.restore", f"runs/{run_id}",
            {"lifecycle": before.lifecycle}, {"lifecycle": run.lifecycle})
    return run_to_json(run)


@router.post("/runs/{run_id}/delete", response_model=RunOut,
             summary="Delete a run (soft: hidden from searches, kept, restorable)")
def delete_run(run_id: RunId, request: Request, p: User):
    return _set_lifecycle(run_id, request, p, "deleted")


@router.post("/runs/{run_id}/restore", response_model=RunOut, summary="Restore a deleted run")
def restore_run(run_id: RunId, request: Request, p: User):
    return _set_lifecycle(run_id, request, p, "active")


@router.post("/heartbeat", response_model=Ok, summary="Runs still alive (their writers' pulse)")
def heartbeat(body: Heartbeat, request: Request, p: User):
    c = ctx(request)
    no_nul(body.run_ids, "run ids")
    if c.guard.enabled:
        from ._common import run_experiments

        for exp in set(run_experiments(c, body.run_ids).values()):
            c.guard.need(p, "experiment", exp)
    c.store.heartbeat(body.run_ids, body.time or clock.now_ms())
    return {"ok": True}
