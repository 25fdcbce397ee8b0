"""Governance KPIs of the registry: how often releases stick, how fast bad ones are undone,
and whether what runs in production went through the gates.

::

    from cairn.monitoring.kpi import kpis

    k = kpis(client, model="fraud", since="2025-01-01", settle="24h")
    k.overall.success_rate          # 0.75: share of settled deployments not rolled back
    k.overall.mean_time_to_rollback_s
    [c for c in k.compliance if not c.ok]   # production versions and what they lack

Everything is read from the registry's history (stage moves, alias moves, rollbacks and the
deployment events of ``cairn serve``), its transition requests, trusted keys and the lineage
graph, through public methods that a local store and a team server both have.

Definitions (docs/kpi.md says the same, with examples):

*Production tracks* are where a version can be live: the stage Production, the aliases
:data:`PRODUCTION_ALIASES`, and the ``primary`` arm of each ``cairn serve`` deployment.  A
*release* (one deployment) is a period in which one version of a model is live on at least
one track: a promotion, the alias moving to it and the server switching to it are the same
release, counted once.  A release that starts by a rollback (the version is restored) is a
remediation, not a deployment.  A release *failed* when it was rolled back within the settle
period after it started, as DORA's change failure rate counts a change that needed
remediation; it *succeeded* when the settle period passed without one, and is *pending*
until then.  A rollback is a ``cairn models rollback`` of Production, a production alias
moved back to an older version that held it before, or a server's ``rollback`` event.

The *reproducibility rate* is read from the runs ``cairn reproduce`` recorded (tagged
``cairn.reproduces``) in the window: of the original runs it tried (in ``experiments``, or
all), the share whose latest attempt's verdict is "reproduced"; per model, of the source
runs of the model's versions.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping

from ..errors import InvalidArgument, NotFound

__all__ = ["Compliance", "DEFAULT_SETTLE", "Kpis", "PRODUCTION_ALIASES", "Release", "Rollback",
           "Summary", "kpis", "parse_settle"]

PRODUCTION = "Production"
#: Aliases that put a version in production as much as the stage does (``@production``
#: itself names the stage: no alias may be called after a stage).
PRODUCTION_ALIASES = ("champion",)
#: The arm of a ``cairn serve`` deployment that serves production traffic (a canary's or a
#: standby's switches are trials, not releases).
PRIMARY_ARM = "primary"
#: How long a release must stay without a rollback to count as a success.
DEFAULT_SETTLE = dt.timedelta(hours=24)
WEEK_MS = 7 * 86_400_000
REPRODUCIBILITY_NOTE = ("filled in by `cairn reproduce`: the share of the runs it tried whose "
                        "latest attempt reproduced them")


# -- values --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Release:
    """One version of one model live in production, from ``started`` until ``ended``."""

    model: str
    version: str
    started: int                 # ms since the epoch
    track: str                   # where it went live first: stage, @alias or serve:<id>
    outcome: str                 # succeeded | failed | pending | restored (by a rollback)
    ended: int | None = None     # None: still live
    rolled_back: int | None = None


@dataclass(frozen=True, slots=True)
class Rollback:
    """A rollback away from ``version`` (to ``to``), ``after_s`` seconds after its release."""

    model: str
    version: str
    to: str | None
    time: int
    after_s: float
    track: str


@dataclass(frozen=True, slots=True)
class Compliance:
    """One production version: whether it has an approval, a valid signature and lineage to
    its training data, and what it lacks."""

    model: str
    version: str
    held_by: tuple[str, ...]     # "Production" and/or "@champion"
    approval: bool
    signature: bool
    lineage: bool
    lacks: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.approval and self.signature and self.lineage


@dataclass(frozen=True, slots=True)
class Summary:
    """The KPIs of one model, or of all of them."""

    deployments: int = 0
    succeeded: int = 0
    failed: int = 0
    pending: int = 0
    rollbacks: int = 0
    rollbacks_per_week: float | None = None
    mean_time_to_rollback_s: float | None = None
    production_versions: int = 0
    with_approval: int = 0
    with_signature: int = 0
    with_lineage: int = 0
    compliant: int = 0
    reproducibility_rate: float | None = None

    @property
    def success_rate(self) -> float | None:
        """Succeeded / (succeeded + failed): pending releases are not judged yet."""
        return _share(self.succeeded, self.succeeded + self.failed)

    @property
    def change_failure_rate(self) -> float | None:
        return _share(self.failed, self.succeeded + self.failed)

    @property
    def approval_rate(self) -> float | None:
        return _share(self.with_approval, self.production_versions)

    @property
    def signature_rate(self) -> float | None:
        return _share(self.with_signature, self.production_versions)

    @property
    def lineage_rate(self) -> float | None:
        return _share(self.with_lineage, self.production_versions)

    @property
    def compliance_rate(self) -> float | None:
        return _share(self.compliant, self.production_versions)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for name in ("success_rate", "change_failure_rate", "approval_rate", "signature_rate",
                     "lineage_rate", "compliance_rate"):
            d[name] = getattr(self, name)
        return d


@dataclass(frozen=True, slots=True)
class Kpis:
    """What :func:`kpis` returns: the window, the KPIs overall and per model, and the
    releases, rollbacks and production versions they were computed from."""

    since: int | None            # ms; None: from the first release
    until: int                   # ms; events after it are not read
    settle_s: float
    overall: Summary
    models: Mapping[str, Summary] = field(default_factory=dict)
    releases: tuple[Release, ...] = ()
    rollbacks: tuple[Rollback, ...] = ()
    compliance: tuple[Compliance, ...] = ()
    notes: tuple[str, ...] = ()
    reproducibility: Any = None  # cairn.reproduce.rate.Rate of the window

    def to_dict(self) -> dict[str, Any]:
        return {
            "since": _iso(self.since), "until": _iso(self.until), "settle_s": self.settle_s,
            "overall": self.overall.to_dict(),
            "models": {name: s.to_dict() for name, s in self.models.items()},
            "releases": [{**asdict(r), "started": _iso(r.started), "ended": _iso(r.ended),
                          "rolled_back": _iso(r.rolled_back)} for r in self.releases],
            "rollbacks": [{**asdict(r), "time": _iso(r.time)} for r in self.rollbacks],
            "compliance": [{**asdict(c), "held_by": list(c.held_by), "lacks": list(c.lacks),
                            "ok": c.ok} for c in self.compliance],
            "reproducibility_rate": self.overall.reproducibility_rate,
            "reproducibility": None if self.reproducibility is None else self.reproducibility.to_dict(),
            "reproducibility_note": REPRODUCIBILITY_NOTE,
            "notes": list(self.notes),
        }


def _share(part: int, whole: int) -> float | None:
    return None if whole == 0 else part / whole


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).isoformat(timespec="milliseconds")


# -- arguments -----------------------------------------------------------------------
def _time(value: Any, what: str) -> int | None:
    """ms since the epoch from a datetime, ISO 8601 text (naive: UTC) or epoch seconds."""
    from ..serving.predlog_read import when

    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidArgument(f"{what} {value!r} is not a time")
    if isinstance(value, str) and not value.isprintable():
        raise InvalidArgument(f"{what} {value!r} is not an ISO 8601 time")
    try:
        moment = when(value, what)
    except (OverflowError, OSError, ValueError):
        raise InvalidArgument(f"{what} {value!r} is out of range") from None
    return None if moment is None else int(moment.timestamp() * 1000)


def parse_settle(value: Any) -> dt.timedelta:
    """The settle period from a timedelta, seconds, or text such as ``30m``, ``24h``, ``7d``."""
    from .windows import parse_window

    try:
        return parse_window(value)
    except InvalidArgument:
        shown = value if not isinstance(value, str) or len(value) <= 40 else value[:40] + "..."
        raise InvalidArgument(f"settle period {shown!r} is not a duration of 1s to a year; "
                              "give e.g. 30m, 24h or 7d (or seconds)") from None


# -- the KPIs ------------------------------------------------------------------------
def kpis(client: Any, *, model: str | None = None, since: Any = None, until: Any = None,
         settle: Any = DEFAULT_SETTLE, experiments: Any = None) -> Kpis:
    """The governance KPIs of ``model`` (or every model) for releases and rollbacks in
    ``[since, until]`` (datetimes, ISO 8601 text with naive times in UTC, or epoch seconds;
    ``until`` defaults to now), a release settling after ``settle``.  Compliance is of the
    versions in production now.  ``client`` is a :class:`cairn.Client` of a local store
    or a server.  The reproducibility rate counts the ``cairn reproduce`` attempts in the
    window on runs of ``experiments`` (names or ids; None: every experiment)."""
    from .. import clock
    from ..store.validation import check_text

    if model is not None:
        if not isinstance(model, str) or not model.strip():
            raise InvalidArgument(f"model must be a model's name, got {model!r}")
        check_text(model, "model")
    start, end = _time(since, "since"), _time(until, "until")
    settle_ms = int(parse_settle(settle).total_seconds() * 1000)
    now = clock.now_ms()
    if start is not None and end is not None and end <= start:
        raise InvalidArgument(f"until ({_iso(end)}) must be after since ({_iso(start)})")
    end = now if end is None else end
    if start is not None and start >= end:
        raise InvalidArgument(f"since ({_iso(start)}) is in the future")
    horizon = min(end, now)  # what has had time to settle

    reg = client._registry
    names = [reg.get_registered_model(model).name] if model is not None \
        else sorted(m.name for m in reg.list_registered_models())
    keys = _Keys(reg) if names else None
    releases: list[Release] = []
    rollbacks: list[Rollback] = []
    compliance: list[Compliance] = []
    for name in names:
        events = [e for e in reg.model_history(name) if e.time <= end]
        rel, rb = _releases(name, events, start, end, horizon, settle_ms)
        releases += rel
        rollbacks += rb
        compliance += _compliance(client, reg, keys, name)
    first = min((r.started for r in releases), default=None) if start is None else start
    weeks = None if first is None else max(horizon - first, WEEK_MS) / WEEK_MS
    per_model = {n: _summary([r for r in releases if r.model == n],
                             [r for r in rollbacks if r.model == n],
                             [c for c in compliance if c.model == n], weeks) for n in names}
    from dataclasses import replace

    from ..reproduce.rate import attempts, rate_of

    latest = attempts(client, experiments, start, end)
    repro = rate_of(latest)
    for n in names:
        sources = {mv.source_run_id for mv in reg.list_model_versions(n) if mv.source_run_id}
        per_model[n] = replace(per_model[n],
                               reproducibility_rate=rate_of(latest, sources).rate)
    notes = [f"reproducibility rate: {repro.reproduced} of {repro.runs} run(s) tried by "
             "`cairn reproduce` reproduced" if repro.runs else
             "reproducibility rate: no run was tried by `cairn reproduce` in the window"]
    if not names:
        notes.append("no registered models")
    overall = replace(_summary(releases, rollbacks, compliance, weeks),
                      reproducibility_rate=repro.rate)
    return Kpis(start, end, settle_ms / 1000, overall, per_model, tuple(releases),
                tuple(rollbacks), tuple(compliance), tuple(notes), repro)


def _summary(releases: list[Release], rollbacks: list[Rollback], compliance: list[Compliance],
             weeks: float | None) -> Summary:
    def count(outcome: str) -> int:
        return sum(1 for r in releases if r.outcome == outcome and _deployed(r))

    mean = sum(r.after_s for r in rollbacks) / len(rollbacks) if rollbacks else None
    return Summary(
        deployments=sum(1 for r in releases if _deployed(r)), succeeded=count("succeeded"),
        failed=count("failed"), pending=count("pending"), rollbacks=len(rollbacks),
        rollbacks_per_week=None if weeks is None else len(rollbacks) / weeks,
        mean_time_to_rollback_s=mean, production_versions=len(compliance),
        with_approval=sum(c.approval for c in compliance),
        with_signature=sum(c.signature for c in compliance),
        with_lineage=sum(c.lineage for c in compliance),
        compliant=sum(c.ok for c in compliance))


def _deployed(r: Release) -> bool:
    return r.outcome != "restored"


# -- releases and rollbacks, replayed from the history -------------------------------
@dataclass(slots=True)
class _Live:
    """A version live on one track, from ``start`` (entered by ``how``: deploy | restore)
    to ``end`` (left by ``cause``: rollback | other), rolled back to ``to``."""

    version: str
    track: str
    start: int
    how: str
    seq: int  # the order of entering: ties of start go to the first track entered
    end: int | None = None
    cause: str | None = None
    to: str | None = None


def _tracks(events: Iterable[Any]) -> list[_Live]:
    """Every stay of a version on a production track, from the model's history (in order)."""
    events = list(events)
    # A registry rollback writes the archiving of the current version first, then the
    # rollback event, in one transaction (one timestamp): the time says which archiving was one.
    restored_at = {e.time: e.version for e in events
                   if e.kind == "rollback" and e.to_value == PRODUCTION}
    open_: dict[tuple[str, str], _Live] = {}
    done: list[_Live] = []
    held: dict[str, set[str]] = {}  # alias track -> versions that held it

    def enter(track: str, version: str | None, t: int, how: str, single: bool) -> None:
        if version is None:
            return
        if single:
            for key in [k for k in open_ if k[0] == track and k[1] != version]:
                leave(track, key[1], t, "other")
        if (track, version) not in open_:
            open_[(track, version)] = _Live(version, track, t, how, len(open_) + len(done))

    def leave(track: str, version: str | None, t: int, cause: str, to: str | None = None) -> None:
        live = open_.pop((track, version or ""), None)
        if live is not None:
            live.end, live.cause, live.to = t, cause, to
            done.append(live)

    for e in events:
        kind, old, new = e.kind, e.from_value, e.to_value
        if kind in ("register", "stage") and e.version is not None:
            if old == PRODUCTION and new != PRODUCTION:
                target = restored_at.get(e.time)
                rolled = target is not None and target != e.version
                leave("stage", e.version, e.time, "rollback" if rolled else "other",
                      target if rolled else None)
            elif new == PRODUCTION and old != PRODUCTION:
                enter("stage", e.version, e.time, "deploy", single=False)
        elif kind == "rollback" and new == PRODUCTION:
            enter("stage", e.version, e.time, "restore", single=False)
        elif kind == "delete":
            for key in [k for k in open_ if k[1] == e.version]:
                leave(key[0], key[1], e.time, "other")
        elif kind in ("alias", "alias_deleted") and e.alias in PRODUCTION_ALIASES:
            track = "@" + e.alias
            seen = held.setdefault(track, set())
            back = kind == "alias" and old is not None and new in seen and _older(new, old)
            if old is not None:
                leave(track, old, e.time, "rollback" if back else "other", new if back else None)
            if kind == "alias" and new is not None:
                enter(track, new, e.time, "restore" if back else "deploy", single=True)
                seen.add(new)
        elif kind.startswith("deploy_") and (e.arm or PRIMARY_ARM) == PRIMARY_ARM:
            track = f"serve:{e.deployment}"
            if kind == "deploy_stop":
                leave(track, new, e.time, "other")
            elif kind == "deploy_rollback":
                leave(track, old, e.time, "rollback", new)
                enter(track, new, e.time, "restore", single=True)
            else:  # start, switch
                enter(track, new, e.time, "deploy", single=True)
    return done + list(open_.values())


def _older(version: str, than: str) -> bool:
    from ..registry.semver import SemVer

    try:
        return SemVer.parse(version) < SemVer.parse(than)
    except InvalidArgument:
        return False


def _releases(name: str, events: list[Any], start: int | None, end: int, horizon: int,
              settle_ms: int) -> tuple[list[Release], list[Rollback]]:
    """The model's releases that started in the window and its rollbacks in the window."""
    by_version: dict[str, list[_Live]] = {}
    for live in _tracks(events):
        by_version.setdefault(live.version, []).append(live)
    releases: list[Release] = []
    rollbacks: list[Rollback] = []
    for version, stays in by_version.items():
        # Stays of one version that overlap in time are one release: the promotion, the
        # alias move and the server's switch to it.
        groups: list[list[_Live]] = []
        for stay in sorted(stays, key=lambda s: (s.start, s.seq)):
            if groups and _overlaps(groups[-1], stay):
                groups[-1].append(stay)
            else:
                groups.append([stay])
        for group in groups:
            release, rollback = _one_release(name, version, group, settle_ms, horizon)
            if rollback is not None and (start is None or rollback.time >= start) \
                    and rollback.time <= end:
                rollbacks.append(rollback)
            if start is None or release.started >= start:
                releases.append(release)
    releases.sort(key=lambda r: (r.started, r.version))
    rollbacks.sort(key=lambda r: (r.time, r.version))
    return releases, rollbacks


def _overlaps(group: list[_Live], stay: _Live) -> bool:
    ends = [s.end for s in group]
    return None in ends or stay.start <= max(e for e in ends if e is not None)


def _one_release(name: str, version: str, group: list[_Live], settle_ms: int,
                 horizon: int) -> tuple[Release, Rollback | None]:
    first = group[0]
    ends = [s.end for s in group]
    ended = None if None in ends else max(e for e in ends if e is not None)
    backs = sorted((s for s in group if s.cause == "rollback"), key=lambda s: s.end or 0)
    rollback = None
    back_time = backs[0].end if backs else None
    if back_time is not None:
        rollback = Rollback(name, version, backs[0].to, back_time,
                            (back_time - first.start) / 1000, backs[0].track)
    if first.how == "restore":
        outcome = "restored"
    elif rollback is not None and rollback.time - first.start <= settle_ms:
        outcome = "failed"
    elif first.start + settle_ms <= horizon:
        outcome = "succeeded"
    else:
        outcome = "pending"
    return (Release(name, version, first.start, first.track, outcome, ended,
                    None if rollback is None else rollback.time), rollback)


# -- compliance of the versions in production now ------------------------------------
class _Keys:
    """The registry's trusted keys, read once for all the versions checked."""

    def __init__(self, reg: Any) -> None:
        self._reg = reg
        self._keys: dict[str, str] | None = None

    def trusted_keys(self) -> dict[str, str]:
        if self._keys is None:
            self._keys = dict(self._reg.trusted_keys())
        return dict(self._keys)


def _compliance(client: Any, reg: Any, keys: Any, name: str) -> list[Compliance]:
    held: dict[str, list[str]] = {}
    for mv in reg.list_model_versions(name, PRODUCTION):
        held.setdefault(mv.version, []).append(PRODUCTION)
    for alias, version in sorted(reg.get_registered_model(name).aliases.items()):
        if alias in PRODUCTION_ALIASES:
            held.setdefault(version, []).append("@" + alias)
    if not held:
        return []
    from ..registry.compliance import approvals, signature_problem

    approved = set(approvals(reg.list_transition_requests(name, status="applied")))
    out = []
    for version in sorted(held, key=_semver_key):
        mv = reg.get_model_version(name, version)
        lacks: list[str] = []
        approval = version in approved
        if not approval:
            lacks.append("approval: no approved request moved it to Production")
        why = signature_problem(keys, mv)
        if why:
            lacks.append(f"signature: {why}")
        why = _lineage_problem(client, mv)
        if why:
            lacks.append(f"lineage: {why}")
        out.append(Compliance(name, version, tuple(held[version]), approval,
                              not any(x.startswith("signature") for x in lacks),
                              not any(x.startswith("lineage") for x in lacks), tuple(lacks)))
    return out


def _semver_key(version: str) -> Any:
    from ..registry.semver import SemVer

    return SemVer.parse(version)


def _lineage_problem(client: Any, mv: Any) -> str | None:
    """Why lineage finds no training data set of ``mv``, or None when it finds one (or more)."""
    from .reference import training_dataset

    try:
        training_dataset(client, mv)
    except NotFound as exc:
        return exc.message.split("; give the reference")[0]
    except InvalidArgument as exc:
        if exc.details.get("candidates"):
            return None  # trained on several data set versions: lineage is there
        raise
    return None
