"""Every object id something in the index refers to: what garbage collection keeps.

The roots, read from the index (SQLite or PostgreSQL alike) a page at a time, so a store
of a million artifacts costs one set of oids in memory and nothing more:

- run artifacts (``artifacts``: the digest of a small file, the chunks of a large one),
  except those of runs whose artifact TTL has passed (run tag ``cairn.artifacts.expires``
  at or before now) unless the run is tagged ``keep`` or is the source of a live model
  version;
- the code a run ran (its captured environment names the patch and source files);
- model versions (``model_versions.tree_oid``: the tree and every file in it);
- data set versions (``dataset_versions``: the tree, its files and the packs it reads);
- pipeline cache records (run tag ``cairn.pipeline.record``) and the trees they name;
- on a local store, the artifacts of journal records the index lacks: those replay set
  aside (``quarantine/``) and those not applied yet.

Runs, experiments and versions in the trash are still roots: only a purge (``cairn.lifecycle
.trash.purge``) removes their rows, and with them their claim on the objects.  Trees are
immutable by oid, so a second pass (:meth:`Marker.mark` again, the generation's re-check)
only reads the trees it has not seen.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

from ..errors import CairnError, NotFound

if TYPE_CHECKING:  # pragma: no cover
    from ..cas.odb import ObjectStore

#: Rows read per query: a page is one short read transaction, whatever the table's size.
PAGE = 20_000
RECORD_TAG = "cairn.pipeline.record"  # cairn.pipelines.cache.RECORD_TAG, without importing it


@dataclass(frozen=True)
class Unrooted:
    """What the purge a ``cairn gc`` runs before its sweep would remove: a dry run, which
    purges nothing, marks without them so that its garbage is the real run's."""

    runs: frozenset[str] = frozenset()
    experiments: frozenset[str] = frozenset()
    datasets: frozenset[tuple[str, int]] = frozenset()
    models: frozenset[tuple[str, str]] = frozenset()

    @classmethod
    def of(cls, items: Any) -> "Unrooted":
        """From :class:`cairn.lifecycle.trash.TrashItem` s (a dry-run purge's ``purged``)."""
        runs, exps, datasets, models = set(), set(), set(), set()
        for item in items:
            if item.kind == "run":
                runs.add(item.identifier)
            elif item.kind == "experiment":
                exps.add(item.identifier)
            elif item.kind == "dataset_version":
                name, _, version = item.identifier.rpartition("@")
                datasets.add((name, int(version)))
            elif item.kind == "model_version":
                name, _, version = item.identifier.rpartition("/")
                models.add((name, version))
        return cls(frozenset(runs), frozenset(exps), frozenset(datasets), frozenset(models))


@dataclass
class Marker:
    """Marks what ``store``'s index refers to in ``objects``; call :meth:`mark` again to add
    what was referred to meanwhile (trees read once)."""

    store: Any
    objects: "ObjectStore"
    now_ms: int
    page: int = PAGE
    oids: set[str] = field(default_factory=set)
    trees: set[str] = field(default_factory=set)  # trees whose files are in ``oids`` already
    unreadable: dict[str, str] = field(default_factory=dict)  # tree -> who names it (lost)
    expired_runs: int = 0
    _stamp: tuple[Any, ...] | None = None  # the writers table when run rows were last read
    unrooted: Unrooted = field(default_factory=Unrooted)

    def mark(self) -> set[str]:
        self.unreadable.clear()
        # Run rows (artifacts, environments, tags) change only with a journal record
        # applied, which moves its writer's row in the same transaction: when no writer
        # moved since the last mark, a re-mark need not read them again.
        stamp = self._writers_stamp()
        if stamp != self._stamp:
            skip = self._expired_runs()
            self.expired_runs = len(skip)
            gone = self._unrooted_runs()
            self._artifacts(skip | gone)
            self._sources(gone)
            self._records(gone)
            self._journal_only()
        self._stamp = stamp
        self._models()
        self._datasets()
        return self.oids

    def _writers_stamp(self) -> tuple[Any, ...]:
        with self.store.index.read() as conn:
            row = conn.exec_driver_sql(
                'SELECT count(*), sum(seq), sum("offset") FROM writers').one()
        return tuple(row)

    # -- the index, a page at a time ----------------------------------------------

    def _pages(self, table: str, keys: tuple[str, ...], cols: tuple[str, ...],
               where: str = "", params: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
        """``cols`` of ``table``'s rows in key order, ``page`` rows per read (keyset paging).

        Straight through the driver's cursor: rows as plain tuples cost a tenth of
        SQLAlchemy rows, and a mark reads every artifact row twice.  ``where`` writes its
        placeholders as ``{ph}``."""
        after: tuple[Any, ...] | None = None
        order = ", ".join(keys)
        n = len(keys)
        while True:
            with self.store.index.read() as conn:
                ph = "%s" if conn.dialect.name == "postgresql" else "?"
                conds = [where.format(ph=ph)] if where else []
                args = list(params)
                if after is not None:
                    conds.append(f"({order}) > ({', '.join([ph] * n)})" if n > 1
                                 else f"{keys[0]} > {ph}")
                    args += after
                sql = (f"SELECT {', '.join(keys + cols)} FROM {table}"
                       + (f" WHERE {' AND '.join(conds)}" if conds else "")
                       + f" ORDER BY {order} LIMIT {int(self.page)}")
                cur = conn.connection.dbapi_connection.cursor()
                try:
                    cur.execute(sql, args)
                    rows = cur.fetchall()
                finally:
                    cur.close()
            for row in rows:
                yield tuple(row[n:])
            if len(rows) < self.page:
                return
            after = tuple(rows[-1][:n])

    def _expired_runs(self) -> set[str]:
        """Runs whose artifacts are no longer roots (TTL passed, not kept)."""
        import sqlalchemy as sa

        from ..store.sql import tables as T
        from .retention import EXPIRES_TAG, KEEP_TAG, artifacts_expired

        tags: dict[str, dict[str, str]] = {}
        for rid, key, value in self._pages("tags", ("run_id", "key"), ("run_id", "key", "value"),
                                           "key IN ({ph}, {ph})", (EXPIRES_TAG, KEEP_TAG)):
            tags.setdefault(rid, {})[key] = value
        expired = {rid for rid, tg in tags.items() if artifacts_expired(tg, self.now_ms)}
        if not expired:
            return expired
        mv = T.model_versions
        with self.store.index.read() as conn:
            sources = {r[0] for r in conn.execute(
                sa.select(mv.c.source_run_id).where(mv.c.deleted_at.is_(None),
                                                    mv.c.source_run_id.is_not(None)))}
        return expired - sources

    def _unrooted_runs(self) -> set[str]:
        runs = set(self.unrooted.runs)
        exps = sorted(self.unrooted.experiments)
        for i in range(0, len(exps), 500):
            part = exps[i:i + 500]
            runs.update(rid for (rid,) in self._pages(
                "runs", ("id",), ("id",),
                f"experiment_id IN ({', '.join(['{ph}'] * len(part))})", tuple(part)))
        return runs

    def _artifacts(self, skip: set[str]) -> None:
        add = self.oids.add
        # SQLite pages by rowid: a shorter key to compare and no path to carry.
        keys = ("rowid",) if self.store.index.engine.dialect.name == "sqlite" \
            else ("run_id", "path")
        for rid, digest, chunks in self._pages("artifacts", keys,
                                               ("run_id", "digest", "chunks")):
            if skip and rid in skip:
                continue
            if chunks:
                for oid, _size in json.loads(chunks):
                    add(oid)
            else:
                add(digest)

    def _journal_only(self) -> None:
        """Artifacts that only a local store's journals name: records replay set aside
        (``quarantine/``: kept to be repaired, so their objects are kept too) and records
        the index has not applied (a run whose creation record has not arrived yet, a
        writer's group commit in flight)."""
        import os
        from pathlib import Path

        from ..store import journal

        root = getattr(self.store, "root", None)
        offsets_of = getattr(self.store.index, "all_writer_offsets", None)
        if not isinstance(root, Path) or offsets_of is None:
            return
        files = [(p, 0) for p in (root / "quarantine").glob("*/*.cjr")]
        runs = root / "runs"
        if runs.is_dir():
            offsets = offsets_of()
            for run in os.scandir(runs):
                try:
                    found = list(os.scandir(os.path.join(run.path, "journal")))
                except (FileNotFoundError, NotADirectoryError):
                    continue
                for f in found:
                    if f.name.endswith(".cjl"):
                        applied = offsets.get(f.name[:-4], 0)
                        if f.stat().st_size > applied:
                            files.append((Path(f.path), applied))
        for path, offset in files:
            try:
                for rec in journal.read(path, offset):
                    if isinstance(rec, journal.Entry):
                        self._entries(rec.batch.artifacts)
            except OSError:
                continue

    def _entries(self, entries: Any) -> None:
        for e in entries or ():
            chunks = getattr(e, "chunks", None)
            if chunks:
                try:
                    self.oids.update(c[0] for c in chunks if _is_oid(c[0]))
                except (TypeError, IndexError):
                    pass
            elif _is_oid(getattr(e, "digest", None)):
                self.oids.add(e.digest)

    def _sources(self, skip: set[str]) -> None:
        from ..environment import source_oids

        for rid, env in self._pages("runs", ("id",), ("id", "env"), "env <> {ph}", ("{}",)):
            if rid in skip:
                continue
            try:
                captured = json.loads(env)
            except (TypeError, ValueError):
                continue
            self.oids.update(source_oids(captured))

    def _records(self, skip: set[str]) -> None:
        for rid, oid in self._pages("tags", ("run_id", "key"), ("run_id", "value"),
                                    "key = {ph}", (RECORD_TAG,)):
            if rid in skip or not _is_oid(oid):
                continue
            self.oids.add(oid)
            if oid in self.trees:
                continue
            self.trees.add(oid)  # read once: a record never changes
            try:
                record = json.loads(self.objects.get_bytes(oid))
            except (CairnError, ValueError):
                continue  # a lost record: the cache runs the stage again, nothing to keep
            outs = record.get("outs") if isinstance(record, dict) else None
            for out in (outs or {}).values() if isinstance(outs, dict) else ():
                tree = out.get("tree") if isinstance(out, dict) else None
                if isinstance(tree, str) and _is_oid(tree):
                    self._tree(tree, f"pipeline record {oid}")

    def _models(self) -> None:
        for name, version, tree in self._pages("model_versions", ("name", "version"),
                                               ("name", "version", "tree_oid")):
            if (name, version) in self.unrooted.models:
                continue
            self._tree(tree, f"model {name} version {version}")

    def _datasets(self) -> None:
        for name, version, tree, packs in self._pages(
                "dataset_versions", ("dataset", "version"),
                ("dataset", "version", "tree_oid", "packs")):
            if (name, version) in self.unrooted.datasets:
                continue
            self._tree(tree, f"data set {name}@{version}")
            try:
                self.oids.update(p for p in json.loads(packs or "[]") if _is_oid(p))
            except ValueError:
                pass

    def _tree(self, tree: str, who: str) -> None:
        self.oids.add(tree)
        if tree in self.trees:
            return
        try:
            entries = self.objects.get_tree(tree)
        except NotFound:
            self.unreadable[tree] = f"{who}: its file list {tree} is missing"
            return
        except CairnError as exc:
            self.unreadable[tree] = f"{who}: its file list {tree} cannot be read ({exc.message})"
            return
        for e in entries:
            if e.chunks:
                self.oids.update(c[0] for c in e.chunks)
            else:
                self.oids.add(e.digest)
        self.trees.add(tree)


def referenced(store: Any, objects: "ObjectStore | None" = None, *,
               now_ms: int | None = None) -> set[str]:
    """Every oid ``store``'s index refers to (trash included, expired artifacts not)."""
    from .. import clock

    marker = Marker(store, objects if objects is not None else store.objects,
                    clock.now_ms() if now_ms is None else now_ms)
    return marker.mark()


def _is_oid(value: Any) -> bool:
    from ..cas.backends.base import is_oid

    return isinstance(value, str) and is_oid(value)
