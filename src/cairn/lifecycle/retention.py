"""Retention policies per experiment and per data set, and time-to-live on run artifacts.

A policy says what to keep; everything else in its experiment (runs) or data set
(versions) goes to the trash when the policy is applied (``cairn gc`` applies every
policy first; ``cairn retention plan`` shows what that would do).  Nothing is removed
here: the trash keeps what retention moved there for ``CAIRN_TRASH_DAYS``, restorable.

Policies live in the ``retention_policies`` table (kind ``experiment`` with the
experiment's id, or ``dataset`` with the data set's name; the policy as JSON).  Every
change of a policy and every action taken is an event of the registry's audit log.

Artifact TTL (as W&B's): a run's artifacts expire ``artifacts_ttl_days`` after the run
ended.  The expiry is written ahead, as the run tag ``cairn.artifacts.expires`` (epoch
ms, decimal); from that time garbage collection treats the objects only that run's
artifacts refer to as garbage, unless the run is kept (tagged ``keep``, or the source of
a live registered model version).  The run itself stays.  A TTL set on one run
(:func:`set_artifacts_ttl`, tag ``cairn.artifacts.ttl_days``) wins over its
experiment's policy.

A policy under which a run or data set version feeding a model version in Production,
or one with an alias, would be trashed is refused, when it is set and when it is
applied, naming the model version.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field, replace
from typing import Any, Iterator, Mapping, Sequence

from .. import clock
from ..errors import Conflict, InvalidArgument, NotFound
from ..store.validation import check_key, check_text
from .heartbeats import DAY_MS, last_beat

__all__ = ["ACTOR", "DAY_MS", "EXPIRES_TAG", "KEEP_TAG", "KINDS", "TTL_TAG", "Action", "Policy",
           "PolicyRecord", "RetentionReport", "apply", "artifacts_expired", "expires_at",
           "expiry_message", "get_policy", "list_policies", "plan", "set_artifacts_ttl",
           "set_policy", "unset_policy"]

#: The run tag with the time (epoch ms, decimal) a run's artifacts expire at.
EXPIRES_TAG = "cairn.artifacts.expires"
#: The run tag of a TTL set on that run itself (days; it wins over the experiment's policy).
TTL_TAG = "cairn.artifacts.ttl_days"
#: The run tag that keeps a run (and its artifacts) whatever a policy says.
KEEP_TAG = "keep"
#: Who retention acts as when ``cairn gc`` applies the policies.
ACTOR = "cairn-retention"
KINDS = ("experiment", "dataset")
MAX_DAYS = 36_500  # a century: beyond that a number is a typo, and ms would overflow nothing
_FALSE = frozenset({"false", "0", "no", "off"})


# -- the policy value ----------------------------------------------------------------

def _days(value: Any, field_name: str, low: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"retention {field_name} must be a whole number of "
                              f"{'runs or versions' if field_name == 'keep_last' else 'days'}, "
                              f"got {value!r}", field=field_name)
    if not low <= value <= MAX_DAYS:
        raise InvalidArgument(f"retention {field_name} must be between {low} and {MAX_DAYS}, "
                              f"got {value}", field=field_name)
    return value


@dataclass(frozen=True, slots=True)
class Policy:
    """What a retention policy keeps.

    ``keep_days``: runs (data set versions) older than this many days go to the trash;
    ``keep_last``: the newest this many are kept whatever their age (with both, a run
    goes only when it is outside the newest ``keep_last`` *and* older than ``keep_days``);
    ``keep_registered``: never touch the source run of a live registered model version,
    nor a data set version one was trained on; ``keep_tagged``: the run tag that keeps
    a run (default ``keep``; None: no tag keeps one).  A data set version with an alias,
    and a data set's latest version, are always kept.  ``artifacts_ttl_days``: the
    artifacts of a run expire this many days after it ended (experiments only).
    """

    keep_days: int | None = None
    keep_last: int | None = None
    keep_registered: bool = True
    keep_tagged: str | None = KEEP_TAG
    artifacts_ttl_days: int | None = None

    def __post_init__(self) -> None:
        _days(self.keep_days, "keep_days", 1)
        _days(self.keep_last, "keep_last", 1)
        _days(self.artifacts_ttl_days, "artifacts_ttl_days", 0)
        if not isinstance(self.keep_registered, bool):
            raise InvalidArgument(f"retention keep_registered must be true or false, got "
                                  f"{self.keep_registered!r}", field="keep_registered")
        if self.keep_tagged is not None:
            check_text(self.keep_tagged, "retention keep_tagged")
            try:  # a tag no run can carry would keep nothing, silently
                check_key(self.keep_tagged, "tag")
            except InvalidArgument as exc:
                raise InvalidArgument("retention keep_tagged must be a tag name (1 to 250 "
                                      f"characters) or null: {exc.message}",
                                      field="keep_tagged") from None

    @property
    def deletes(self) -> bool:
        """Whether the policy ever moves anything to the trash."""
        return self.keep_days is not None or self.keep_last is not None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Policy":
        if not isinstance(data, Mapping):
            raise InvalidArgument(f"a retention policy must be a JSON object, got {data!r}")
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            raise InvalidArgument(f"unknown retention policy field(s) {', '.join(unknown)}; "
                                  f"use {', '.join(sorted(known))}")
        return cls(**{str(k): v for k, v in data.items()})

    def to_dict(self) -> dict[str, Any]:
        return {"keep_days": self.keep_days, "keep_last": self.keep_last,
                "keep_registered": self.keep_registered, "keep_tagged": self.keep_tagged,
                "artifacts_ttl_days": self.artifacts_ttl_days}

    def describe(self) -> str:
        parts = []
        if self.keep_last is not None:
            parts.append(f"keep the last {self.keep_last}")
        if self.keep_days is not None:
            parts.append(f"keep {self.keep_days} days")
        if self.artifacts_ttl_days is not None:
            parts.append(f"artifacts expire {self.artifacts_ttl_days} days after the run")
        parts.append("keep registered" if self.keep_registered else "registered not kept")
        if self.keep_tagged:
            parts.append(f"keep tagged {self.keep_tagged!r}")
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class PolicyRecord:
    """A stored policy: ``kind`` experiment or dataset, ``target`` the experiment id or
    data set name, ``label`` what a person calls it (the experiment's name)."""

    kind: str
    target: str
    policy: Policy
    updated_by: str
    updated_at: int
    label: str = ""

    @property
    def ref(self) -> str:
        """How actions and audit events name the policy: ``experiment:ID``, ``dataset:NAME``."""
        return f"{self.kind}:{self.target}"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PolicyRecord":
        return cls(d["kind"], d["target"], Policy.from_dict(d["policy"]), d["updated_by"],
                   d["updated_at"], d.get("label") or "")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "target": self.target, "label": self.label or self.target,
                "policy": self.policy.to_dict(), "updated_by": self.updated_by,
                "updated_at": self.updated_at}


@dataclass(frozen=True, slots=True)
class Action:
    """One thing retention does (or would do), and why.

    ``kind``: ``trash_run``, ``trash_dataset_version``, ``set_artifacts_expiry``
    (``expires_at`` the new expiry), ``clear_artifacts_expiry`` (the policy no longer
    sets one), or ``refused`` (the policy would trash what a Production or aliased model
    version needs: nothing is applied while one is planned).  ``target``: ``run:ID`` or
    ``dataset:NAME@VERSION``; ``policy``: ``experiment:ID`` or ``dataset:NAME``.
    """

    kind: str
    target: str
    policy: str
    reason: str
    expires_at: int | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Action":
        return cls(d["kind"], d["target"], d["policy"], d["reason"], d.get("expires_at"))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "target": self.target, "policy": self.policy,
                               "reason": self.reason}
        if self.expires_at is not None:
            out["expires_at"] = self.expires_at
        return out


@dataclass(frozen=True, slots=True)
class RetentionReport:
    """What :func:`apply` did (``dry_run``: would do): ``actions`` in order."""

    actions: tuple[Action, ...]
    dry_run: bool
    now_ms: int
    trashed_runs: int = 0
    trashed_versions: int = 0
    expiries_set: int = 0
    skipped: tuple[str, ...] = field(default=())  # actions a concurrent change made moot

    def to_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "now_ms": self.now_ms,
                "trashed_runs": self.trashed_runs, "trashed_versions": self.trashed_versions,
                "expiries_set": self.expiries_set, "skipped": list(self.skipped),
                "actions": [a.to_dict() for a in self.actions]}


# -- tags ------------------------------------------------------------------------------

def expires_at(tags: Mapping[str, str]) -> int | None:
    """When a run's artifacts expire (epoch ms), from its tags; None: they do not."""
    value = tags.get(EXPIRES_TAG)
    if value is None:
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None  # a hand-edited tag that is not a time expires nothing


def is_kept(tags: Mapping[str, str], keep_tag: str | None = KEEP_TAG) -> bool:
    """A run tagged ``keep`` (any value but false/0/no/off) is kept."""
    if not keep_tag or keep_tag not in tags:
        return False
    return str(tags[keep_tag]).strip().lower() not in _FALSE


def artifacts_expired(tags: Mapping[str, str], now_ms: int) -> bool:
    """Whether a run's artifacts have expired at ``now_ms`` (kept runs never expire)."""
    when = expires_at(tags)
    return when is not None and when <= now_ms and not is_kept(tags)


def iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def expiry_message(run_id: str, tags: Mapping[str, str], now_ms: int | None = None) -> str | None:
    """What a read of an artifact that garbage collection took is told, when the run's
    artifact TTL has passed (None when it has not)."""
    now = clock.now_ms() if now_ms is None else now_ms
    if not artifacts_expired(tags, now):
        return None
    when = expires_at(tags)
    assert when is not None
    return (f"the artifacts of run {run_id} expired on {iso(when)} (artifact TTL) and their "
            "files were removed by garbage collection")


# -- the store -------------------------------------------------------------------------

def _index(store: Any) -> Any:
    from ..store.base import Indexed

    if not isinstance(store, Indexed):
        raise InvalidArgument(
            f"retention policies live in a store's database (a local store directory or a "
            f"server's PostgreSQL), not {getattr(store, 'uri', store)!r}: run `cairn retention` "
            "on the server's store (cairn --store postgresql://... retention ...)")
    store.open()
    return store.index


def _remote(store: Any) -> Any | None:
    """The store if it is a Cairn server's client: policies are then the server's, set
    through its REST routes (``/api/v1/retention``), where its roles are checked."""
    from ..store.base import RemoteServer

    return store if isinstance(store, RemoteServer) else None


def _path(kind: str, key: str) -> str:
    import urllib.parse

    return f"/retention/{kind}s/{urllib.parse.quote(key, safe='/')}"


def _remote_key(store: Any, kind: str, target: str) -> str:
    if kind == "experiment":
        return str(_experiment(store, target).id)
    from ..data.entities import check_name

    check_text(target, "data set name")
    return check_name(target)


def _actor(actor: str | None) -> str:
    """Who a change is recorded as: ``actor``, or the current user (CAIRN_USER, the login)."""
    if actor is None:
        from ..client import default_user

        return default_user()
    check_text(actor, "actor")
    if not actor:
        raise InvalidArgument("actor must name who acts, got an empty string")
    return actor


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise InvalidArgument(f"unknown retention policy kind {kind!r}; use experiment or dataset")
    return kind


def _experiment(store: Any, ref: str) -> Any:
    """An experiment by id or name (a live one: a deleted experiment is already in the trash)."""
    check_text(ref, "experiment")
    if not ref:
        raise InvalidArgument("experiment must be a name or id, got an empty string")
    exp = store.get_experiment_by_name(ref)
    if exp is None:
        try:
            exp = store.get_experiment(ref)
        except (NotFound, InvalidArgument):
            exp = None
    if exp is None:
        raise NotFound(f"no experiment named or numbered {ref!r}; `cairn experiments ls` lists "
                       "them", experiment=ref)
    return exp


def _dataset(conn: Any, name: str) -> str:
    import sqlalchemy as sa

    from ..data.entities import check_name
    from ..store.sql import tables_data as TD

    check_text(name, "data set name")
    check_name(name)
    if conn.execute(sa.select(TD.datasets.c.name).where(TD.datasets.c.name == name)).first() is None:
        raise NotFound(f"no data set named {name!r}; `cairn data ls` lists them", dataset=name)
    return name


def _resolve(store: Any, conn: Any, kind: str, target: str) -> tuple[str, str]:
    """(stored target, label) for a policy on ``kind`` ``target`` (an experiment's name or id)."""
    if kind == "experiment":
        exp = _experiment(store, target)
        return exp.id, exp.name
    name = _dataset(conn, target)
    return name, name


def _records(store: Any, conn: Any, kind: str | None = None,
             target: str | None = None) -> list[PolicyRecord]:
    import sqlalchemy as sa

    from ..store.sql import tables as T

    P = T.retention_policies
    q = sa.select(P)
    if kind is not None:
        q = q.where(P.c.kind == kind)
    if target is not None:
        q = q.where(P.c.target == target)
    out = []
    for row in conn.execute(q.order_by(P.c.kind, P.c.target)):
        label = row.target
        if row.kind == "experiment":
            try:
                label = store.get_experiment(row.target).name
            except NotFound:
                pass
        out.append(PolicyRecord(row.kind, row.target, Policy.from_dict(json.loads(row.policy)),
                                row.updated_by, row.updated_at, label))
    return out


def get_policy(store: Any, kind: str, target: str) -> PolicyRecord | None:
    """The policy on experiment ``target`` (name or id) or data set ``target``; None if none."""
    if _remote(store) is not None:
        key = _remote_key(store, _check_kind(kind), target)
        got = store.call("GET", _path(kind, key))["policy"]
        return None if got is None else PolicyRecord.from_dict(got)
    index = _index(store)
    with index.session() as conn:
        key, _ = _resolve(store, conn, _check_kind(kind), target)
        found = _records(store, conn, kind, key)
    return found[0] if found else None


def list_policies(store: Any) -> list[PolicyRecord]:
    """Every stored policy, experiments first (from a server: those the caller may see)."""
    if _remote(store) is not None:
        return [PolicyRecord.from_dict(d) for d in store.call("GET", "/retention")["policies"]]
    index = _index(store)
    with index.session() as conn:
        return _records(store, conn)


def set_policy(store: Any, kind: str, target: str, policy: Policy | Mapping[str, Any], *,
               actor: str | None = None, now_ms: int | None = None) -> PolicyRecord:
    """Store ``policy`` for experiment ``target`` (name or id) or data set ``target``,
    replacing any; audited.  Refused (Conflict) if under it a run or data set version that
    a Production or aliased model version needs would be trashed."""
    import sqlalchemy as sa

    from ..registry import audit
    from ..store.sql import tables as T

    pol = policy if isinstance(policy, Policy) else Policy.from_dict(policy)
    actor = _actor(actor)
    _check_kind(kind)
    if kind == "dataset" and pol.artifacts_ttl_days is not None:
        raise InvalidArgument("artifacts_ttl_days is for experiments (a run's artifacts); a "
                              "data set version's files are kept or trashed with it")
    if _remote(store) is not None:  # the server checks the caller's role and acts as them
        key = _remote_key(store, kind, target)
        return PolicyRecord.from_dict(store.call("PUT", _path(kind, key), json=pol.to_dict()))
    now = clock.now_ms() if now_ms is None else now_ms
    index = _index(store)
    with index.session() as conn:
        key, label = _resolve(store, conn, kind, target)
    record = PolicyRecord(kind, key, pol, actor, now, label)
    refused = [a for a in _plan_one(store, record, now) if a.kind == "refused"]
    if refused:
        raise _refusal(refused, "set")
    P = T.retention_policies
    with index.session(write=True) as conn:
        old = conn.execute(sa.select(P.c.policy).where(P.c.kind == kind, P.c.target == key)).first()
        values = {"policy": json.dumps(pol.to_dict(), sort_keys=True), "updated_by": actor,
                  "updated_at": now}
        if old is None:
            conn.execute(sa.insert(P).values(kind=kind, target=key, **values))
        else:
            conn.execute(sa.update(P).where(P.c.kind == kind, P.c.target == key).values(**values))
        audit.append(conn, actor, "retention.set", record.ref,
                     None if old is None else json.loads(old.policy), pol.to_dict(), now)
    return record


def unset_policy(store: Any, kind: str, target: str, *, actor: str | None = None,
                 now_ms: int | None = None) -> PolicyRecord:
    """Remove the policy on ``target`` (audited) and the artifact expiries it set that have
    not passed yet; NotFound if there is none.  Returns the removed policy."""
    import sqlalchemy as sa

    from ..registry import audit
    from ..store.sql import tables as T

    actor = _actor(actor)
    _check_kind(kind)
    if _remote(store) is not None:
        key = _remote_key(store, kind, target)
        return PolicyRecord.from_dict(store.call("DELETE", _path(kind, key)))
    now = clock.now_ms() if now_ms is None else now_ms
    index = _index(store)
    P = T.retention_policies
    with index.session() as conn:
        key, label = _resolve(store, conn, kind, target)
        found = _records(store, conn, kind, key)
    if not found:
        raise NotFound(f"{kind} {label!r} has no retention policy", kind=kind, target=key)
    with index.session(write=True) as conn:
        if not conn.execute(sa.delete(P).where(P.c.kind == kind, P.c.target == key)).rowcount:
            raise NotFound(f"{kind} {label!r} has no retention policy", kind=kind, target=key)
        audit.append(conn, actor, "retention.unset", found[0].ref, found[0].policy.to_dict(),
                     None, now)
    if kind == "experiment" and found[0].policy.artifacts_ttl_days is not None:
        cleared = replace(found[0], policy=replace(found[0].policy, artifacts_ttl_days=None,
                                                   keep_days=None, keep_last=None))
        _apply_actions(store, [a for a in _plan_one(store, cleared, now)
                               if a.kind == "clear_artifacts_expiry"], actor, now)
    return found[0]


# -- planning --------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Model:
    """A live model version, and whether it is in production use (Production or aliased)."""

    ref: str  # "name/version"
    production: bool
    why: str  # "in Production", "aliased champion"


def _models(conn: Any) -> tuple[dict[str, list[_Model]], dict[tuple[str, int | None], list[_Model]]]:
    """Live model versions by source run id, and by the (data set, version) they were
    trained on (version None: a reference to the data set's latest version)."""
    import sqlalchemy as sa

    from ..store.sql import tables as T
    from ..store.sql import tables_data as TD

    MV, MA, RI = T.model_versions, T.model_aliases, TD.run_inputs
    aliases: dict[tuple[str, str], list[str]] = {}
    for a in conn.execute(sa.select(MA.c.name, MA.c.alias, MA.c.version)):
        aliases.setdefault((a.name, a.version), []).append(a.alias)
    by_run: dict[str, list[_Model]] = {}
    by_data: dict[tuple[str, int | None], list[_Model]] = {}
    rows = conn.execute(sa.select(MV.c.name, MV.c.version, MV.c.stage, MV.c.source_run_id,
                                  MV.c.datasets).where(MV.c.deleted_at.is_(None)))
    for r in rows:
        names = sorted(aliases.get((r.name, r.version), ()))
        why = (f"in {r.stage}" if r.stage == "Production" else
               f"aliased {', '.join(names)}" if names else f"in {r.stage}")
        m = _Model(f"{r.name}/{r.version}", r.stage == "Production" or bool(names), why)
        if r.source_run_id:
            by_run.setdefault(r.source_run_id, []).append(m)
        for d in json.loads(r.datasets or "[]"):
            if not isinstance(d, Mapping) or not d.get("name"):
                continue
            try:
                ver = None if d.get("version") in (None, "") else int(str(d["version"]).lstrip("v"))
            except ValueError:
                continue
            by_data.setdefault((str(d["name"]), ver), []).append(m)
    # A version the source run read is an input too (it may be logged after the model was
    # registered, so not among the named ones), as the delete's protection counts it.
    models = {m.ref: m for ms in by_run.values() for m in ms}
    for r in conn.execute(sa.select(MV.c.name, MV.c.version, RI.c.dataset,
                                    RI.c.version.label("dv"))
                          .join(RI, RI.c.run_id == MV.c.source_run_id)
                          .where(MV.c.deleted_at.is_(None))):
        m = models[f"{r.name}/{r.version}"]
        users = by_data.setdefault((r.dataset, int(r.dv)), [])
        if m not in users:
            users.append(m)
    return by_run, by_data


_NEWEST_FIRST = ("attributes.start_time DESC", "attributes.run_id ASC")


def _runs(store: Any, experiment_id: str) -> Iterator[Any]:
    token = None
    while True:
        # The run id breaks ties of start time, so a plan and its apply rank runs alike.
        page, token = store.search_runs([experiment_id], order_by=_NEWEST_FIRST,
                                        max_results=1000, page_token=token)
        yield from page
        if not token:
            return


def _run_age_from(run: Any) -> int:
    """When a run stopped changing: its end, else its last heartbeat, else its start (a
    run still being written has a fresh heartbeat, so it is never old)."""
    if run.end_time is not None:
        return int(run.end_time)
    return int(max(last_beat(run.heartbeat, clock.now_ms()), run.start_time))


def _older(since: int, days: int | None, now: int) -> bool:
    return days is None or now - since > days * DAY_MS


def _refused(target: str, rec: PolicyRecord, what: str, models: Sequence[_Model]) -> Action:
    prod = [m for m in models if m.production]
    names = "; ".join(f"model version {m.ref} ({m.why})" for m in prod)
    return Action("refused", target, rec.ref,
                  f"the retention policy of {rec.kind} {rec.label or rec.target!r} would trash "
                  f"{what}, which {names} "
                  f"{'needs' if len(prod) == 1 else 'need'}; keep registered versions "
                  "(drop --no-keep-registered) or move the model version out of Production "
                  "and remove its aliases first")


def _plan_experiment(store: Any, rec: PolicyRecord, now: int,
                     by_run: Mapping[str, list[_Model]]) -> list[Action]:
    pol, out = rec.policy, []
    for rank, run in enumerate(_runs(store, rec.target)):
        target = f"run:{run.id}"
        tags = run.tags
        models = by_run.get(run.id, [])
        kept_by_tag = is_kept(tags, pol.keep_tagged)
        registered = bool(models)
        # A run not ended is old only by its last heartbeat, so only keep_days trashes it.
        ended = run.status.terminal or pol.keep_days is not None
        trash = (pol.deletes and ended and not kept_by_tag
                 and (pol.keep_last is None or rank >= pol.keep_last)
                 and _older(_run_age_from(run), pol.keep_days, now))
        if trash and registered:
            if pol.keep_registered:
                trash = False
            elif any(m.production for m in models):
                out.append(_refused(target, rec, f"run {run.id}", models))
                continue
        if trash:
            why = []
            if pol.keep_last is not None:
                why.append(f"not among the newest {pol.keep_last} runs")
            if pol.keep_days is not None:
                why.append(f"ended {iso(_run_age_from(run))}, over {pol.keep_days} days ago")
            if registered:
                why.append("source of " + ", ".join(m.ref for m in models) +
                           " (keep_registered is off)")
            out.append(Action("trash_run", target, rec.ref, "; ".join(why)))
            continue
        out.extend(_plan_expiry(run, rec, kept_by_tag or registered, now))
    return out


def _plan_expiry(run: Any, rec: PolicyRecord, kept: bool, now: int) -> list[Action]:
    """The TTL tag a run should carry under its experiment's policy."""
    tags, ttl = run.tags, rec.policy.artifacts_ttl_days
    if TTL_TAG in tags:
        return []  # the run's own TTL wins
    current = expires_at(tags)
    if current is not None and current <= now:
        return []  # expired is final: gc may have taken the files, and the tag says when
    if ttl is None or kept or run.end_time is None:
        if current is not None and EXPIRES_TAG in tags and (ttl is None or kept):
            return [Action("clear_artifacts_expiry", f"run:{run.id}", rec.ref,
                           "kept (tagged or registered)" if kept else
                           "the policy no longer sets an artifact TTL")]
        return []
    want = int(run.end_time) + ttl * DAY_MS
    if current == want:
        return []
    return [Action("set_artifacts_expiry", f"run:{run.id}", rec.ref,
                   f"artifacts expire {ttl} days after the run ended ({iso(int(run.end_time))})",
                   want)]


def _plan_dataset(conn: Any, rec: PolicyRecord, now: int,
                  by_data: Mapping[tuple[str, int | None], list[_Model]]) -> list[Action]:
    import sqlalchemy as sa

    from ..store.sql import tables_data as TD

    pol, DV, DA = rec.policy, TD.dataset_versions, TD.dataset_aliases
    if not pol.deletes:
        return []
    versions = conn.execute(sa.select(DV.c.version, DV.c.created_at)
                            .where(DV.c.dataset == rec.target, DV.c.deleted_at.is_(None))
                            .order_by(DV.c.version.desc())).all()
    aliased: dict[int, list[str]] = {}
    for a in conn.execute(sa.select(DA.c.alias, DA.c.version).where(DA.c.dataset == rec.target)):
        aliased.setdefault(a.version, []).append(a.alias)
    latest = versions[0].version if versions else None
    out = []
    for rank, v in enumerate(versions):
        if v.version == latest or v.version in aliased:
            continue  # the latest is what the bare name means; an alias names a keeper
        if pol.keep_last is not None and rank < pol.keep_last:
            continue
        if not _older(v.created_at, pol.keep_days, now):
            continue
        ref = f"{rec.target}@{v.version}"
        models = by_data.get((rec.target, v.version), [])
        if models and pol.keep_registered:
            continue
        if any(m.production for m in models):
            out.append(_refused(f"dataset:{ref}", rec, f"data set version {ref}", models))
            continue
        why = []
        if pol.keep_last is not None:
            why.append(f"not among the newest {pol.keep_last} versions")
        if pol.keep_days is not None:
            why.append(f"created {iso(v.created_at)}, over {pol.keep_days} days ago")
        if models:
            why.append("input of " + ", ".join(m.ref for m in models) + " (keep_registered is off)")
        out.append(Action("trash_dataset_version", f"dataset:{ref}", rec.ref, "; ".join(why)))
    return out


def _plan_one(store: Any, rec: PolicyRecord, now: int) -> list[Action]:
    index = _index(store)
    with index.session() as conn:
        by_run, by_data = _models(conn)
        if rec.kind == "dataset":
            return _plan_dataset(conn, rec, now, by_data)
    return _plan_experiment(store, rec, now, by_run)


def plan(store: Any, now_ms: int | None = None) -> list[Action]:
    """What applying every policy at ``now_ms`` would do, and why (nothing is changed).

    Policies whose experiment was deleted (it is in the trash with its runs) or whose
    data set no longer exists plan nothing.  ``refused`` actions name what a Production
    or aliased model version needs; :func:`apply` does nothing while there is one.
    """
    if _remote(store) is not None:  # the server's plan, at the server's time
        return [Action.from_dict(d) for d in store.call("GET", "/retention/plan")["actions"]]
    now = clock.now_ms() if now_ms is None else now_ms
    index = _index(store)
    with index.session() as conn:
        by_run, by_data = _models(conn)
        records = _records(store, conn)
        out: list[Action] = []
        for rec in records:
            if rec.kind == "dataset":
                out.extend(_plan_dataset(conn, rec, now, by_data))
    for rec in records:
        if rec.kind != "experiment":
            continue
        try:
            exp = store.get_experiment(rec.target)
        except NotFound:
            continue
        if getattr(exp, "lifecycle", "active") == "deleted":
            continue
        out.extend(_plan_experiment(store, rec, now, by_run))
    return out


def _refusal(refused: Sequence[Action], verb: str) -> Conflict:
    head = ("retention policy refused" if verb == "set" else
            "retention not applied (nothing was changed)")
    return Conflict(f"{head}: " + " | ".join(a.reason for a in refused),
                    refused=[a.to_dict() for a in refused])


# -- applying --------------------------------------------------------------------------

def apply(store: Any, *, now_ms: int | None = None, dry_run: bool = False,
          actor: str = ACTOR, progress: bool | None = None) -> RetentionReport:
    """Apply every policy at ``now_ms``: trash what they do not keep, set artifact expiries.

    ``dry_run``: change nothing and report what would be done (the same actions).  Refused
    (Conflict, nothing changed) while a policy would trash what a Production or aliased
    model version needs.  Every action is audited (``retention.trash``, ``retention.expiry``).
    ``progress``: a bar on stderr while acting (None: when it is a terminal).
    """
    actor = _actor(actor)
    if _remote(store) is not None:
        raise InvalidArgument("retention is applied where the store is: run `cairn gc` on the "
                              "server's store (cairn --store postgresql://... gc); `cairn "
                              "retention plan` shows what it would do")
    now = clock.now_ms() if now_ms is None else now_ms
    actions = plan(store, now)
    refused = [a for a in actions if a.kind == "refused"]
    if refused:
        raise _refusal(refused, "apply")
    if dry_run:
        return _report(actions, True, now)
    done, skipped = _apply_actions(store, actions, actor, now, progress)
    return _report(done, False, now, skipped)


def _report(actions: Sequence[Action], dry_run: bool, now: int,
            skipped: Sequence[str] = ()) -> RetentionReport:
    kinds = [a.kind for a in actions]
    return RetentionReport(tuple(actions), dry_run, now, kinds.count("trash_run"),
                           kinds.count("trash_dataset_version"),
                           kinds.count("set_artifacts_expiry"), tuple(skipped))


def _apply_actions(store: Any, actions: Sequence[Action], actor: str, now: int,
                   progress: bool | None = False) -> tuple[list[Action], list[str]]:
    from ..progress import bar

    if not actions:
        return [], []
    # A run takes a few milliseconds (its trashing is a journal write, then an audit event):
    # a policy that catches up on a large experiment is minutes of work worth showing.
    with bar("applying retention policies", len(actions), enabled=progress,
             unit="actions") as advance:
        return _act(store, actions, actor, now, advance)


def _act(store: Any, actions: Sequence[Action], actor: str, now: int,
         advance: Any) -> tuple[list[Action], list[str]]:
    from ..client import Client
    from ..registry import audit

    client = Client(store=store, user=actor)
    index = _index(store)
    with index.session() as conn:
        policies = {r.ref: r.policy for r in _records(store, conn)}
    done: list[Action] = []
    skipped: list[str] = []
    after: dict[str, Any]
    for a in actions:
        advance(1)
        kind, _, ref = a.target.partition(":")
        pol = policies.get(a.policy, Policy())
        try:
            if a.kind == "trash_run":
                why_not = _run_kept_now(client, index, ref, pol)
                if why_not:
                    skipped.append(f"{a.target}: {why_not}")
                    continue
                # Checked just above: no version in service needs it, so a policy that
                # does not keep registered runs trashes a source run as the plan said.
                client.delete_run(ref, force=not pol.keep_registered)
                event, after = "retention.trash", {"policy": a.policy, "reason": a.reason}
            elif a.kind == "trash_dataset_version":
                _trash_version(store, ref, actor, pol)
                event, after = "retention.trash", {"policy": a.policy, "reason": a.reason}
            elif a.kind == "set_artifacts_expiry":
                client.set_tag(ref, EXPIRES_TAG, str(a.expires_at))
                event, after = "retention.expiry", {"policy": a.policy, "expires": a.expires_at}
            elif a.kind == "clear_artifacts_expiry":
                client.delete_tag(ref, EXPIRES_TAG)
                event, after = "retention.expiry", {"policy": a.policy, "expires": None}
            else:
                continue
        except (NotFound, Conflict) as exc:  # changed by someone else since the plan
            skipped.append(f"{a.target}: {exc.message}")
            continue
        with index.session(write=True) as conn:
            audit.append(conn, actor, event, a.target, None, after, now)
        done.append(a)
    return done, skipped


def _run_kept_now(client: Any, index: Any, run_id: str, pol: Policy) -> str | None:
    """Why run ``run_id`` must not be trashed after all (tagged, registered or trashed since
    the plan: the plan and the trashing are not one transaction); None when it may go."""
    import sqlalchemy as sa

    from ..store.sql import tables as T

    run = client.get_run(run_id)
    if run.lifecycle == "deleted":
        return "already in the trash"
    if is_kept(run.tags, pol.keep_tagged):
        return f"tagged {pol.keep_tagged} since the plan"
    MV = T.model_versions
    with index.session() as conn:
        rows = conn.execute(sa.select(MV.c.name, MV.c.version, MV.c.stage).where(
            MV.c.source_run_id == run_id, MV.c.deleted_at.is_(None))).all()
        if rows and not pol.keep_registered:
            aliased = conn.execute(sa.select(T.model_aliases.c.name).where(sa.tuple_(
                T.model_aliases.c.name, T.model_aliases.c.version).in_(
                [(r.name, r.version) for r in rows]))).first()
            if aliased is None and all(r.stage != "Production" for r in rows):
                return None
    if rows:
        return f"the source of model version {rows[0].name}/{rows[0].version} since the plan"
    return None


def _trash_version(store: Any, ref: str, actor: str, pol: Policy) -> None:
    from ..services import datasets_for

    ds: Any = datasets_for(store, actor)
    delete = getattr(ds, "delete_version", None)
    if delete is None:  # pragma: no cover - the trash of data set versions is not there
        raise InvalidArgument("this Cairn cannot trash data set versions yet "
                              "(Datasets.delete_version is missing)")
    try:
        delete(ref, force=False)
    except Conflict:
        # Protected as a registered model's input: only a policy that said so (audited when
        # it was set) overrides that, and never for a model version in service, which the
        # plan refused but which may have been promoted or aliased since.
        if pol.keep_registered:
            raise
        name, _, number = ref.rpartition("@")
        with _index(store).session() as conn:
            _, by_data = _models(conn)
        serving = [m for m in by_data.get((name, int(number)), []) if m.production]
        if serving:
            raise Conflict(f"data set version {ref} feeds " + ", ".join(
                f"model version {m.ref} ({m.why})" for m in serving) + " since the plan",
                           ref=ref) from None
        delete(ref, force=True)


# -- a TTL on one run ------------------------------------------------------------------

def set_artifacts_ttl(store: Any, run_id: str, days: int | None, *, actor: str | None = None,
                      now_ms: int | None = None) -> int | None:
    """Make run ``run_id``'s artifacts expire ``days`` after it ended (from now for a run
    still running); None removes the run's own TTL (its experiment's policy, if any,
    applies again at the next ``cairn gc``).  Returns the expiry (epoch ms) or None.
    Audited (``retention.ttl``)."""
    from ..client import Client
    from ..registry import audit

    check_text(run_id, "run id")
    actor = _actor(actor)
    days = _days(days, "artifacts TTL days", 0)
    if _remote(store) is not None:
        return store.call("PUT", f"/runs/{run_id}/artifacts/ttl", json={"days": days})["expires"]
    now = clock.now_ms() if now_ms is None else now_ms
    index = _index(store)
    client = Client(store=store, user=actor)
    run = client.get_run(run_id)
    before = {"ttl_days": run.tags.get(TTL_TAG), "expires": expires_at(run.tags)}
    if days is None:
        for key in (TTL_TAG, EXPIRES_TAG):
            if key in run.tags:
                client.delete_tag(run_id, key)
        when = None
    else:
        when = (int(run.end_time) if run.end_time is not None else now) + days * DAY_MS
        client.log_batch(run_id, tags={TTL_TAG: str(days), EXPIRES_TAG: str(when)})
    with index.session(write=True) as conn:
        audit.append(conn, actor, "retention.ttl", f"run:{run_id}", before,
                     {"ttl_days": days, "expires": when}, now)
    return when
