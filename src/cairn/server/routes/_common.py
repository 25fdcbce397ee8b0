"""Helpers shared by the run, record, metric and artifact routes."""

from __future__ import annotations

import dataclasses
from typing import Any

from ...cas.tree import referenced_oids
from ...entities import RecordBatch
from ...errors import CairnError, Conflict, NotFound, PermissionDenied, StoreUnavailable
from ...lifecycle.retention import EXPIRES_TAG, TTL_TAG
from ...store import segments as seglib
from ...store.base import PreparedWrites, RunExperimentLookup
from ...store.wire import check_batch, error_to_json
from ..auth import Principal
from ..context import ServerContext


# Tags the MLflow API keeps for itself (an experiment's artifact location, a run's logged
# models and inputs): they steer where the MLflow routes read and write files, so through
# the native API only an admin may set or delete them.
MLFLOW_TAG_PREFIX = "cairn.mlflow."


def check_reserved_tags(c: ServerContext, p: Principal, keys: Any) -> None:
    """Refuse a non-admin's write of a tag under ``cairn.mlflow.`` (403)."""
    if not c.guard.enabled or p.is_admin:
        return
    for key in keys:
        if isinstance(key, str) and key.startswith(MLFLOW_TAG_PREFIX):
            raise PermissionDenied(f"tag {key[:200]!r}: tags under {MLFLOW_TAG_PREFIX!r} are kept "
                                   "by the MLflow API; only an admin may set or delete them here")


def run_experiments(c: ServerContext, run_ids: list[str]) -> dict[str, str]:
    """run id -> experiment id for the runs that exist."""
    if isinstance(c.store, RunExperimentLookup):
        return c.store.run_experiment_ids(run_ids)
    out = {}
    for rid in dict.fromkeys(run_ids):
        try:
            out[rid] = c.store.get_run(rid).experiment_id
        except NotFound:
            pass
    return out


def require_run(c: ServerContext, p: Principal, run_id: str, role: str | None = None) -> str:
    """The run's experiment id, after checking ``p`` holds ``role`` (default: the route's,
    from the permissions table) on it (404 if no run)."""
    exp = run_experiments(c, [run_id]).get(run_id)
    if exp is None:
        raise NotFound(f"run {run_id!r} does not exist")
    c.guard.need(p, "experiment", exp, role)
    return exp


def apply_batches(c: ServerContext, p: Principal, batches: list[RecordBatch],
                  prepared: list | None = None, mlflow: bool = False,
                  known: dict[str, str] | None = None) -> list[dict]:
    """Apply batches one by one (one transaction each); a result per batch, in order.

    Statuses: ``applied``, ``duplicate`` (that writer's seq was applied before),
    ``rejected`` (a permanent error, given; resending will not help) and
    ``unavailable`` (transient: resend it later).  After the first unavailable batch the
    rest are not tried, so a writer's batches are never applied out of order.
    ``prepared`` holds each batch's metric segments when they came encoded.  ``mlflow``:
    the MLflow routes' own writes, which may hold the tags they keep (``cairn.mlflow.*``);
    through every other route only an admin may write those.  ``known``: run id ->
    experiment id of the batches' runs, when the caller has just read them.
    """
    if known is not None:
        known = dict(known)
    else:
        known = run_experiments(c, [b.run_id for b in batches]) if c.guard.enabled else {}
    new_experiments: dict[str, str | None] = {}
    results: list[dict] = []
    blocked = False
    for i, b in enumerate(batches):
        res: dict[str, Any] = {"writer_id": b.writer_id, "seq": b.seq, "run_id": b.run_id}
        if blocked:
            res["status"] = "unavailable"
            results.append(res)
            continue
        try:
            check_batch(b)
            if not mlflow:
                check_reserved_tags(c, p, [*b.tags, *b.deleted_tags])
            if b.create is not None and b.run_id in known:
                # The run exists: a creation record changes nothing of it, and must not
                # make the experiment it names (that needs its own role).
                b = dataclasses.replace(b, create=None)
            target = _authorize(c, p, b, known, new_experiments)
            if target is not None and _sets_expiry(b):
                c.guard.require(p, "admin", "experiment", target)
            if b.artifacts and c.settings.check_artifact_objects:
                missing = c.objects.missing(referenced_oids(b.artifacts))
                if missing:
                    raise Conflict(f"{len(missing)} artifact object(s) are not on the server yet; "
                                   "upload them first (POST /api/v1/objects/missing, then PUT "
                                   "/api/v1/objects/{oid})", missing=sorted(missing)[:20])
            applied = _write(c, b, prepared[i] if prepared is not None else None)
            res["status"] = "applied" if applied else "duplicate"
            if b.create is not None and target is not None:
                known[b.run_id] = target
        except StoreUnavailable as exc:
            res["status"] = "unavailable"
            res["error"] = error_to_json(exc)
            blocked = True
        except CairnError as exc:
            res["status"] = "rejected"
            res["error"] = error_to_json(exc)
        results.append(res)
    return results


# A run's artifact TTL (cairn.lifecycle.retention): once its expiry passes, `cairn gc`
# collects the run's files, so writing these tags is what the TTL route is, an
# experiment admin's act, whichever route the tag comes through.
EXPIRY_TAGS = frozenset({EXPIRES_TAG, TTL_TAG})


def _sets_expiry(b: RecordBatch) -> bool:
    return any(k in EXPIRY_TAGS for k in (*b.tags, *b.deleted_tags))


def _write(c: ServerContext, b: RecordBatch, segs: list | None = None) -> bool:
    if isinstance(c.store, PreparedWrites):
        if segs is None:
            segs = [seglib.prepare(k, *a) for k, a in b.metrics.items()]
        return c.store.write_prepared(b, segs)
    c.store.write(b)
    return True


def _authorize(c: ServerContext, p: Principal, b: RecordBatch, known: dict[str, str],
               new_experiments: dict[str, str | None]) -> str | None:
    """Check ``p`` may write ``b``; for a run's creation, the id of the experiment the run
    goes to (None when auth is off)."""
    if not c.guard.enabled:
        return None
    exp = known.get(b.run_id)
    if exp is not None:  # an existing run, whatever a create field claims
        c.guard.require(p, "editor", "experiment", exp)
        return exp
    if b.create is not None:
        target = _create_target(c, b.create, new_experiments)
        if target is None:  # the batch would create the experiment
            c.guard.require_global(p, "editor", "experiment")
            return str(b.create["experiment_id"])
        c.guard.require(p, "editor", "experiment", target)
        return target
    return None


def _create_target(c: ServerContext, create: Any, cache: dict[str, str | None]) -> str | None:
    """The existing experiment a run's creation puts it in: the one of its id, else the one
    of its name (a run started while the server was unreachable, or brought by `cairn
    sync`, names an experiment id this server never gave; the store joins it to the
    experiment of that name); None when neither exists and the batch creates it."""
    exp_id, name = str(create.get("experiment_id", "")), create.get("experiment_name")
    key = f"{exp_id}\0{name}"
    if key not in cache:
        try:
            cache[key] = c.store.get_experiment(exp_id).id
        except NotFound:
            found = c.store.get_experiment_by_name(name) if isinstance(name, str) and name \
                else None
            cache[key] = None if found is None else found.id
    return cache[key]
    # an unknown run without create: the store answers NotFound
