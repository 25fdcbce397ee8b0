"""The data-set catalog: versions, aliases, run inputs and derivations in the index database.

SQLAlchemy Core over the tables of ``store/sql/tables_data.py``; rows become
:class:`~cairn.data.entities.DatasetVersion` values here and go no further.  Every
mutation is one transaction, so a version appears with its aliases and parents or
not at all.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping, Protocol, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .. import clock
from ..errors import Conflict, NotFound
from ..store.sql import tables_data as T
from .entities import DataRef, Dataset, DatasetVersion, check_alias, check_name


class VersionRef(Protocol):
    """A version by name and number (a :class:`DatasetVersion`, or a remote's reference to
    one that may not exist here): what a new version records as its parents."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> int: ...


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
            with self.index.session() as conn:
                self._require_dataset(conn, r.name)
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
                T.dataset_versions.c.dataset == name).order_by(T.dataset_versions.c.version))]
            return self._load(conn, name, numbers)

    def datasets(self) -> list[Dataset]:
        v, a = T.dataset_versions, T.dataset_aliases
        with self.index.session() as conn:
            summary = conn.execute(sa.select(
                v.c.dataset, sa.func.count(), sa.func.max(v.c.version), sa.func.min(v.c.created_at),
                sa.func.max(v.c.created_at)).group_by(v.c.dataset).order_by(v.c.dataset)).all()
            aliases: dict[str, dict[str, int]] = {}
            for ds, alias, ver in conn.execute(sa.select(a.c.dataset, a.c.alias, a.c.version)):
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
                v.c.tree_oid == tree)).all()
            return [self._load(conn, r.dataset, [r.version])[0] for r in rows]

    def versions_by_run(self, run_id: str) -> list[DatasetVersion]:
        v = T.dataset_versions
        with self.index.session() as conn:
            rows = conn.execute(sa.select(v.c.dataset, v.c.version).where(
                v.c.run_id == run_id).order_by(v.c.dataset, v.c.version)).all()
            return [self._load(conn, r.dataset, [r.version])[0] for r in rows]

    def children(self, name: str, version: int) -> list[tuple[str, int]]:
        d = T.derivations
        with self.index.session() as conn:
            return [(r[0], r[1]) for r in conn.execute(sa.select(d.c.dataset, d.c.version).where(
                d.c.parent_dataset == name, d.c.parent_version == version).order_by(
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
            number = version if version is not None else (latest or 0) + 1
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

    # -- helpers ---------------------------------------------------------------------
    @staticmethod
    def _require_dataset(conn: Connection, name: str) -> None:
        if conn.execute(sa.select(T.datasets.c.name).where(
                T.datasets.c.name == name)).first() is None:
            raise NotFound(f"no data set named {name!r}", name=name)

    @staticmethod
    def _latest_number(conn: Connection, name: str) -> int | None:
        return conn.execute(sa.select(sa.func.max(T.dataset_versions.c.version)).where(
            T.dataset_versions.c.dataset == name)).scalar()

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
            v.c.dataset == name, v.c.version.in_(list(numbers))))}
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


def _replace_created(v: DatasetVersion, created: bool) -> DatasetVersion:
    import dataclasses

    return dataclasses.replace(v, created=created)
