"""Stages, approval gates, aliases, rollback and history: the governed half of the registry.

Stages run Development -> Staging -> Production -> Archived.  A per-model
:class:`StagePolicy` says how many approvals moving into a stage needs, who may
give them (anyone but the requester unless approvers are named) and whether the
stage holds one version at a time (Production does by default: the previous
version is archived).  Every change writes a history event (who, when, why) and
an audit event in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Iterable

from .. import clock
from ..errors import Conflict, InvalidArgument, NotFound, PermissionDenied
from . import repo
from .entities import HistoryEvent, ModelVersion, SigningKey, Stage, StagePolicy, TransitionRequest
from .naming import check_alias
from .semver import SemVer

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from .entities import AuditReport


def _t(name: str, version: str | None = None) -> str:
    return f"model:{name}" + (f"/{version}" if version else "")


def to_ms(when: Any) -> int:
    if isinstance(when, dt.datetime):
        return int(when.timestamp() * 1000)  # naive datetimes are local time, as datetime.now()
    if isinstance(when, (int, float)) and not isinstance(when, bool):
        return int(when)
    raise InvalidArgument(f"when must be a datetime (or ms since the epoch), got {when!r}")


class Workflow:
    """Mixed into :class:`~cairn.registry.service.Registry` (needs ``session`` and ``user``)."""

    if TYPE_CHECKING:
        @property
        def user(self) -> str: ...

    def session(self, write: bool = False) -> AbstractContextManager[Connection]:  # pragma: no cover
        raise NotImplementedError  # provided by Registry

    # -- policies --------------------------------------------------------
    def set_stage_policy(self, name: str, stage: str, approvals: int = 0,
                         approvers: Iterable[str] | None = None,
                         exclusive: bool | None = None) -> StagePolicy:
        """Require ``approvals`` approvals (by ``approvers`` if given) to move into ``stage``."""
        st = Stage.parse(stage).value
        if not isinstance(approvals, int) or isinstance(approvals, bool) or approvals < 0:
            raise InvalidArgument(f"approvals must be a non-negative integer, got {approvals!r}")
        people = None
        if approvers is not None:
            if isinstance(approvers, str):
                approvers = [approvers]
            people = tuple(sorted({str(a).strip() for a in approvers if str(a).strip()}))
            if approvals > len(people):
                raise InvalidArgument(f"{approvals} approvals can never be met by "
                                      f"{len(people)} approver(s) {list(people)}")
        with self.session(write=True) as conn:
            repo.require_model(conn, name)
            old = repo.policy(conn, name, st)
            new = StagePolicy(name, st, approvals, people,
                              old.exclusive if exclusive is None else bool(exclusive))
            now = clock.now_ms()
            repo.save_policy(conn, new, self.user, now)
            repo.add_history(conn, name, None, "policy", self.user, now,
                             reason=f"{st}: {approvals} approval(s)"
                                    + (f" by {', '.join(people)}" if people else ""))
            repo.record(conn, self.user, "model.policy", f"{_t(name)}/policy/{st}",
                        repo.policy_json(old), repo.policy_json(new), now)
            return new

    def get_stage_policies(self, name: str) -> list[StagePolicy]:
        with self.session() as conn:
            repo.require_model(conn, name)
            return repo.policies(conn, name)

    # -- applying a stage change -----------------------------------------
    def _move(self, conn: Connection, name: str, row: Any, stage: str, now: int, reason: str,
              request_id: str | None = None, kind: str = "stage", archive_all: bool = False) -> None:
        """Put ``row`` into ``stage``; archive the stage's other versions if it is exclusive."""
        pol = repo.policy(conn, name, stage)
        if pol.exclusive or archive_all:
            for other in repo.version_rows(conn, name, stage):
                if other.version == row.version:
                    continue
                arch = Stage.ARCHIVED.value
                repo.set_stage(conn, name, other.version, arch, now)
                why = f"replaced in {stage} by {row.version}" + (f": {reason}" if reason else "")
                repo.add_history(conn, name, other.version, "stage", self.user, now, stage, arch,
                                 why, request_id)
                repo.record(conn, self.user, "model_version.stage", _t(name, other.version),
                            {"stage": stage}, {"stage": arch, "reason": why}, now)
        repo.set_stage(conn, name, row.version, stage, now)
        repo.add_history(conn, name, row.version, kind, self.user, now, row.stage, stage, reason,
                         request_id)
        action = "model.rollback" if kind == "rollback" else "model_version.stage"
        repo.record(conn, self.user, action, _t(name, row.version), {"stage": row.stage},
                    {"stage": stage, "reason": reason, "request": request_id}, now)
        repo.touch_model(conn, name, now)

    def transition_stage(self, name: str, version: str, stage: str, comment: str = "") -> ModelVersion:
        """Move a version to ``stage`` directly; refused when the stage's policy needs approvals."""
        st = Stage.parse(stage).value
        version = str(SemVer.parse(version))
        with self.session(write=True) as conn:
            row = repo.require_version(conn, name, version)
            pol = repo.policy(conn, name, st)
            if pol.approvals > 0:
                raise PermissionDenied(
                    f"moving {name}/{version} to {st} needs {pol.approvals} approval(s) by policy; "
                    f"request it with client.request_transition({name!r}, {version!r}, {st!r}) "
                    f"or `cairn models request {name} {version} {st.lower()}`",
                    name=name, version=version, stage=st)
            if row.stage == st:
                raise Conflict(f"{name}/{version} is already in {st}")
            self._move(conn, name, row, st, clock.now_ms(), comment)
            return repo.to_version(repo.require_version(conn, name, version),
                                   repo.aliases(conn, name))

    # -- requests and approvals ------------------------------------------
    def request_transition(self, name: str, version: str, stage: str,
                           comment: str = "") -> TransitionRequest:
        """Ask for ``name/version`` to move to ``stage``; applied at once if no approval is needed."""
        st = Stage.parse(stage).value
        version = str(SemVer.parse(version))
        with self.session(write=True) as conn:
            row = repo.require_version(conn, name, version)
            if row.stage == st:
                raise Conflict(f"{name}/{version} is already in {st}")
            dup = repo.pending_request(conn, name, version, st)
            if dup is not None:
                raise Conflict(f"request {dup.id} to move {name}/{version} to {st} is already "
                               f"pending (by {dup.requested_by})", request_id=dup.id)
            pol = repo.policy(conn, name, st)
            now = clock.now_ms()
            rid = clock.new_request_id()
            applied = pol.approvals == 0
            conn.execute(repo.T.transition_requests.insert().values(
                id=rid, name=name, version=version, from_stage=row.stage, to_stage=st,
                status="applied" if applied else "pending", comment=comment or "",
                requested_by=self.user, requested_at=now,
                resolved_by=self.user if applied else None, resolved_at=now if applied else None))
            repo.add_history(conn, name, version, "request", self.user, now, row.stage, st,
                             comment, rid)
            repo.record(conn, self.user, "transition.request", _t(name, version), None,
                        {"request": rid, "from": row.stage, "to": st, "comment": comment or "",
                         "approvals_needed": pol.approvals}, now)
            if applied:
                self._move(conn, name, row, st, now, comment, rid)
            return repo.to_request(conn, repo.require_request(conn, rid))

    def _decide(self, request_id: str, decision: str, comment: str) -> TransitionRequest:
        with self.session(write=True) as conn:
            req = repo.require_request(conn, request_id)
            if req.status != "pending":
                raise Conflict(f"request {req.id} is already {req.status}; nothing to "
                               f"{decision}", request_id=req.id, status=req.status)
            pol = repo.policy(conn, req.name, req.to_stage)
            own = self.user == req.requested_by
            if own and decision == "approve":
                raise PermissionDenied(
                    f"{self.user} requested this transition and cannot approve it; another "
                    f"approver must (policy for {req.to_stage}: {pol.approvals} approval(s))",
                    request_id=req.id)
            if not own and pol.approvers is not None and self.user not in pol.approvers:
                raise PermissionDenied(
                    f"{self.user} may not {decision} transitions of {req.name} to "
                    f"{req.to_stage}; the policy names approvers: {', '.join(pol.approvers)}",
                    request_id=req.id)
            if any(a.user == self.user for a in repo.approvals_of(conn, req.id)):
                raise Conflict(f"{self.user} already decided on request {req.id}")
            now = clock.now_ms()
            conn.execute(repo.T.transition_approvals.insert().values(
                request_id=req.id, user=self.user, decision=decision, comment=comment or "",
                time=now))
            repo.add_history(conn, req.name, req.version, decision, self.user, now,
                             req.from_stage, req.to_stage, comment, req.id)
            repo.record(conn, self.user, f"transition.{decision}", _t(req.name, req.version),
                        {"request": req.id, "status": "pending"},
                        {"request": req.id, "decision": decision, "comment": comment or ""}, now)
            R = repo.T.transition_requests
            if decision == "reject":
                conn.execute(R.update().where(R.c.id == req.id).values(
                    status="rejected", resolved_by=self.user, resolved_at=now))
            else:
                n = sum(1 for a in repo.approvals_of(conn, req.id) if a.decision == "approve")
                if n >= max(pol.approvals, 1):
                    row = repo.require_version(conn, req.name, req.version)
                    if row.stage != req.to_stage:
                        self._move(conn, req.name, row, req.to_stage, now,
                                   req.comment or comment, req.id)
                    conn.execute(R.update().where(R.c.id == req.id).values(
                        status="applied", resolved_by=self.user, resolved_at=now))
            return repo.to_request(conn, repo.require_request(conn, req.id))

    def approve(self, request_id: str, comment: str = "") -> TransitionRequest:
        """Approve a pending request; the transition is applied when the policy is met."""
        return self._decide(request_id, "approve", comment)

    def reject(self, request_id: str, comment: str = "") -> TransitionRequest:
        """Reject a pending request (its requester may withdraw it the same way)."""
        return self._decide(request_id, "reject", comment)

    def get_transition_request(self, request_id: str) -> TransitionRequest:
        with self.session() as conn:
            return repo.to_request(conn, repo.require_request(conn, request_id))

    def list_transition_requests(self, name: str | None = None,
                                 status: str | None = "pending") -> list[TransitionRequest]:
        if status is not None and status not in ("pending", "applied", "rejected"):
            raise InvalidArgument(f"status must be pending, applied or rejected, got {status!r}")
        with self.session() as conn:
            if name is not None:
                repo.require_model(conn, name)
            return repo.list_requests(conn, name, status)

    # -- aliases ---------------------------------------------------------
    def set_alias(self, name: str, alias: str, version: str) -> ModelVersion:
        check_alias(alias)
        version = str(SemVer.parse(version))
        with self.session(write=True) as conn:
            row = repo.version_row(conn, name, version)
            if row is None:
                repo.require_model(conn, name)
                raise NotFound(f"cannot point alias {alias!r} at {name}/{version}: no such "
                               "version; register it first or pick an existing one",
                               name=name, version=version, alias=alias)
            now = clock.now_ms()
            old = repo.set_alias(conn, name, alias, version, self.user, now)
            if old != version:
                repo.add_history(conn, name, version, "alias", self.user, now, old, version,
                                 alias=alias)
                repo.record(conn, self.user, "model.alias", f"{_t(name)}/@{alias}",
                            None if old is None else {"version": old}, {"version": version}, now)
                repo.touch_model(conn, name, now)
            return repo.to_version(row, repo.aliases(conn, name))

    def delete_alias(self, name: str, alias: str) -> None:
        with self.session(write=True) as conn:
            repo.require_model(conn, name)
            now = clock.now_ms()
            old = repo.delete_alias(conn, name, alias)
            if old is None:
                raise NotFound(f"model {name!r} has no alias {alias!r}", name=name, alias=alias)
            repo.add_history(conn, name, old, "alias_deleted", self.user, now, old, None,
                             alias=alias)
            repo.record(conn, self.user, "model.alias_delete", f"{_t(name)}/@{alias}",
                        {"version": old}, None, now)

    # -- rollback --------------------------------------------------------
    def rollback(self, name: str, stage: str = "production", to: str | None = None,
                 reason: str = "") -> ModelVersion:
        """Put back the version that was in ``stage`` before the current one (or ``to``).

        One transaction: the current version(s) move to Archived, the restored one
        to ``stage``, each with history and audit events carrying ``reason``.  A
        rollback restores a version that already passed the stage's gate, so it needs
        no new approvals; when the policy names approvers, only they may roll back.
        """
        st = Stage.parse(stage).value
        with self.session(write=True) as conn:
            repo.require_model(conn, name)
            pol = repo.policy(conn, name, st)
            if pol.approvers is not None and self.user not in pol.approvers:
                raise PermissionDenied(f"only the approvers of {st} for {name} "
                                       f"({', '.join(pol.approvers)}) may roll it back")
            targets = _rollback_targets(conn, name, st)
            if to is None:
                if not targets:
                    raise Conflict(f"nothing to roll back to: no earlier version of {name} was "
                                   f"in {st}", name=name, stage=st)
                target = targets[0]
            else:
                target = str(SemVer.parse(to))
                repo.require_version(conn, name, target)
                if target not in targets:
                    if any(r.version == target for r in repo.version_rows(conn, name, st)):
                        raise Conflict(f"{name}/{target} is already in {st}")
                    raise InvalidArgument(f"{name}/{target} was never in {st}, so there is "
                                          f"nothing to roll back to; promote it instead")
            row = repo.require_version(conn, name, target)
            why = reason or "rollback"
            self._move(conn, name, row, st, clock.now_ms(), why, kind="rollback", archive_all=True)
            return repo.to_version(repo.require_version(conn, name, target),
                                   repo.aliases(conn, name))

    def rollback_targets(self, name: str, stage: str = "production") -> list[str]:
        """The versions a rollback of ``stage`` can put back, the default (the previous
        version) first: those that were in the stage before and are not in it now."""
        st = Stage.parse(stage).value
        with self.session() as conn:
            repo.require_model(conn, name)
            return _rollback_targets(conn, name, st)

    # -- history ---------------------------------------------------------
    def model_history(self, name: str, version: str | None = None) -> list[HistoryEvent]:
        """Registrations, stage and alias changes, requests, decisions and deployments
        (:mod:`cairn.registry.deployments`): who, when, why."""
        with self.session() as conn:
            repo.require_model(conn, name)
            return repo.history(conn, name, None if version is None else str(SemVer.parse(version)))

    def model_version_at(self, name: str, stage: str, when: Any) -> ModelVersion | None:
        """The version that was in ``stage`` (or had alias ``@name``) at ``when``; None if none."""
        until = to_ms(when)
        alias = stage[1:] if stage.startswith("@") else None
        st = None if alias else Stage.parse(stage).value
        with self.session() as conn:
            repo.require_model(conn, name)
            events = repo.history(conn, name, until=until,
                                  kinds=("register", "stage", "rollback", "alias", "alias_deleted",
                                         "delete", "restore"))
            stage_of: dict[str | None, tuple[str | None, int]] = {}
            alias_to: str | None = None
            for e in events:
                if e.kind == "delete":
                    stage_of.pop(e.version, None)
                elif e.kind in ("register", "stage", "rollback", "restore"):
                    stage_of[e.version] = (e.to_value, e.id)
                elif e.alias == alias:
                    alias_to = e.to_value if e.kind == "alias" else None
            if alias is not None:
                found = alias_to
            else:
                inside = [(eid, v) for v, (s, eid) in stage_of.items() if s == st]
                found = max(inside)[1] if inside else None
            if found is None:
                return None
            row = repo.version_row(conn, name, found)
            return None if row is None else repo.to_version(row, repo.aliases(conn, name))

    # -- signing keys ----------------------------------------------------
    def create_signing_key(self, name: str = "default", directory: Any = None) -> SigningKey:
        """Write a key pair to the keys directory and trust its public key in this store."""
        from pathlib import Path

        from . import signing

        _path, pem = signing.create_key_files(name, None if directory is None else Path(directory))
        return self.trust_key(pem, name)

    def trust_key(self, public_pem: str, name: str) -> SigningKey:
        """Trust a public key for verifying versions (audited)."""
        from . import signing

        kid = signing.key_id(public_pem)
        signing.check_key_name(name)
        with self.session(write=True) as conn:
            if repo.key_row(conn, kid) is not None:
                raise Conflict(f"key {kid} is already registered in this store")
            now = clock.now_ms()
            repo.insert_key(conn, kid, name, public_pem, self.user, now)
            repo.record(conn, self.user, "key.trust", f"key:{kid}", None,
                        {"key_id": kid, "name": name}, now)
            return next(k for k in repo.keys(conn, include_revoked=True) if k.key_id == kid)

    def revoke_key(self, key_id: str) -> None:
        with self.session(write=True) as conn:
            row = repo.key_row(conn, key_id)
            if row is None:
                raise NotFound(f"no key {key_id!r}; `cairn keys ls` lists them")
            if row.revoked_at is not None:
                raise Conflict(f"key {key_id} is already revoked")
            now = clock.now_ms()
            repo.revoke_key(conn, key_id, now)
            repo.record(conn, self.user, "key.revoke", f"key:{key_id}", {"revoked": False},
                        {"revoked": True}, now)

    def list_keys(self, include_revoked: bool = False) -> list[SigningKey]:
        with self.session() as conn:
            return repo.keys(conn, include_revoked)

    def trusted_keys(self) -> dict[str, str]:
        return {k.key_id: k.public_key for k in self.list_keys()}

    # -- audit -----------------------------------------------------------
    def audit_log(self, target: str | None = None, action: str | None = None,
                  actor: str | None = None, limit: int | None = None) -> list:
        from . import audit

        with self.session() as conn:
            return audit.events(conn, target, action, actor, limit)

    def verify_audit_log(self) -> AuditReport:
        from . import audit

        with self.session() as conn:
            return audit.verify(conn)


def _rollback_targets(conn: Any, name: str, stage: str) -> list[str]:
    """Versions that entered ``stage`` (a move or a rollback) and are not in it now, the
    latest to enter first."""
    current = {r.version for r in repo.version_rows(conn, name, stage)}
    out: list[str] = []
    for e in reversed(repo.history(conn, name, kinds=("stage", "rollback"))):
        if e.to_value == stage and e.version is not None and e.version not in current \
                and e.version not in out and repo.version_row(conn, name, e.version) is not None:
            out.append(e.version)
    return out
