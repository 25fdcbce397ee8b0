"""``cairn backup DEST``: a consistent snapshot of a store's index and objects, taken while
writers run.

Local store, in this order (each step holds at least what the one before knows of):

1. the index, with SQLite's online backup API: one point in time, writers not stopped;
2. journals, experiment files and the quarantine: journals only grow, so a copy made after
   the snapshot holds every record the snapshot has applied, and maybe more; a restore
   replays the rest (a record cut short at the end is a write in progress to recovery);
3. objects: immutable and content-addressed, so only what DEST lacks is copied (a second
   backup to the same DEST is incremental), and every object the snapshot or a copied
   journal names was written before it was named.

A server's store (database + ``--objects``): every table is read inside one REPEATABLE
READ transaction (one snapshot of the whole database) into ``index.db``, a SQLite file
with Cairn's own schema, then the objects are copied.  Objects are copied as stored:
an encrypted store's ciphertext and its marker files, never needing its key.  The
layout is in :mod:`cairn.lifecycle.backup_format`.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import clock
from ..errors import InvalidArgument, NotFound
from .backup_format import (
    FORMAT, INDEX, MANIFEST, OBJECT_LIST, OBJECTS, STORE_DIRS, VERSION, Entry, LocalTree, S3Tree,
    object_tree, parse_object_line, read_manifest, sha256_file, write_manifest,
)

_WORKERS = 8  # object copies in flight: S3 round trips overlap
# Stands in for the manifest while a backup is written: it tells an interrupted backup,
# which the next one may finish, from a directory that is something else (a store).
PARTIAL = f"{MANIFEST}.partial"


@dataclass
class BackupReport:
    """What a backup wrote; ``missing`` names objects the index refers to that the store
    itself lacks (the store was damaged already: ``cairn doctor`` says where)."""

    dest: str
    source_kind: str
    schema_revision: str
    counts: dict[str, int]
    objects: int
    objects_copied: int
    objects_reused: int
    bytes_copied: int
    files: int
    seconds: float
    missing: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing

    def to_dict(self) -> dict[str, Any]:
        return {"dest": self.dest, "ok": self.ok, "source_kind": self.source_kind,
                "schema_revision": self.schema_revision, "counts": self.counts,
                "objects": self.objects, "objects_copied": self.objects_copied,
                "objects_reused": self.objects_reused, "bytes_copied": self.bytes_copied,
                "files": self.files, "seconds": round(self.seconds, 3),
                "missing_objects": self.missing}


def backup(store: Any, dest: str | os.PathLike[str], *, objects: str | None = None,
           endpoint_url: str | None = None, progress: bool | None = None) -> BackupReport:
    """Back ``store`` up into directory ``dest`` (made if absent; an earlier backup there is
    brought up to date).  ``objects``: a database store's object store, as ``cairn server
    --objects`` names it (a local store's own by default)."""
    from ..store.local import LocalStore
    from ..store.sql.store import SqlStore

    t0 = time.monotonic()
    started = clock.now_ms()
    dest = Path(os.path.abspath(os.path.expanduser(os.fspath(dest))))
    tree: LocalTree | S3Tree
    if isinstance(store, LocalStore):
        kind, root = "local", Path(os.path.abspath(store.root))
        if not (root / INDEX).is_file():
            raise NotFound(f"no Cairn store at {root}: nothing to back up")
        tree = object_tree(objects, endpoint_url) if objects else LocalTree(root / OBJECTS)
        _check_apart(root, dest)
    elif isinstance(store, SqlStore):
        kind, root = "sql", None
        if objects is None:
            raise InvalidArgument("a database store's backup needs its object store: give "
                                  "--objects DIR or s3://BUCKET/PREFIX, as for `cairn server`")
        tree = object_tree(objects, endpoint_url)
    else:
        raise InvalidArgument(f"cairn backup reads a local store directory or a server's "
                              f"database (postgresql://...), not {store.uri}: run it where "
                              "the server's store is")
    if isinstance(tree, LocalTree):
        _check_apart(tree.root, dest)
    previous, previous_files = _prepare_dest(dest)

    # 1. The index: one point in time.
    if kind == "local":
        assert root is not None
        store.settle()  # this process's writes still queued for the index go in first
        _sqlite_snapshot(root / INDEX, dest / INDEX)
    else:
        _dump_sql(store, dest / INDEX)
    snapshot_at = clock.now_ms()
    files: dict[str, dict[str, Any]] = {}

    # 2. Journals, experiment files, quarantine: after the index, so they hold at least
    # what it applied.
    if kind == "local":
        assert root is not None
        for sub in STORE_DIRS:
            _copy_store_dir(root, dest, sub, previous_files, files)

    # 3. Objects, and the object store's own files.  The pack index is copied between two
    # passes: a pack it lists was written before it was listed, so the second pass has it.
    copier = _ObjectCopier(tree, dest / OBJECTS, previous, progress)
    copier.run(files, with_sqlite=False)
    copier.run(files, with_sqlite=True)
    # Objects moved to a cold tier (cairn tier) are copied in too, so the backup alone
    # holds every object: a restored store has them hot, wherever the cold tier went.
    cold = _cold_tree(dest / OBJECTS)
    if cold is not None:
        copier.tree = cold
        copier.run(files, with_sqlite=False, objects_only=True)

    files[INDEX] = {"size": (dest / INDEX).stat().st_size, "sha256": sha256_file(dest / INDEX)}
    revision, counts, audit_head = _describe(dest / INDEX)
    missing = _missing_objects(dest, copier.objects)
    _prune(dest, files, copier.objects)

    lines = "".join(f"{oid} {size} {sha}\n" for oid, (size, sha) in sorted(copier.objects.items()))
    (dest / OBJECT_LIST).write_text(lines)
    counts.update(objects=len(copier.objects),
                  object_bytes=sum(s for s, _ in copier.objects.values()), files=len(files))
    manifest = {
        "format": FORMAT, "version": VERSION,
        "source": {"kind": kind, "uri": store.uri,
                   "objects": repr(tree) if kind == "sql" or objects else "objects/"},
        "schema_revision": revision, "started_at": started, "snapshot_at": snapshot_at,
        "finished_at": clock.now_ms(), "counts": counts, "audit_head": audit_head,
        "files": dict(sorted(files.items())),
        "objects": {"list": OBJECT_LIST, "count": len(copier.objects),
                    "sha256": sha256_file(dest / OBJECT_LIST)},
        "missing_objects": missing,
    }
    write_manifest(dest, manifest)
    (dest / PARTIAL).unlink(missing_ok=True)
    return BackupReport(str(dest), kind, revision, counts, len(copier.objects), copier.copied,
                        copier.reused, copier.bytes, len(files), time.monotonic() - t0, missing)


def _check_apart(store_root: Path, dest: Path) -> None:
    # Both resolved, DEST too when it does not exist yet: a symlink on the way to either
    # must not hide that one is inside the other.
    a, b = store_root.resolve(), dest.resolve()
    if a == b or a in b.parents or b in a.parents:
        raise InvalidArgument(f"the backup's destination {dest} must be outside the store "
                              f"({store_root}), and the store outside it")


def _prepare_dest(dest: Path) -> tuple[dict[str, tuple[int, str]], dict[str, Any]]:
    """Make ``dest`` ready; return what an earlier backup there holds (oid -> its size and
    checksum; its files' manifest entries) so it is not copied again.  Removes the
    manifest first: until the new one is written the directory is not a backup."""
    if dest.exists() and not dest.is_dir():
        raise InvalidArgument(f"{dest} is a file; give a directory for the backup")
    if dest.is_dir() and any(dest.iterdir()):
        known = {MANIFEST, INDEX, OBJECT_LIST, OBJECTS, *STORE_DIRS}
        strangers = sorted(p.name for p in dest.iterdir() if p.name not in known
                           and not p.name.startswith((f"{INDEX}.", f"{MANIFEST}.")))
        # An index alone is no sign of a backup: a Cairn store has one too, and a backup
        # over it would replace its index and prune its journals and objects.
        if strangers or not ((dest / MANIFEST).exists() or (dest / PARTIAL).exists()):
            has = ", ".join(strangers[:5]) or ("an index but no manifest: a Cairn store?"
                                               if (dest / INDEX).exists() else "other files")
            raise InvalidArgument(f"{dest} is not empty and holds no Cairn backup (it has "
                                  f"{has}); give a new or "
                                  "empty directory, or the directory of an earlier backup")
    dest.mkdir(parents=True, exist_ok=True)
    previous: dict[str, tuple[int, str]] = {}
    try:
        manifest = read_manifest(dest) if (dest / MANIFEST).exists() else None
    except Exception:  # a damaged earlier backup: copy everything again
        manifest = None
    if manifest is not None and (dest / OBJECT_LIST).is_file() \
            and sha256_file(dest / OBJECT_LIST) == manifest["objects"]["sha256"]:
        for line in (dest / OBJECT_LIST).read_text().splitlines():
            oid, size, sha = parse_object_line(line, str(dest / OBJECT_LIST))
            previous[oid] = (size, sha)
    (dest / PARTIAL).write_text('{"format": "%s", "partial": true}\n' % FORMAT)
    (dest / MANIFEST).unlink(missing_ok=True)
    return previous, (manifest["files"] if manifest is not None else {})


def _sqlite_snapshot(src: Path, dest: Path) -> None:
    """A consistent copy of a live SQLite database (SQLite's online backup: one read
    transaction, so writers in WAL mode go on), as one self-contained file."""
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.unlink(missing_ok=True)
    source = sqlite3.connect(src, timeout=120)
    try:
        target = sqlite3.connect(tmp)
        try:
            source.backup(target)
            target.execute("PRAGMA journal_mode=DELETE")  # no -wal beside the copy
        finally:
            target.close()
    finally:
        source.close()
    os.replace(tmp, dest)


def _dump_sql(store: Any, dest: Path) -> None:
    """Every table of a database store into a SQLite file of the same schema, read inside
    one REPEATABLE READ transaction (on PostgreSQL; a read transaction on SQLite)."""
    import sqlalchemy as sa

    from ..store.sql import tables as T
    from ..store.sql.engine import current_revision

    tmp = dest.with_name(dest.name + ".tmp")
    tmp.unlink(missing_ok=True)
    out = sa.create_engine(f"sqlite:///{tmp}")
    engine = store.index.engine
    options = {"isolation_level": "REPEATABLE READ"} if engine.dialect.name == "postgresql" else {}
    try:
        with engine.connect().execution_options(**options) as conn, conn.begin():
            revision = current_revision(conn)
            if revision is None:
                raise NotFound(f"{store.uri} holds no Cairn store (no schema): nothing to back up")
            present = set(sa.inspect(conn).get_table_names())
            with out.begin() as dst:
                T.metadata.create_all(dst)
                dst.exec_driver_sql("CREATE TABLE alembic_version "
                                    "(version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
                dst.execute(sa.text("INSERT INTO alembic_version VALUES (:v)"), {"v": revision})
                for table in T.metadata.sorted_tables:
                    if table.name not in present:
                        continue
                    result = conn.execution_options(yield_per=2000).execute(sa.select(table))
                    for rows in result.partitions():
                        dst.execute(sa.insert(table), [dict(r._mapping) for r in rows])
    finally:
        out.dispose()
    os.replace(tmp, dest)


def _copy_store_dir(root: Path, dest: Path, sub: str, previous: dict[str, Any],
                    files: dict[str, dict[str, Any]]) -> None:
    """Copy ``root/sub`` into ``dest/sub``.  A journal that the last backup copied from the
    same file (same inode) and that is untouched at DEST is a prefix of the store's
    (journals only grow): only the new bytes are read.  A journal replaced since (an
    erasure rewrites one and renames it over the old) is copied whole."""
    src_root = root / sub
    if not src_root.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(src_root):
        dirnames.sort()
        for name in sorted(filenames):
            if name.startswith(".tmp"):
                continue
            src = Path(dirpath) / name
            rel = src.relative_to(root).as_posix()
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                st = src.stat()
                before = previous.get(rel, {})
                if name.endswith(".cjl") and target.is_file() and before.get("ino") == st.st_ino \
                        and target.stat().st_size == before.get("size") <= st.st_size:
                    _append_tail(src, target)
                else:
                    tmp = target.with_name(f".tmp-{name}")
                    shutil.copyfile(src, tmp)
                    os.replace(tmp, target)
            except FileNotFoundError:
                continue  # removed meanwhile (a purged run, a repaired quarantine entry)
            files[rel] = {"size": target.stat().st_size, "sha256": sha256_file(target),
                          "ino": st.st_ino}


def _append_tail(src: Path, target: Path) -> None:
    have = target.stat().st_size
    with open(src, "rb") as fin, open(target, "ab") as fout:
        fin.seek(have)
        shutil.copyfileobj(fin, fout, 1 << 20)


class _ObjectCopier:
    """Copies an object store's tree into ``dest/objects``: objects DEST lacks, and the
    store's other files (pack index through SQLite's backup, marker files as they are)."""

    def __init__(self, tree: LocalTree | S3Tree, dest: Path, previous: dict[str, Any],
                 progress: bool | None) -> None:
        self.tree, self.dest, self.previous, self.progress = tree, dest, previous, progress
        self.objects: dict[str, tuple[int, str]] = {}
        self.copied = self.reused = self.bytes = 0
        self.out = LocalTree(dest)

    def run(self, files: dict[str, dict[str, Any]], *, with_sqlite: bool,
            objects_only: bool = False) -> None:
        from ..progress import bar

        todo: list[Entry] = []
        for e in self.tree.entries():
            if e.oid is None:
                if objects_only or e.rel.endswith(".sqlite") != with_sqlite:
                    continue
                self._other(e, files)
            elif e.oid not in self.objects:
                prev = self.previous.get(e.oid)
                target = self.dest / e.rel
                # The copy carries the source's time (set below): a time that differs is an
                # object rewritten since, whatever its size.
                if prev is not None and prev[0] == e.size and e.mtime_ns and target.is_file() \
                        and _same(target.stat(), e):
                    self.objects[e.oid] = prev
                    self.reused += 1
                else:
                    todo.append(e)
        if not todo:
            return
        with bar("backup: objects", sum(e.size for e in todo), enabled=self.progress) as advance:
            def one(e: Entry) -> tuple[Entry, int, str] | None:
                import hashlib

                try:
                    data = self.tree.read(e.rel)
                except NotFound:
                    return None  # collected meanwhile: nothing copied refers to it
                self.out.write(e.rel, data)
                if e.mtime_ns:
                    os.utime(self.dest / e.rel, ns=(e.mtime_ns, e.mtime_ns))
                advance(len(data))
                return e, len(data), hashlib.sha256(data).hexdigest()

            with ThreadPoolExecutor(_WORKERS) as pool:
                for done in pool.map(one, todo):
                    if done is not None:
                        e, size, sha = done
                        self.objects[e.oid or ""] = (size, sha)
                        self.copied += 1
                        self.bytes += size

    def _other(self, e: Entry, files: dict[str, dict[str, Any]]) -> None:
        target = self.dest / e.rel
        if isinstance(self.tree, LocalTree) and e.rel.endswith(".sqlite"):
            target.parent.mkdir(parents=True, exist_ok=True)
            _sqlite_snapshot(self.tree.root / e.rel, target)
        else:
            try:
                self.out.write(e.rel, self.tree.read(e.rel))
            except NotFound:
                return
        files[f"{OBJECTS}/{e.rel}"] = {"size": target.stat().st_size,
                                       "sha256": sha256_file(target)}


def _same(st: os.stat_result, e: Entry) -> bool:
    return st.st_size == e.size and st.st_mtime_ns == e.mtime_ns


def _cold_tree(objects: Path) -> LocalTree | S3Tree | None:
    """The cold tier named by the backed-up ``tiers.json`` (cairn.cas.tiering), if any."""
    from ..cas.tier_state import CONFIG_NAME, TierConfig

    path = objects / CONFIG_NAME
    if not path.is_file():
        return None
    config = TierConfig.from_bytes(path.read_bytes(), str(path))
    return object_tree(config.cold, config.endpoint_url)


def _describe(index: Path) -> tuple[str, dict[str, int], dict[str, Any]]:
    """The snapshot's schema revision, its row counts and its audit chain's head."""
    conn = sqlite3.connect(f"file:{index}?mode=ro", uri=True)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone() \
            if "alembic_version" in tables else None
        counts = {}
        for t in ("experiments", "runs", "artifacts", "metric_segments", "registered_models",
                  "model_versions", "datasets", "dataset_versions", "audit_events", "users"):
            if t in tables:
                counts[t] = conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]
        head = conn.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone() \
            if "audit_head" in tables else None
    finally:
        conn.close()
    return (row[0] if row else ""), counts, ({"seq": head[0], "hash": head[1]} if head
                                              else {"seq": 0, "hash": "0" * 64})


def _missing_objects(dest: Path, copied: dict[str, Any]) -> list[str]:
    """Objects the snapshot's index names (artifacts, code snapshots, model and data set
    versions) that are in the backup neither loose nor in a pack."""
    import sqlalchemy as sa

    from ..cas.backends.local import LocalBackend
    from ..cas.odb import PACK_INDEX_NAME, ObjectStore
    from ..cas.packs import SqlitePackIndex
    from ..doctor.objects import references

    pack_index = dest / OBJECTS / PACK_INDEX_NAME
    packs = SqlitePackIndex(pack_index) if pack_index.is_file() else None
    objects = ObjectStore(LocalBackend(dest / OBJECTS), packs=packs)
    engine = sa.create_engine(f"sqlite:///file:{dest / INDEX}?mode=ro&uri=true")
    try:
        with engine.connect() as conn:
            named = references(conn, objects, names=False).oids
    finally:
        engine.dispose()
        if packs is not None:
            packs.close()
    absent = named - set(copied)
    if absent and packs is not None:
        again = SqlitePackIndex(pack_index)
        try:
            absent -= set(again.locate(absent))
        finally:
            again.close()
    return sorted(absent)


def _prune(dest: Path, files: dict[str, Any], objects: dict[str, Any]) -> None:
    """Remove what an earlier backup to DEST held and the store no longer has (a purged
    run's journals, a collected object): a restore must not bring them back."""
    for sub in (*STORE_DIRS, OBJECTS):
        base = dest / sub
        if not base.is_dir():
            continue
        for dirpath, _dirs, filenames in os.walk(base, topdown=False):
            for name in filenames:
                path = Path(dirpath) / name
                rel = path.relative_to(dest).as_posix()
                e = Entry(path.relative_to(dest / OBJECTS).as_posix(), 0) \
                    if sub == OBJECTS else None
                keep = rel in files or (e is not None and e.oid in objects)
                if not keep:
                    path.unlink()
            if dirpath != str(base) and not os.listdir(dirpath):
                os.rmdir(dirpath)
