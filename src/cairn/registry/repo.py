"""Registry rows in and out: every query the registry makes, in SQLAlchemy Core.

Rows never leave this module; callers get entities.  Functions take the caller's
connection so that a mutation, its history event and its audit event share one
transaction.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..errors import NotFound
from ..store.sql import tables as T
from . import audit
from .entities import (
    Approval, HistoryEvent, ModelVersion, RegisteredModel, SigningKey, Stage, StagePolicy,
    TransitionRequest,
)
from .semver import SemVer

MV = T.model_versions
ORDER = (MV.c.major, MV.c.minor, MV.c.patch)
# A version in the trash (revision 0010) keeps its row, with ``deleted_at`` set, until the
# trash is emptied: every read below sees live versions only.
LIVE = MV.c.deleted_at.is_(None)
# Stages that keep one version at a time unless a policy says otherwise.
EXCLUSIVE_BY_DEFAULT = (Stage.PRODUCTION.value,)


def iso_ms(ms: int) -> str:
    """An epoch-ms time as ISO 8601 UTC, for messages."""
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).isoformat(timespec="seconds")


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _loads(text: str | None, default: Any) -> Any:
    return default if text is None else json.loads(text)


# -- the record digest --------------------------------------------------------
IMMUTABLE = ("name", "version", "tree_oid", "flavor", "source_run_id", "signature",
             "requirements", "parent_version", "bump", "bump_reasons", "metrics", "params",
             "datasets", "lineage", "fingerprint", "description", "created_by", "created_at")
_JSON_FIELDS = ("signature", "requirements", "bump_reasons", "metrics", "params", "datasets",
                "lineage", "fingerprint")


def record_digest(values: dict[str, Any]) -> str:
    """SHA-256 over every immutable field of a version (JSON fields as parsed values)."""
    doc: dict[str, Any] = {"format": "cairn.model-version/1"}
    for key in IMMUTABLE:
        value = values.get(key)
        if key in _JSON_FIELDS and isinstance(value, str):
            value = json.loads(value)
        doc[key] = value
    return hashlib.sha256(dumps(doc).encode()).hexdigest()


# -- models -------------------------------------------------------------------
def model_row(conn: Connection, name: str) -> sa.Row[Any] | None:
    return conn.execute(sa.select(T.registered_models)
                        .where(T.registered_models.c.name == name)).first()


def require_model(conn: Connection, name: str) -> sa.Row[Any]:
    row = model_row(conn, name)
    if row is None:
        raise NotFound(f"no registered model named {name!r}; `cairn models ls` lists them",
                       name=name)
    return row


def insert_model(conn: Connection, name: str, description: str, tags: dict, actor: str, now: int) -> None:
    conn.execute(sa.insert(T.registered_models).values(
        name=name, description=description or "", tags=dumps(tags or {}), created_by=actor,
        created_at=now, updated_at=now))


def touch_model(conn: Connection, name: str, now: int) -> None:
    conn.execute(sa.update(T.registered_models).where(T.registered_models.c.name == name)
                 .values(updated_at=now))


def to_model(conn: Connection, row: sa.Row[Any], rows: Sequence[sa.Row[Any]] | None = None,
             alias_map: dict[str, str] | None = None) -> RegisteredModel:
    """Model ``row`` as a value; ``rows`` (its :func:`version_rows`) and ``alias_map`` (its
    :func:`aliases`) when the caller has read them already."""
    rows = version_rows(conn, row.name) if rows is None else rows
    stages: dict[str, list[str]] = {}
    for r in rows:
        stages.setdefault(r.stage, []).append(r.version)
    return RegisteredModel(row.name, row.description, row.created_by, row.created_at,
                           row.updated_at, json.loads(row.tags),
                           rows[-1].version if rows else None,
                           aliases(conn, row.name) if alias_map is None else alias_map,
                           {k: tuple(v) for k, v in stages.items()})


def list_models(conn: Connection) -> list[RegisteredModel]:
    rows = conn.execute(sa.select(T.registered_models).order_by(T.registered_models.c.name)).all()
    return [to_model(conn, r) for r in rows]


# -- versions -----------------------------------------------------------------
def version_rows(conn: Connection, name: str, stage: str | None = None,
                 trashed: bool = False) -> Sequence[sa.Row[Any]]:
    """Live versions of ``name`` (``trashed``: those in the trash too)."""
    q = sa.select(MV).where(MV.c.name == name)
    if not trashed:
        q = q.where(LIVE)
    if stage is not None:
        q = q.where(MV.c.stage == stage)
    return conn.execute(q.order_by(*ORDER)).all()


def version_row(conn: Connection, name: str, version: str) -> sa.Row[Any] | None:
    return conn.execute(sa.select(MV).where(MV.c.name == name, MV.c.version == version,
                                            LIVE)).first()


def trashed_row(conn: Connection, name: str, version: str) -> sa.Row[Any] | None:
    """Version ``name/version`` if it is in the trash."""
    return conn.execute(sa.select(MV).where(MV.c.name == name, MV.c.version == version,
                                            MV.c.deleted_at.is_not(None))).first()


def trashed_rows(conn: Connection) -> Sequence[sa.Row[Any]]:
    """Every version in the trash, oldest deletion first."""
    return conn.execute(sa.select(MV).where(MV.c.deleted_at.is_not(None))
                        .order_by(MV.c.deleted_at, MV.c.name, *ORDER)).all()


def in_trash(name: str, version: str, deleted_at: int, deleted_by: str | None) -> str:
    """What a read of a version in the trash is told."""
    return (f"{name}/{version} is in the trash (deleted {iso_ms(deleted_at)}"
            f"{f' by {deleted_by}' if deleted_by else ''}); restore it with `cairn models "
            f"restore {name} {version}` (or Client.restore_model_version) before the trash "
            "is emptied")


def require_version(conn: Connection, name: str, version: str) -> sa.Row[Any]:
    row = version_row(conn, name, version)
    if row is None:
        require_model(conn, name)
        gone = trashed_row(conn, name, version)
        if gone is not None:
            raise NotFound(in_trash(name, version, gone.deleted_at, gone.deleted_by),
                           name=name, version=version, trashed=True)
        known = [r.version for r in version_rows(conn, name)]
        shown = ", ".join(known[-5:]) or "none yet"
        raise NotFound(f"model {name!r} has no version {version!r} (latest versions: {shown})",
                       name=name, version=version)
    return row


def latest_row(conn: Connection, name: str) -> sa.Row[Any] | None:
    return conn.execute(sa.select(MV).where(MV.c.name == name, LIVE)
                        .order_by(*(c.desc() for c in ORDER)).limit(1)).first()


def aliases(conn: Connection, name: str) -> dict[str, str]:
    A = T.model_aliases
    return dict(conn.execute(sa.select(A.c.alias, A.c.version).where(A.c.name == name)
                             .order_by(A.c.alias)).all())


def to_version(row: sa.Row[Any], alias_map: dict[str, str] | None = None) -> ModelVersion:
    names = tuple(a for a, v in (alias_map or {}).items() if v == row.version)
    return ModelVersion(
        name=row.name, version=row.version, stage=row.stage, stage_since=row.stage_since,
        tree_oid=row.tree_oid, flavor=row.flavor, created_by=row.created_by,
        created_at=row.created_at, digest=row.digest, bump=row.bump,
        bump_reasons=tuple(json.loads(row.bump_reasons)), source_run_id=row.source_run_id,
        signature=_loads(row.signature, None), requirements=json.loads(row.requirements),
        parent=row.parent_version, metrics=json.loads(row.metrics), params=json.loads(row.params),
        datasets=tuple(json.loads(row.datasets)), lineage=json.loads(row.lineage),
        fingerprint=json.loads(row.fingerprint), description=row.description,
        signing_key=row.signing_key,
        signature_bytes=None if row.signature_bytes is None else bytes(row.signature_bytes),
        aliases=names)


def row_values(row: sa.Row[Any]) -> dict[str, Any]:
    return dict(row._mapping)


def insert_version(conn: Connection, values: dict[str, Any]) -> None:
    v = SemVer.parse(values["version"])
    conn.execute(sa.insert(MV).values(major=v.major, minor=v.minor, patch=v.patch, **values))


def set_stage(conn: Connection, name: str, version: str, stage: str, now: int) -> None:
    conn.execute(sa.update(MV).where(MV.c.name == name, MV.c.version == version)
                 .values(stage=stage, stage_since=now))


def versions_for_run(conn: Connection, run_id: str) -> list[ModelVersion]:
    return [to_version(r) for r in conn.execute(sa.select(MV).where(MV.c.source_run_id == run_id,
                                                                    LIVE)
                                                .order_by(MV.c.name, *ORDER)).all()]


# -- aliases ------------------------------------------------------------------
def set_alias(conn: Connection, name: str, alias: str, version: str, actor: str, now: int) -> str | None:
    A = T.model_aliases
    old = conn.execute(sa.select(A.c.version).where(A.c.name == name, A.c.alias == alias)).scalar()
    if old is None:
        conn.execute(sa.insert(A).values(name=name, alias=alias, version=version, updated_by=actor,
                                         updated_at=now))
    else:
        conn.execute(sa.update(A).where(A.c.name == name, A.c.alias == alias)
                     .values(version=version, updated_by=actor, updated_at=now))
    return old


def delete_alias(conn: Connection, name: str, alias: str) -> str | None:
    A = T.model_aliases
    old = conn.execute(sa.select(A.c.version).where(A.c.name == name, A.c.alias == alias)).scalar()
    if old is not None:
        conn.execute(sa.delete(A).where(A.c.name == name, A.c.alias == alias))
    return old


# -- history ------------------------------------------------------------------
def add_history(conn: Connection, name: str, version: str | None, kind: str, actor: str, now: int,
                from_value: str | None = None, to_value: str | None = None, reason: str = "",
                request_id: str | None = None, alias: str | None = None) -> int:
    """Append one history event; returns its id."""
    res = conn.execute(sa.insert(T.model_history).values(
        name=name, version=version, kind=kind, from_value=from_value, to_value=to_value,
        alias=alias, actor=actor, time=now, reason=reason or "", request_id=request_id))
    key = res.inserted_primary_key
    assert key is not None  # an insert of one row always has one
    return int(key[0])


# A deployment event (kind ``deploy_*``) keeps its deployment id in the ``alias`` column and
# its arm in ``request_id``: both are free for such events, and reusing them spares every
# store a schema migration.  Rows never leave this module, so only here is that known.
DEPLOY_PREFIX = "deploy_"


def add_deployment(conn: Connection, name: str, version: str, kind: str, actor: str, now: int,
                   previous: str | None, reason: str, deployment: str, arm: str) -> HistoryEvent:
    eid = add_history(conn, name, version, kind, actor, now, previous, version, reason,
                      request_id=arm, alias=deployment)
    return HistoryEvent(eid, name, version, kind, previous, version, actor, now, reason,
                        deployment=deployment, arm=arm)


def _history_event(r: sa.Row[Any]) -> HistoryEvent:
    if r.kind.startswith(DEPLOY_PREFIX):
        return HistoryEvent(r.id, r.name, r.version, r.kind, r.from_value, r.to_value, r.actor,
                            r.time, r.reason, deployment=r.alias, arm=r.request_id)
    return HistoryEvent(r.id, r.name, r.version, r.kind, r.from_value, r.to_value, r.actor,
                        r.time, r.reason, r.request_id, r.alias)


def history(conn: Connection, name: str, version: str | None = None, until: int | None = None,
            kinds: Iterable[str] | None = None, deployment: str | None = None
            ) -> list[HistoryEvent]:
    H = T.model_history
    q = sa.select(H).where(H.c.name == name)
    if version is not None:
        q = q.where(H.c.version == version)
    if until is not None:
        q = q.where(H.c.time <= until)
    if kinds is not None:
        q = q.where(H.c.kind.in_(list(kinds)))
    if deployment is not None:
        q = q.where(H.c.kind.startswith(DEPLOY_PREFIX, autoescape=True), H.c.alias == deployment)
    return [_history_event(r) for r in conn.execute(q.order_by(H.c.id))]


# -- policies -----------------------------------------------------------------
def policy(conn: Connection, name: str, stage: str) -> StagePolicy:
    P = T.stage_policies
    row = conn.execute(sa.select(P).where(P.c.name == name, P.c.stage == stage)).first()
    if row is None:
        return StagePolicy(name, stage, 0, None, stage in EXCLUSIVE_BY_DEFAULT)
    approvers = _loads(row.approvers, None)
    return StagePolicy(name, stage, row.approvals, None if approvers is None else tuple(approvers),
                       bool(row.exclusive))


def policies(conn: Connection, name: str) -> list[StagePolicy]:
    return [policy(conn, name, s.value) for s in Stage]


def save_policy(conn: Connection, p: StagePolicy, actor: str, now: int) -> None:
    P = T.stage_policies
    values = dict(approvals=p.approvals,
                  approvers=None if p.approvers is None else dumps(list(p.approvers)),
                  exclusive=int(p.exclusive), updated_by=actor, updated_at=now)
    exists = conn.execute(sa.select(P.c.name).where(P.c.name == p.name, P.c.stage == p.stage)).first()
    if exists:
        conn.execute(sa.update(P).where(P.c.name == p.name, P.c.stage == p.stage).values(**values))
    else:
        conn.execute(sa.insert(P).values(name=p.name, stage=p.stage, **values))


def policy_json(p: StagePolicy) -> dict[str, Any]:
    return {"stage": p.stage, "approvals": p.approvals,
            "approvers": None if p.approvers is None else list(p.approvers),
            "exclusive": p.exclusive}


# -- transition requests -----------------------------------------------------
def request_row(conn: Connection, request_id: str) -> sa.Row[Any] | None:
    R = T.transition_requests
    return conn.execute(sa.select(R).where(R.c.id == request_id)).first()


def require_request(conn: Connection, request_id: str) -> sa.Row[Any]:
    row = request_row(conn, str(request_id))
    if row is None:
        raise NotFound(f"no transition request {request_id!r}; `cairn models requests NAME` "
                       "lists them", request_id=request_id)
    return row


def approvals_of(conn: Connection, request_id: str) -> list[Approval]:
    A = T.transition_approvals
    return [Approval(r.user, r.decision, r.comment, r.time) for r in conn.execute(
        sa.select(A).where(A.c.request_id == request_id).order_by(A.c.time, A.c.user))]


def to_request(conn: Connection, row: sa.Row[Any]) -> TransitionRequest:
    required = policy(conn, row.name, row.to_stage).approvals
    return TransitionRequest(row.id, row.name, row.version, row.from_stage, row.to_stage,
                             row.status, row.comment, row.requested_by, row.requested_at,
                             row.resolved_by, row.resolved_at, tuple(approvals_of(conn, row.id)),
                             required)


def list_requests(conn: Connection, name: str | None, status: str | None) -> list[TransitionRequest]:
    R = T.transition_requests
    q = sa.select(R)
    if name is not None:
        q = q.where(R.c.name == name)
    if status is not None:
        q = q.where(R.c.status == status)
    return [to_request(conn, r) for r in conn.execute(q.order_by(R.c.requested_at, R.c.id)).all()]


def pending_request(conn: Connection, name: str, version: str, stage: str) -> sa.Row[Any] | None:
    R = T.transition_requests
    return conn.execute(sa.select(R).where(R.c.name == name, R.c.version == version,
                                           R.c.to_stage == stage, R.c.status == "pending")).first()


def run_inputs(conn: Connection, run_id: str) -> list[dict[str, Any]]:
    """Data set versions a run logged as inputs (the data-set tables, when present)."""
    table = T.metadata.tables.get("run_inputs")
    if table is None:
        return []
    rows = conn.execute(sa.select(table.c.dataset, table.c.version, table.c.role)
                        .where(table.c.run_id == run_id)).all()
    return [{"name": r.dataset, "version": str(r.version), "role": r.role} for r in rows]


# -- settings and keys --------------------------------------------------------
def get_setting(conn: Connection, key: str) -> Any:
    value = conn.execute(sa.select(T.registry_settings.c.value)
                         .where(T.registry_settings.c.key == key)).scalar()
    return None if value is None else json.loads(value)


def put_setting(conn: Connection, key: str, value: Any) -> None:
    S = T.registry_settings
    conn.execute(sa.delete(S).where(S.c.key == key))
    if value is not None:
        conn.execute(sa.insert(S).values(key=key, value=dumps(value)))


# Settings that belong to one model (what only MLflow has of a version, the versions that
# were deleted) embed model_key(name) as a path segment, "PREFIX/<model key>[/VERSION]", so
# that renaming or deleting a model carries or drops them without knowing their prefixes.
def model_key(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:32]


def _model_settings(name: str, version: str | None = None) -> Any:
    S = T.registry_settings
    k = model_key(name)
    if version is not None:
        return S.c.key.endswith(f"/{k}/{version}", autoescape=True)
    return sa.or_(S.c.key.contains(f"/{k}/", autoescape=True),
                  S.c.key.endswith(f"/{k}", autoescape=True))


def drop_model_settings(conn: Connection, name: str, version: str | None = None) -> None:
    """Forget the settings of model ``name`` (or of one of its versions)."""
    conn.execute(sa.delete(T.registry_settings).where(_model_settings(name, version)))


def rename_model_settings(conn: Connection, old: str, new: str) -> None:
    S = T.registry_settings
    k_old, k_new = model_key(old), model_key(new)
    drop_model_settings(conn, new)  # left behind by nothing, but never merged into
    for key in conn.execute(sa.select(S.c.key).where(_model_settings(old))).scalars().all():
        head, _, tail = key.partition(f"/{k_old}")
        conn.execute(sa.update(S).where(S.c.key == key).values(key=f"{head}/{k_new}{tail}"))


DELETED_PREFIX = "registry.deleted/"


def deleted_versions(conn: Connection, name: str) -> dict[str, int]:
    """Versions of ``name`` that were deleted (version -> created time): their numbers are
    never given again, and MLflow's version numbers keep counting them."""
    return dict(get_setting(conn, DELETED_PREFIX + model_key(name)) or {})


def add_deleted(conn: Connection, name: str, version: str, created_at: int) -> None:
    gone = deleted_versions(conn, name)
    gone[version] = created_at
    put_setting(conn, DELETED_PREFIX + model_key(name), gone)


def remove_deleted(conn: Connection, name: str, version: str) -> None:
    """A restored version counts as deleted no more."""
    gone = deleted_versions(conn, name)
    if gone.pop(version, None) is not None:
        put_setting(conn, DELETED_PREFIX + model_key(name), gone or None)


def top_version(latest: sa.Row[Any] | None, deleted: Iterable[str]) -> SemVer | None:
    """The highest version a model has had, deleted ones included, from its latest version
    row (:func:`latest_row`) and its deleted versions (:func:`deleted_versions`)."""
    tops = [SemVer.parse(v) for v in deleted]
    if latest is not None:
        tops.append(SemVer.parse(latest.version))
    return max(tops) if tops else None


def keys(conn: Connection, include_revoked: bool = False) -> list[SigningKey]:
    K = T.signing_keys
    q = sa.select(K).order_by(K.c.created_at, K.c.key_id)
    if not include_revoked:
        q = q.where(K.c.revoked_at.is_(None))
    return [SigningKey(r.key_id, r.name, r.public_key, r.created_by, r.created_at, r.revoked_at)
            for r in conn.execute(q)]


def key_row(conn: Connection, key_id: str) -> sa.Row[Any] | None:
    K = T.signing_keys
    return conn.execute(sa.select(K).where(K.c.key_id == key_id)).first()


def insert_key(conn: Connection, key_id: str, name: str, pem: str, actor: str, now: int) -> None:
    conn.execute(sa.insert(T.signing_keys).values(key_id=key_id, name=name, public_key=pem,
                                                  created_by=actor, created_at=now))


def revoke_key(conn: Connection, key_id: str, now: int) -> None:
    K = T.signing_keys
    conn.execute(sa.update(K).where(K.c.key_id == key_id).values(revoked_at=now))


def record(conn: Connection, actor: str, action: str, target: str, before: Any, after: Any,
           now: int) -> None:
    """The audit event of a mutation, in the caller's transaction."""
    audit.append(conn, actor, action, target, before, after, now)
