"""The data-set catalog: versions, aliases, run inputs and derivations in the index database.

SQLAlchemy Core over the tables of ``store/sql/tables_data.py``; rows become
:class:`~cairn.data.entities.DatasetVersion` values here and go no further.  Every
mutation is one transaction, so a version appears with its aliases and parents or
not at all.

A deleted version goes to the trash (``deleted_at`` set, revision 0010): every read here
sees live versions only, and a reference to one in the trash fails with a
:class:`~cairn.errors.NotFound` that says so and how to restore it.  Its aliases stay (a
restore gives them back) but resolve to that NotFound meanwhile.  Version numbers are
never given twice: the trash's count, and so does a purged version (its number is kept in
``registry_settings`` under ``data.top/<name key>``).
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping, Protocol, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .. import clock
from ..errors import Conflict, InvalidArgument, NotFound
from ..store.sql import tables as TR
from ..store.sql import tables_data as T
from .entities import DataRef, Dataset, DatasetVersion, check_alias, check_name


class VersionRef(Protocol):
    """A version by name and number (a :class:`DatasetVersion`, or a remote's reference to
    one that may not exist here): what a new version records as its parents."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> int: ...


_V = T.dataset_versions
LIVE = _V.c.deleted_at.is_(None)
TOP_PREFIX = "data.top/"


def top_key(name: str) -> str:
    """The ``registry_settings`` key of the highest purged version number of ``name``."""
    import hashlib

    return TOP_PREFIX + hashlib.sha256(name.encode()).hexdigest()[:32]


def _iso(ms: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).isoformat(timespec="seconds")


def in_trash(ref: str, deleted_at: int, deleted_by: str | None) -> str:
    """What a read of a data set version in the trash is told."""
    return (f"data set version {ref} is in the trash (deleted {_iso(deleted_at)}"
            f"{f' by {deleted_by}' if deleted_by else ''}); restore it with `cairn data "
            f"restore {ref}` (or Datasets.restore_version) before the trash is emptied")


class Catalog:
    """Data-set metadata over an index with a ``session(write=...)`` transaction helper."""

    def __init__(self, index: Any) -> None:
        self.index = index

    # -- reads -----------------------------------------------------------------------
    def resolve(self, ref: "str | DataRef | DatasetVersion") -> DatasetVersion:
        r = DataRef.parse(ref)
        with self.index.session() as conn:
            version = r.version
            if version is None and r.alias:
                version = conn.execute(sa.select(T.dataset_aliases.c.version).where(
                    T.dataset_aliases.c.dataset == r.name,
                    T.dataset_aliases.c.alias == r.alias)).scalar()
                if version is None:
                    self._require_dataset(conn, r.name)
                    raise NotFound(f"data set {r.name!r} has no alias {r.alias!r}", ref=str(r))
            elif version is None:
                version = self._latest_number(conn, r.name)
                if version is None:
                    self._require_dataset(conn, r.name)
                    raise NotFound(f"data set {r.name!r} has no versions", ref=str(r))
            found = self._load(conn, r.name, [version])
            if not found:
                self._require_dataset(conn, r.name)
                gone = self._trashed(conn, r.name, version)
                if gone is not None:
                    raise NotFound(in_trash(f"{r.name}@{version}", gone.deleted_at,
                                            gone.deleted_by), ref=str(r), trashed=True)
                raise NotFound(f"data set {r.name!r} has no version {version}", ref=str(r))
        return found[0]

    def latest(self, name: str) -> DatasetVersion | None:
        with self.index.session() as conn:
            number = self._latest_number(conn, name)
            return None if number is None else self._load(conn, name, [number])[0]

    def versions(self, name: str) -> list[DatasetVersion]:
        check_name(name)
        with self.index.session() as conn:
            self._require_dataset(conn, name)
            numbers = [r[0] for r in conn.execute(sa.select(T.dataset_versions.c.version).where(
                T.dataset_versions.c.dataset == name, LIVE).order_by(
                T.dataset_versions.c.version))]
            return self._load(conn, name, numbers)

    def datasets(self) -> list[Dataset]:
        v, a = T.dataset_versions, T.dataset_aliases
        with self.index.session() as conn:
            summary = conn.execute(sa.select(
                v.c.dataset, sa.func.count(), sa.func.max(v.c.version), sa.func.min(v.c.created_at),
                sa.func.max(v.c.created_at)).where(LIVE).group_by(v.c.dataset)
                .order_by(v.c.dataset)).all()
            aliases: dict[str, dict[str, int]] = {}
            for ds, alias, ver in conn.execute(sa.select(a.c.dataset, a.c.alias, a.c.version).join(
                    v, sa.and_(v.c.dataset == a.c.dataset, v.c.version == a.c.version)).where(LIVE)):
                aliases.setdefault(ds, {})[alias] = ver
            out = []
            for name, count, latest, first, last in summary:
                row = conn.execute(sa.select(v.c.size, v.c.files).where(
                    v.c.dataset == name, v.c.version == latest)).first()
                out.append(Dataset(name, count, latest, first, last, row.size, row.files,
                                   aliases.get(name, {})))
        return out

    def versions_by_tree(self, tree: str) -> list[DatasetVersion]:
        v = T.dataset_versions
        with self.index.session() as conn:
            rows = conn.execute(sa.select(v.c.dataset, v.c.version).where(
                v.c.tree_oid == tree, LIVE)).all()
            return [self._load(conn, r.dataset, [r.version])[0] for r in rows]

    def versions_by_run(self, run_id: str) -> list[DatasetVersion]:
        v = T.dataset_versions
        with self.index.session() as conn:
            rows = conn.execute(sa.select(v.c.dataset, v.c.version).where(
                v.c.run_id == run_id, LIVE).order_by(v.c.dataset, v.c.version)).all()
            return [self._load(conn, r.dataset, [r.version])[0] for r in rows]

    def children(self, name: str, version: int) -> list[tuple[str, int]]:
        d = T.derivations
        live = sa.select(_V.c.dataset).where(_V.c.dataset == d.c.dataset,
                                             _V.c.version == d.c.version, LIVE).exists()
        with self.index.session() as conn:  # a child in the trash is not shown
            return [(r[0], r[1]) for r in conn.execute(sa.select(d.c.dataset, d.c.version).where(
                d.c.parent_dataset == name, d.c.parent_version == version, live).order_by(
                d.c.dataset, d.c.version))]

    def run_inputs(self, run_id: str) -> list[tuple[str, int, str]]:
        ri = T.run_inputs
        with self.index.session() as conn:
            return [(r[0], r[1], r[2]) for r in conn.execute(sa.select(
                ri.c.dataset, ri.c.version, ri.c.role).where(ri.c.run_id == run_id).order_by(
                ri.c.role, ri.c.dataset, ri.c.version))]

    def readers(self, name: str, version: int) -> list[tuple[str, str]]:
        """(run id, role) of every run that logged this version as an input."""
        ri = T.run_inputs
        with self.index.session() as conn:
            return [(r[0], r[1]) for r in conn.execute(sa.select(ri.c.run_id, ri.c.role).where(
                ri.c.dataset == name, ri.c.version == version).order_by(ri.c.logged_at))]

    # -- writes ----------------------------------------------------------------------
    def create_version(self, name: str, *, tree: str, packs: Sequence[str], files: int,
                       size: int, user: str, message: str = "", source: str = "",
                       kind: str = "add", run_id: str | None = None, commit: str | None = None,
                       transform: Mapping[str, Any] | None = None,
                       stats: Mapping[str, Any] | None = None,
                       quality: Sequence[Mapping[str, Any]] = (),
                       parents: Sequence[VersionRef] = (),
                       aliases: Sequence[str] = (), version: int | None = None,
                       created_at: int | None = None,
                       if_unchanged_return_latest: bool = True) -> DatasetVersion:
        """Record a new version (numbered after the latest) in one transaction.

        When the latest version already has this tree and these parents, nothing is
        created: that version is returned with ``created=False`` (aliases still move).
        ``version`` forces a number (a pull keeps the remote's numbers).
        """
        check_name(name)
        for alias in aliases:
            check_alias(alias)
        now = clock.now_ms()
        parent_refs = sorted({(p.name, p.version) for p in parents})
        v = T.dataset_versions
        with self.index.session(write=True) as conn:
            if conn.execute(sa.select(T.datasets.c.name).where(
                    T.datasets.c.name == name)).first() is None:
                conn.execute(sa.insert(T.datasets).values(name=name, description="",
                                                          created_by=user, created_at=now))
            latest = self._latest_number(conn, name)
            if version is None and latest is not None and if_unchanged_return_latest:
                row = conn.execute(sa.select(v.c.tree_oid).where(
                    v.c.dataset == name, v.c.version == latest)).first()
                if row.tree_oid == tree and self._parents(conn, name, latest) == parent_refs:
                    self._set_aliases(conn, name, latest, aliases, user, now)
                    found = self._load(conn, name, [latest])[0]
                    return _replace_created(found, False)
            # Numbers of versions in the trash, or purged from it, are not given again.
            number = version if version is not None else (self._top_number(conn, name) or 0) + 1
            if version is not None and conn.execute(sa.select(v.c.tree_oid).where(
                    v.c.dataset == name, v.c.version == version)).first() is not None:
                raise Conflict(f"data set {name!r} already has a version {version}",
                               ref=f"{name}@{version}")
            conn.execute(sa.insert(v).values(
                dataset=name, version=number, tree_oid=tree, packs=json.dumps(sorted(packs)),
                files=files, size=size, message=message or "", source=source or "", kind=kind,
                run_id=run_id, commit=commit, transform=json.dumps(dict(transform or {}),
                                                                   sort_keys=True, default=str),
                stats=json.dumps(dict(stats or {}), sort_keys=True, default=str),
                quality=json.dumps(list(quality), default=str),
                created_by=user, created_at=created_at or now))
            if parent_refs:
                conn.execute(sa.insert(T.derivations), [
                    {"dataset": name, "version": number, "parent_dataset": pn,
                     "parent_version": pv} for pn, pv in parent_refs])
            self._set_aliases(conn, name, number, aliases, user, now)
            return self._load(conn, name, [number])[0]

    def set_alias(self, ref: "str | DataRef | DatasetVersion", alias: str, user: str) -> DatasetVersion:
        target = self.resolve(ref)
        check_alias(alias)
        with self.index.session(write=True) as conn:
            self._set_aliases(conn, target.name, target.version, [alias], user, clock.now_ms())
            return self._load(conn, target.name, [target.version])[0]

    def delete_alias(self, name: str, alias: str) -> None:
        a = T.dataset_aliases
        with self.index.session(write=True) as conn:
            res = conn.execute(sa.delete(a).where(a.c.dataset == name, a.c.alias == alias))
            if not res.rowcount:
                raise NotFound(f"data set {name!r} has no alias {alias!r}")

    def log_input(self, run_id: str, version: DatasetVersion, role: str) -> None:
        ri = T.run_inputs
        with self.index.session(write=True) as conn:
            exists = conn.execute(sa.select(ri.c.run_id).where(
                ri.c.run_id == run_id, ri.c.dataset == version.name,
                ri.c.version == version.version, ri.c.role == role)).first()
            if exists is None:
                conn.execute(sa.insert(ri).values(run_id=run_id, dataset=version.name,
                                                  version=version.version, role=role,
                                                  logged_at=clock.now_ms()))

    # -- the trash -------------------------------------------------------------------
    def protection(self, name: str, version: int) -> list[str]:
        """Why deleting ``name@version`` needs force: the live registered model versions it
        is an input of, and the aliases that point at it (empty: not protected)."""
        with self.index.session() as conn:
            return _protection_reasons(_model_users(conn, name, version),
                                       _aliases_of(conn, name, version))

    def delete_version(self, ref: "str | DataRef | DatasetVersion", user: str,
                       force: bool = False) -> DatasetVersion:
        """Move a version to the trash (see :meth:`cairn.data.Datasets.delete_version`)."""
        r = _exact(ref, "delete")
        v = self.resolve(r)
        now = clock.now_ms()
        with self.index.session(write=True) as conn:
            row = conn.execute(sa.select(_V).where(_V.c.dataset == v.name,
                                                   _V.c.version == v.version, LIVE)).first()
            if row is None:  # deleted meanwhile
                return self.resolve(r)
            users = _model_users(conn, v.name, v.version)
            aliases = _aliases_of(conn, v.name, v.version)
            reasons = _protection_reasons(users, aliases)
            if reasons and not force:
                raise Conflict(f"data set version {v.ref} is protected: {'; '.join(reasons)}. "
                               "Delete those model versions or move those aliases first, or "
                               "force the deletion (`cairn data delete --force`, a server "
                               "admin's, or force=True)", ref=v.ref, models=users,
                               aliases=aliases)
            conn.execute(sa.update(_V).where(_V.c.dataset == v.name, _V.c.version == v.version)
                         .values(deleted_at=now, deleted_by=user))
            after: dict[str, Any] = {"trash": True, "deleted_at": now}
            if reasons:
                after["forced"] = ([f"an input of {u}" for u in users]
                                   + [f"alias '{a}'" for a in aliases])
            _audit(conn, user, "dataset_version.delete", v, {
                "tree": v.tree, "packs": list(v.packs), "aliases": list(v.aliases),
                "created_by": v.created_by, "created_at": v.created_at}, after, now)
        return v

    def restore_version(self, ref: "str | DataRef | DatasetVersion", user: str) -> DatasetVersion:
        """Bring a version back from the trash, with its aliases."""
        r = _exact(ref, "restore")
        assert r.version is not None
        now = clock.now_ms()
        with self.index.session(write=True) as conn:
            self._require_dataset(conn, r.name)
            row = self._trashed(conn, r.name, r.version)
            if row is None:
                if self._load(conn, r.name, [r.version]):
                    raise Conflict(f"data set version {r} is not in the trash; nothing to "
                                   "restore", ref=str(r))
                raise NotFound(f"data set version {r} is not in the trash (`cairn trash ls` "
                               "lists what is; a version purged from it is gone)", ref=str(r))
            conn.execute(sa.update(_V).where(_V.c.dataset == r.name, _V.c.version == r.version)
                         .values(deleted_at=None, deleted_by=None))
            _audit(conn, user, "dataset_version.restore", r,
                   {"deleted_at": row.deleted_at, "deleted_by": row.deleted_by}, None, now)
            return self._load(conn, r.name, [r.version])[0]

    # -- helpers ---------------------------------------------------------------------
    @staticmethod
    def _require_dataset(conn: Connection, name: str) -> None:
        if conn.execute(sa.select(T.datasets.c.name).where(
                T.datasets.c.name == name)).first() is None:
            raise NotFound(f"no data set named {name!r}", name=name)

    @staticmethod
    def _latest_number(conn: Connection, name: str) -> int | None:
        return conn.execute(sa.select(sa.func.max(T.dataset_versions.c.version)).where(
            T.dataset_versions.c.dataset == name, LIVE)).scalar()

    @staticmethod
    def _top_number(conn: Connection, name: str) -> int | None:
        """The highest number ``name`` ever gave: live, in the trash, or purged."""
        mine = conn.execute(sa.select(sa.func.max(_V.c.version)).where(
            _V.c.dataset == name)).scalar()
        purged = conn.execute(sa.select(TR.registry_settings.c.value).where(
            TR.registry_settings.c.key == top_key(name))).scalar()
        tops = [n for n in (mine, None if purged is None else int(json.loads(purged)))
                if n is not None]
        return max(tops) if tops else None

    @staticmethod
    def _trashed(conn: Connection, name: str, version: int) -> Any:
        return conn.execute(sa.select(_V).where(_V.c.dataset == name, _V.c.version == version,
                                                _V.c.deleted_at.is_not(None))).first()

    @staticmethod
    def _parents(conn: Connection, name: str, version: int) -> list[tuple[str, int]]:
        d = T.derivations
        return sorted((r[0], r[1]) for r in conn.execute(sa.select(
            d.c.parent_dataset, d.c.parent_version).where(d.c.dataset == name,
                                                          d.c.version == version)))

    @staticmethod
    def _set_aliases(conn: Connection, name: str, version: int, aliases: Iterable[str],
                     user: str, now: int) -> None:
        a = T.dataset_aliases
        for alias in aliases:
            conn.execute(sa.delete(a).where(a.c.dataset == name, a.c.alias == alias))
            conn.execute(sa.insert(a).values(dataset=name, alias=alias, version=version,
                                             updated_by=user, updated_at=now))

    def _load(self, conn: Connection, name: str, numbers: Sequence[int]) -> list[DatasetVersion]:
        if not numbers:
            return []
        v, a = T.dataset_versions, T.dataset_aliases
        rows = {r.version: r for r in conn.execute(sa.select(v).where(
            v.c.dataset == name, v.c.version.in_(list(numbers)), LIVE))}
        aliases: dict[int, list[str]] = {}
        for alias, ver in conn.execute(sa.select(a.c.alias, a.c.version).where(
                a.c.dataset == name).order_by(a.c.alias)):
            aliases.setdefault(ver, []).append(alias)
        out = []
        for n in numbers:
            r = rows.get(n)
            if r is None:
                continue
            parents = tuple(f"{pn}@{pv}" for pn, pv in self._parents(conn, name, n))
            out.append(DatasetVersion(
                name=name, version=n, tree=r.tree_oid, files=r.files, size=r.size,
                created_at=r.created_at, created_by=r.created_by, message=r.message,
                source=r.source, kind=r.kind, aliases=tuple(aliases.get(n, ())),
                packs=tuple(json.loads(r.packs)), run_id=r.run_id, commit=r.commit,
                parents=parents, transform=json.loads(r.transform), stats=json.loads(r.stats),
                quality=tuple(json.loads(r.quality))))
        return out


def _exact(ref: Any, verb: str) -> DataRef:
    """A reference that names one version by number (a trash operation never guesses)."""
    r = DataRef.parse(ref)
    if r.version is None:
        raise InvalidArgument(f"say which version to {verb}: NAME@VERSION (e.g. {r.name}@3), "
                              f"not {str(r)!r}", ref=str(r))
    return r


def _audit(conn: Connection, user: str, action: str, v: Any, before: Any, after: Any,
           now: int) -> None:
    from ..registry import audit

    audit.append(conn, user, action, f"dataset:{v.name}@{v.version}", before, after, now)


def _model_users(conn: Connection, name: str, version: int) -> list[str]:
    """Live registered model versions (``model/1.2.0``) that used ``name@version`` as
    input: named in the version's data sets, or read by the run it came from."""
    mv, ri = TR.model_versions, T.run_inputs
    quoted = json.dumps(name, ensure_ascii=False)[1:-1]  # as the registry writes it
    readers = sa.select(ri.c.run_id).where(ri.c.dataset == name, ri.c.version == version)
    rows = conn.execute(sa.select(mv.c.name, mv.c.version, mv.c.datasets, mv.c.source_run_id,
                                  readers.where(ri.c.run_id == mv.c.source_run_id).exists()
                                  .label("read"))
                        .where(mv.c.deleted_at.is_(None),
                               sa.or_(mv.c.source_run_id.in_(readers),
                                      mv.c.datasets.contains(quoted, autoescape=True)))).all()
    out = []
    for r in rows:
        named = any(isinstance(d, dict) and d.get("name") == name
                    and str(d.get("version")) == str(version)
                    for d in json.loads(r.datasets or "[]"))
        if named or r.read:
            out.append(f"{r.name}/{r.version}")
    return sorted(out)


def _replace_created(v: DatasetVersion, created: bool) -> DatasetVersion:
    import dataclasses

    return dataclasses.replace(v, created=created)


def _aliases_of(conn: Connection, name: str, version: int) -> list[str]:
    a = T.dataset_aliases
    return sorted(conn.execute(sa.select(a.c.alias).where(
        a.c.dataset == name, a.c.version == version)).scalars())


def _protection_reasons(users: list[str], aliases: list[str]) -> list[str]:
    """The reasons a version may only be deleted with force, as the refusal and the UI spell
    them: an alias is something readers resolve by name."""
    return ([f"it is an input of registered model version {u}" for u in users]
            + [f"alias '{a}' points at it" for a in aliases])
