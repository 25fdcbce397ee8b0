"""Renaming and deleting: the registry's destructive operations, audited and guarded.

A version that is in use is protected: one in a stage (Production or Staging: something
deploys or tests it; a gated Staging says its versions passed a review), and one that an
alias points at (serving and ``name@alias`` loads follow aliases).
Deleting it, or a model holding it, is refused unless the caller forces it
(``force=True``; the server lets only the model's admins delete at all); a forced
delete removes the aliases too, each with its own history and audit event.

What a delete leaves behind, on purpose:

* the audit log: one event per deleted version and one per deleted model, with what
  was deleted (stage, aliases, digest, tree); the chain is never rewritten;
* the files: the objects stay in the object store (``cairn gc`` decides), and the
  copies a registration made among a run's artifacts stay with that run;
* the version number: a deleted version's number is never given again (as MLflow never
  reuses one), until the model itself is deleted; a new model of the same name starts
  over, with no history of the old one.

Renaming keeps every version, alias, stage, policy, request, history event and user's
role on the model under the new name; a delete removes the roles on it.  Both happen in
the model's own transaction: a failure leaves no role on a name that a later model of
that name would inherit.  A version's record digest covers its model's name, so each version's
digest is recomputed (both digests are in the rename's audit event) after checking the
old one: a record that was tampered with is never re-sealed under a new name.  A
signature cannot be recomputed here (private keys stay with whoever signed) nor
replaced, so a model with signed versions keeps its name.  Each version's
``lineage["registered_as"]`` keeps the name it was registered under (the copy a
registration inside a run made of its files is at ``models/<that name>/VERSION/``).
A version of another model that names one of these as its parent keeps the name the
parent had when it was registered.
"""

from __future__ import annotations

import dataclasses
import json
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from .. import clock
from ..errors import AlreadyExists, Conflict, CorruptObject, NotFound
from ..store.sql.auth import follow_resource
from . import repo
from .entities import ModelVersion, RegisteredModel, Stage
from .naming import check_name
from .semver import SemVer
from .workflow import _t

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from .naming import NamingPolicy


def protections(conn: Connection, name: str, row: Any, alias_map: dict[str, str]) -> list[str]:
    """Why version ``row`` is protected from deletion (empty: it is not)."""
    out = []
    if row.stage == Stage.PRODUCTION.value:
        out.append("it is in Production")
    elif row.stage == Stage.STAGING.value:
        gated = repo.policy(conn, name, row.stage).approvals > 0
        out.append("it is in Staging, whose policy needs approvals" if gated
                   else "it is in Staging")
    names = sorted(a for a, v in alias_map.items() if v == row.version)
    if names:
        out.append(f"alias{'es' if len(names) > 1 else ''} "
                   f"{', '.join(repr(a) for a in names)} point{'' if len(names) > 1 else 's'} "
                   "at it")
    return out


def _advice(reasons: list[str]) -> str:
    """What would lift the protections ``reasons`` name."""
    steps = []
    if any(r.startswith("it is in") for r in reasons):
        steps.append("move it to another stage (e.g. Archived)")
    if any(r.startswith("alias") for r in reasons):
        steps.append("delete its aliases")
    return " and ".join(steps)


def _state(row: Any, alias_map: dict[str, str]) -> dict[str, Any]:
    """What the audit log keeps of a deleted version."""
    return {"version": row.version, "stage": row.stage, "tree": row.tree_oid,
            "digest": row.digest, "flavor": row.flavor, "source_run": row.source_run_id,
            "signing_key": row.signing_key, "created_by": row.created_by,
            "created_at": row.created_at,
            "aliases": sorted(a for a, v in alias_map.items() if v == row.version)}


class Lifecycle:
    """Mixed into :class:`~cairn.registry.service.Registry` (needs ``session`` and ``user``)."""

    if TYPE_CHECKING:
        @property
        def user(self) -> str: ...

        def _naming(self, conn: Connection) -> NamingPolicy | None: ...

    def session(self, write: bool = False) -> AbstractContextManager[Connection]:  # pragma: no cover
        raise NotImplementedError  # provided by Registry

    # -- deleting --------------------------------------------------------
    def deletion_blockers(self, name: str, version: str | None = None) -> dict[str, list[str]]:
        """Version -> why it is protected from deletion, for one version or the whole model
        (only protected versions are listed)."""
        with self.session() as conn:
            repo.require_model(conn, name)
            al = repo.aliases(conn, name)
            rows = ([repo.require_version(conn, name, str(SemVer.parse(version)))]
                    if version is not None else repo.version_rows(conn, name))
            found = {r.version: protections(conn, name, r, al) for r in rows}
            return {v: why for v, why in found.items() if why}

    def delete_model_version(self, name: str, version: str, force: bool = False) -> ModelVersion:
        """Move ``name/version`` to the trash; returns it as it was.

        Refused (:class:`~cairn.errors.Conflict`) for a protected version (in Production,
        in a Staging that needs approvals, or with an alias) unless ``force``; forcing
        removes its aliases too (a restore does not give them back).  A version in the
        trash is hidden from every read, keeps its files, and comes back with
        :meth:`restore_model_version` until the trash is emptied
        (:func:`cairn.lifecycle.trash.purge`).  Its number is never given again.  Audited.
        """
        version = str(SemVer.parse(version))
        with self.session(write=True) as conn:
            row = repo.require_version(conn, name, version)
            al = repo.aliases(conn, name)
            why = protections(conn, name, row, al)
            if why and not force:
                raise Conflict(f"{name}/{version} is protected: {'; '.join(why)}. To delete "
                               f"it, {_advice(why)} first, or force the deletion (model admins: "
                               "`cairn models delete --force`, or force=True)",
                               name=name, version=version, reasons=why)
            mv = repo.to_version(row, al)
            now = clock.now_ms()
            self._trash_version(conn, name, row, al, now, why)
            repo.add_deleted(conn, name, row.version, row.created_at)
            repo.touch_model(conn, name, now)
            return mv

    def restore_model_version(self, name: str, version: str) -> ModelVersion:
        """Bring ``name/version`` back from the trash.

        It comes back in the stage it had, except that a version deleted from Staging or
        Production comes back Archived (a restore never puts a model into service), with
        no alias (those a forced delete removed are in its audit event).  Its files are
        those it had.  :class:`~cairn.errors.NotFound` if it is not in the trash (never
        was, or the trash was emptied); :class:`~cairn.errors.Conflict` if it is live.
        Audited.
        """
        version = str(SemVer.parse(version))
        with self.session(write=True) as conn:
            repo.require_model(conn, name)
            row = repo.trashed_row(conn, name, version)
            if row is None:
                if repo.version_row(conn, name, version) is not None:
                    raise Conflict(f"{name}/{version} is not in the trash; nothing to restore",
                                   name=name, version=version)
                raise NotFound(f"{name}/{version} is not in the trash (`cairn trash ls` lists "
                               "what is; a version purged from it is gone)", name=name,
                               version=version)
            now = clock.now_ms()
            stage = row.stage
            if stage in (Stage.STAGING.value, Stage.PRODUCTION.value):
                stage = Stage.ARCHIVED.value
            values: dict[str, Any] = {"deleted_at": None, "deleted_by": None}
            if stage != row.stage:
                values.update(stage=stage, stage_since=now)
            conn.execute(sa.update(repo.MV).where(repo.MV.c.name == name,
                                                  repo.MV.c.version == version).values(**values))
            repo.remove_deleted(conn, name, version)
            repo.touch_model(conn, name, now)
            repo.add_history(conn, name, version, "restore", self.user, now, row.stage, stage,
                             "restored from the trash")
            repo.record(conn, self.user, "model_version.restore", _t(name, version),
                        {"deleted_at": row.deleted_at, "deleted_by": row.deleted_by,
                         "stage": row.stage}, {"stage": stage}, now)
            return repo.to_version(repo.require_version(conn, name, version),
                                   repo.aliases(conn, name))

    def _trash_version(self, conn: Connection, name: str, row: Any, al: dict[str, str], now: int,
                       forced: list[str]) -> None:
        """Move one version to the trash: its aliases go and its pending requests are
        rejected (both would otherwise point at a version nobody can read)."""
        for alias in sorted(a for a, v in al.items() if v == row.version):
            repo.delete_alias(conn, name, alias)
            repo.add_history(conn, name, row.version, "alias_deleted", self.user, now,
                             row.version, None, "the version was deleted", alias=alias)
            repo.record(conn, self.user, "model.alias_delete", f"{_t(name)}/@{alias}",
                        {"version": row.version}, None, now)
        pending = self._reject_pending(conn, name, row.version, now)
        conn.execute(sa.update(repo.MV).where(repo.MV.c.name == name,
                                              repo.MV.c.version == row.version)
                     .values(deleted_at=now, deleted_by=self.user))
        repo.add_history(conn, name, row.version, "delete", self.user, now, row.stage, None,
                         "moved to the trash" + ("; forced: " + "; ".join(forced) if forced
                                                 else ""))
        before = {**_state(row, al), "pending_requests": sorted(pending)}
        after: dict[str, Any] = {"trash": True, "deleted_at": now}
        if forced:
            after["forced"] = forced
        repo.record(conn, self.user, "model_version.delete", _t(name, row.version), before,
                    after, now)

    def _reject_pending(self, conn: Connection, name: str, version: str, now: int) -> list[str]:
        R = repo.T.transition_requests
        pending = conn.execute(sa.select(R.c.id).where(
            R.c.name == name, R.c.version == version, R.c.status == "pending")).scalars().all()
        if pending:
            conn.execute(sa.update(R).where(R.c.id.in_(pending)).values(
                status="rejected", resolved_by=self.user, resolved_at=now))
        return list(pending)

    def delete_registered_model(self, name: str, force: bool = False) -> RegisteredModel:
        """Delete model ``name`` with all its versions, aliases, policies, requests and
        history; returns it as it was.  Refused while a version is protected unless
        ``force``.  Audited: one event per version and one for the model."""
        with self.session(write=True) as conn:
            mrow = repo.require_model(conn, name)
            rows = repo.version_rows(conn, name)
            al = repo.aliases(conn, name)
            model = repo.to_model(conn, mrow, rows, al)
            blocked = {r.version: w for r in rows if (w := protections(conn, name, r, al))}
            if blocked and not force:
                listed = "; ".join(f"{v}: {', '.join(w)}" for v, w in blocked.items())
                raise Conflict(f"model {name!r} has protected versions ({listed}). To delete "
                               "it, move them to another stage (e.g. Archived) and delete their "
                               "aliases first, or force the deletion (model admins: `cairn models "
                               "delete --force`, or force=True)", name=name,
                               versions=sorted(blocked, key=SemVer.parse), blocked=blocked)
            now = clock.now_ms()
            for r in rows:
                self._drop_version(conn, name, r, al, now, blocked.get(r.version, []),
                                   history=False)
            trashed = [r.version for r in repo.version_rows(conn, name, trashed=True)
                       if r.deleted_at is not None]
            # Deleting a model is permanent (as MLflow's is): its versions in the trash go too.
            conn.execute(sa.delete(repo.MV).where(repo.MV.c.name == name))
            R, A = repo.T.transition_requests, repo.T.transition_approvals
            ids = sa.select(R.c.id).where(R.c.name == name).scalar_subquery()
            conn.execute(sa.delete(A).where(A.c.request_id.in_(ids)))
            for table in (R, repo.T.model_aliases, repo.T.stage_policies, repo.T.model_history):
                conn.execute(sa.delete(table).where(table.c.name == name))
            repo.drop_model_settings(conn, name)
            conn.execute(sa.delete(repo.T.registered_models)
                         .where(repo.T.registered_models.c.name == name))
            before = {"name": name, "description": mrow.description,
                      "tags": json.loads(mrow.tags), "created_by": mrow.created_by,
                      "created_at": mrow.created_at, "versions": [r.version for r in rows],
                      "aliases": dict(al), "trashed_versions": trashed}
            repo.record(conn, self.user, "model.delete", _t(name), before,
                        {"forced": blocked} if blocked else None, now)
            self._roles_follow(conn, name, None, now)
            _comments_follow(conn, name, None)
            _reports_follow(conn, name, None)
            return model

    def _roles_follow(self, conn: Connection, name: str, new_name: str | None, now: int) -> None:
        """The roles on model ``name`` move to ``new_name`` (a rename) or go (None: a delete),
        in the model's own transaction, so that no role outlives its model on a name that
        a later model may take.  Each change is audited as an admin's grant or revocation."""
        for b, before in follow_resource(conn, "model", name, new_name, self.user, now):
            if new_name is not None:
                after = dataclasses.replace(b, resource_id=new_name)
                repo.record(conn, self.user, "role.grant", f"roles/model/{new_name}/{b.user}",
                            None if before is None else dataclasses.asdict(before),
                            dataclasses.asdict(after), now)
            repo.record(conn, self.user, "role.revoke", f"roles/model/{name}/{b.user}",
                        dataclasses.asdict(b), None, now)

    def _drop_version(self, conn: Connection, name: str, row: Any, al: dict[str, str], now: int,
                      forced: list[str], history: bool = True) -> None:
        """Remove one version (its aliases and pending requests too), with its events."""
        for alias in sorted(a for a, v in al.items() if v == row.version):
            repo.delete_alias(conn, name, alias)
            if history:
                repo.add_history(conn, name, row.version, "alias_deleted", self.user, now,
                                 row.version, None, "the version was deleted", alias=alias)
            repo.record(conn, self.user, "model.alias_delete", f"{_t(name)}/@{alias}",
                        {"version": row.version}, None, now)
        pending = self._reject_pending(conn, name, row.version, now)
        conn.execute(sa.delete(repo.MV).where(repo.MV.c.name == name,
                                              repo.MV.c.version == row.version))
        repo.drop_model_settings(conn, name, row.version)
        if history:
            repo.add_history(conn, name, row.version, "delete", self.user, now, row.stage, None,
                             "forced: " + "; ".join(forced) if forced else "")
        before = {**_state(row, al), "pending_requests": sorted(pending)}
        repo.record(conn, self.user, "model_version.delete", _t(name, row.version), before,
                    {"forced": forced} if forced else None, now)

    # -- renaming --------------------------------------------------------
    def rename_registered_model(self, name: str, new_name: str) -> RegisteredModel:
        """Give model ``name`` the name ``new_name``, with everything it holds.

        :class:`~cairn.errors.AlreadyExists` if ``new_name`` is taken; new names follow the
        naming policy.  Each version's record digest is recomputed for the new name (after
        checking the old one); a model with signed versions cannot be renamed
        (:class:`~cairn.errors.Conflict`: a signature covers the name).  Audited.
        """
        check_name(new_name)
        with self.session(write=True) as conn:
            repo.require_model(conn, name)
            if new_name == name:
                return repo.to_model(conn, repo.require_model(conn, name))
            if repo.model_row(conn, new_name) is not None:
                raise AlreadyExists(f"a registered model named {new_name!r} already exists",
                                    name=new_name)
            policy = self._naming(conn)
            if policy is not None:
                policy.check(new_name)
            rows = repo.version_rows(conn, name, trashed=True)  # the trash's move with it
            signed = [r.version for r in rows if r.signing_key is not None]
            if signed:
                raise Conflict(f"model {name!r} has signed versions ({', '.join(signed)}); a "
                               "signature covers the model's name and cannot be replaced, so "
                               "this model keeps its name", name=name, versions=signed)
            now = clock.now_ms()
            digests: dict[str, list[str]] = {}
            for r in rows:
                values = repo.row_values(r)
                if repo.record_digest(values) != r.digest:
                    raise CorruptObject(f"the registry record of {name}/{r.version} was changed "
                                        "after it was registered (its digest does not match); "
                                        "it is not renamed (`cairn models verify` checks all)",
                                        name=name, version=r.version)
                lineage = json.loads(r.lineage)
                lineage.setdefault("registered_as", name)
                parent = r.parent_version
                if parent is not None and parent.startswith(name + "/"):
                    parent = new_name + parent[len(name):]
                values.update(name=new_name, lineage=repo.dumps(lineage), parent_version=parent)
                digest = repo.record_digest(values)
                conn.execute(sa.update(repo.MV).where(repo.MV.c.name == name,
                                                      repo.MV.c.version == r.version)
                             .values(name=new_name, lineage=values["lineage"],
                                     parent_version=parent, digest=digest))
                digests[r.version] = [r.digest, digest]
            for table in (repo.T.model_aliases, repo.T.stage_policies,
                          repo.T.transition_requests, repo.T.model_history):
                conn.execute(sa.update(table).where(table.c.name == name).values(name=new_name))
            repo.rename_model_settings(conn, name, new_name)
            M = repo.T.registered_models
            conn.execute(sa.update(M).where(M.c.name == name).values(name=new_name, updated_at=now))
            repo.add_history(conn, new_name, None, "rename", self.user, now,
                             reason=f"renamed from {name} to {new_name}")
            repo.record(conn, self.user, "model.rename", _t(name), {"name": name},
                        {"name": new_name, "digests": digests}, now)
            self._roles_follow(conn, name, new_name, now)
            _comments_follow(conn, name, new_name)
            _reports_follow(conn, name, new_name)
            return repo.to_model(conn, repo.require_model(conn, new_name))


def _comments_follow(conn: Connection, name: str, new_name: str | None) -> None:
    """The comments on model ``name``'s versions move to ``new_name`` (a rename) or go with
    their edits and mentions (None: a delete), in the model's own transaction: a thread
    keyed ``NAME@VERSION`` must never pass to a later model that takes the name, whose
    role holders would then read it."""
    from ..store.sql import tables_collab as TC

    C = TC.comments
    prefix = name + "@"
    mine = sa.and_(C.c.target_type == "model_version",
                   sa.func.substr(C.c.target_id, 1, len(prefix)) == prefix)
    if new_name is not None:
        conn.execute(sa.update(C).where(mine).values(
            target_id=sa.literal(new_name + "@") + sa.func.substr(C.c.target_id, len(prefix) + 1)))
        return
    ids = sa.select(C.c.id).where(mine).scalar_subquery()
    conn.execute(sa.delete(TC.comment_edits).where(TC.comment_edits.c.comment_id.in_(ids)))
    conn.execute(sa.delete(TC.comment_mentions).where(TC.comment_mentions.c.comment_id.in_(ids)))
    conn.execute(sa.delete(C).where(mine))


DELETED_MODEL = "{}@deleted"  # no model can take this name ('@' is not allowed in one)


def _reports_follow(conn: Connection, name: str, new_name: str | None) -> None:
    """A report's stages panels draw a model by name, and who may read the report is
    decided by those names: on a rename both become the new name; on a delete a name no
    model can take, so that a later model of the old name neither opens the report to its
    own role holders nor has its history drawn there (admins still read the report; the
    panel says its model is gone).  The body keeps the text it was written with."""
    from ..store.sql import tables_collab as TC

    R = TC.reports
    moved_to = new_name or DELETED_MODEL.format(name)
    for rname, models, panels in conn.execute(sa.select(R.c.name, R.c.models, R.c.panels).where(
            R.c.models.contains(json.dumps(name), autoescape=True))).all():
        names = json.loads(models)
        if name not in names:
            continue
        drawn = json.loads(panels)
        for panel in drawn:
            if panel.get("type") == "stages" and panel.get("model") == name:
                panel["model"] = moved_to
        conn.execute(sa.update(R).where(R.c.name == rname).values(
            models=json.dumps([moved_to if m == name else m for m in names], ensure_ascii=False),
            panels=json.dumps(drawn, ensure_ascii=False)))
