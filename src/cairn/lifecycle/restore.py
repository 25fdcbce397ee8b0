"""``cairn --store NEW restore SRC``: a backup brought back into an empty store.

Everything is checked against the manifest (every file's size and SHA-256, every
object's stored bytes) while it is copied, and nothing claims to be a store until all
of it is in place:

- a local store is assembled in a sibling directory, opened once (which replays the
  journal records newer than the index snapshot), then renamed into place;
- a database store gets its objects first, then every table in one transaction: a
  failure rolls the database back to what it was, and objects alone are no store.

What is supported: a local backup into a local store or into a database store (its
journals are replayed first, in a scratch directory); a database backup into a database
store.  A database backup has no journals, which a local store's runs need: it cannot
become a local store.

``force`` replaces a store that is not empty: everything in it is removed and the
backup takes its place; nothing is merged.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..errors import Conflict, CorruptObject, InvalidArgument
from .backup_format import (
    INDEX, OBJECT_LIST, OBJECTS, LocalTree, S3Tree, object_tree, parse_object_line,
    read_manifest, sha256_file,
)

_BATCH = 1000


@dataclass
class RestoreReport:
    target: str
    source_kind: str
    target_kind: str
    schema_revision: str
    counts: dict[str, int]
    objects: int
    files: int
    replaced: bool
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "source_kind": self.source_kind,
                "target_kind": self.target_kind, "schema_revision": self.schema_revision,
                "counts": self.counts, "objects": self.objects, "files": self.files,
                "replaced": self.replaced, "seconds": round(self.seconds, 3)}


def restore(src: str | os.PathLike[str], target: str, *, objects: str | None = None,
            endpoint_url: str | None = None, force: bool = False,
            progress: bool | None = None) -> RestoreReport:
    """Restore the backup at ``src`` into store ``target`` (a directory, or a database URL
    with ``objects``: a directory or ``s3://BUCKET/PREFIX``)."""
    from ..store import local_directory
    from ..store.sql import tables as T

    t0 = time.monotonic()
    source = Path(os.path.abspath(os.path.expanduser(os.fspath(src))))
    manifest = read_manifest(source)
    revision = manifest["schema_revision"]
    if revision != T.HEAD_REVISION:
        raise InvalidArgument(f"the backup's schema is at revision {revision!r}, this Cairn's "
                              f"at {T.HEAD_REVISION!r}: restore it with the release that "
                              "wrote it (then `cairn db upgrade`)")
    kind = manifest["source"]["kind"]
    directory = local_directory(target)
    if directory is not None:
        if objects is not None:
            raise InvalidArgument("--objects is for a database store; a local store keeps its "
                                  "objects in its own directory")
        _check_apart(source, directory)
        if kind != "local":
            raise InvalidArgument("this backup is of a database store, which has no journals: "
                                  "restore it into a database (--store postgresql://... "
                                  "--objects DIR|s3://...)")
        replaced = _restore_local(source, manifest, directory, force, progress)
        target_kind, shown = "local", str(directory)
    else:
        if objects is None:
            raise InvalidArgument("a database store needs its object store: give --objects DIR "
                                  "or s3://BUCKET/PREFIX, as for `cairn server`")
        tree = object_tree(objects, endpoint_url)
        if isinstance(tree, LocalTree):
            _check_apart(source, tree.root)
        replaced = _restore_sql(source, manifest, target, tree, force, progress)
        from ..store.sql.store import redact_url

        target_kind, shown = "sql", redact_url(target)
    return RestoreReport(shown, kind, target_kind, revision, dict(manifest.get("counts", {})),
                         manifest["objects"]["count"], len(manifest["files"]), replaced,
                         time.monotonic() - t0)


def _check_apart(source: Path, directory: Path) -> None:
    """A store restored into the backup, around it or inside it would replace (--force) or
    litter the backup it is read from."""
    a, b = source.resolve(), directory.resolve()
    if a == b or a in b.parents or b in a.parents:
        raise InvalidArgument(f"the store {directory} must be outside the backup it is "
                              f"restored from ({source}), and the backup outside it")


# -- checking while copying ---------------------------------------------------------

def _copy_checked(source: Path, rel: str, want: dict[str, Any], dest: Path) -> None:
    path = source / rel
    if not path.is_file():
        raise CorruptObject(f"the backup at {source} is damaged: {rel} is missing")
    dest.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fin, open(dest, "wb") as fout:
        for block in iter(lambda: fin.read(1 << 20), b""):
            h.update(block)
            size += len(block)
            fout.write(block)
    if size != want["size"] or h.hexdigest() != want["sha256"]:
        raise CorruptObject(f"the backup at {source} is damaged: {rel} is not what the "
                            f"manifest says ({size} bytes, expected {want['size']}; checksum "
                            f"{'differs' if size == want['size'] else 'not checked'})")


def _object_lines(source: Path, manifest: dict[str, Any]) -> list[tuple[str, int, str]]:
    path = source / OBJECT_LIST
    if not path.is_file():
        raise CorruptObject(f"the backup at {source} is damaged: {OBJECT_LIST} is missing")
    if sha256_file(path) != manifest["objects"]["sha256"]:
        raise CorruptObject(f"the backup at {source} is damaged: {OBJECT_LIST} is not what the "
                            "manifest says (edited or cut short)")
    lines = [parse_object_line(line, str(path)) for line in path.read_text().splitlines()]
    if len(lines) != manifest["objects"]["count"]:
        raise CorruptObject(f"the backup at {source} is damaged: {OBJECT_LIST} lists "
                            f"{len(lines)} objects, the manifest {manifest['objects']['count']}")
    return lines


def _checked_objects(source: Path, lines: list[tuple[str, int, str]],
                     progress: bool | None) -> Iterator[tuple[str, bytes]]:
    """Each object's relative path and stored bytes, checked against the object list."""
    from ..progress import bar

    with bar("restore: objects", sum(size for _, size, _ in lines), enabled=progress) as advance:
        for oid, size, sha in lines:
            rel = f"{oid[:2]}/{oid[2:]}"
            try:
                data = (source / OBJECTS / rel).read_bytes()
            except FileNotFoundError:
                raise CorruptObject(f"the backup at {source} is damaged: object {oid} is "
                                    "missing") from None
            if len(data) != size or hashlib.sha256(data).hexdigest() != sha:
                raise CorruptObject(f"the backup at {source} is damaged: object {oid} is not "
                                    "what was backed up (its bytes changed)")
            advance(size)
            yield rel, data


# -- a local store --------------------------------------------------------------------

def _restore_local(source: Path, manifest: dict[str, Any], directory: Path, force: bool,
                   progress: bool | None) -> bool:
    replaced = _local_in_use(directory)
    if replaced and not force:
        raise Conflict(f"{directory} is not an empty store: restore refuses to overwrite it. "
                       "Give a new directory, or --force to replace the store there with the "
                       "backup (everything in it is deleted; nothing is merged)")
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = directory.parent / f".{directory.name}.restoring-{secrets.token_hex(4)}"
    try:
        _assemble_local(source, manifest, staging, progress)
        _swap_in(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return replaced


def _assemble_local(source: Path, manifest: dict[str, Any], staging: Path,
                    progress: bool | None) -> None:
    """The store, whole and checked, in ``staging``, opened once so recovery has replayed
    what the journals hold beyond the index snapshot."""
    lines = _object_lines(source, manifest)
    staging.mkdir(parents=True)
    for rel, want in manifest["files"].items():
        _copy_checked(source, rel, want, staging / rel)
    out = LocalTree(staging / OBJECTS)
    for rel, data in _checked_objects(source, lines, progress):
        out.write(rel, data)
    from ..store.local import LocalStore

    store = LocalStore(staging)
    try:
        store.open()
    finally:
        store.close()


def _local_in_use(directory: Path) -> bool:
    """Whether ``directory`` holds anything a restore would destroy.  A directory that
    does not exist, is empty, or holds only a fresh index (a store opened and never
    written) is empty."""
    if not directory.exists():
        return False
    if not directory.is_dir():
        raise InvalidArgument(f"{directory} is a file, not a store directory")
    names = {p.name for p in directory.iterdir()}
    if not names:
        return False
    if names - {INDEX, f"{INDEX}-wal", f"{INDEX}-shm", "experiments", OBJECTS}:
        return True
    for sub in ("experiments", OBJECTS):
        if (directory / sub).is_dir() and any((directory / sub).iterdir()):
            return True
    if (directory / INDEX).is_file():
        conn = sqlite3.connect(directory / INDEX, timeout=30)
        try:
            present = {r[0] for r in
                       conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            return _rows_in(lambda sql, params=(): conn.execute(sql, params), present)
        finally:
            conn.close()
    return False




def _swap_in(staging: Path, directory: Path) -> None:
    """Put the assembled store where the old one (if any) was: renames, so a reader sees
    the old store or the new one."""
    if not directory.exists():
        os.replace(staging, directory)
        return
    old = directory.parent / f".{directory.name}.replaced-{secrets.token_hex(4)}"
    os.replace(directory, old)
    os.replace(staging, directory)
    shutil.rmtree(old, ignore_errors=True)


# -- a database store ------------------------------------------------------------------

def _restore_sql(source: Path, manifest: dict[str, Any], url: str, tree: LocalTree | S3Tree,
                 force: bool, progress: bool | None) -> bool:
    from ..store.sql.engine import make_engine, session

    lines = _object_lines(source, manifest)
    engine = make_engine(url)
    try:
        with session(engine) as conn:
            db_used = _sql_in_use(conn)
            _check_revision(conn)
        objects_used = not tree.is_empty()
        replaced = db_used or objects_used
        if replaced and not force:
            where = " and ".join(w for w, used in (("the database", db_used),
                                                  (f"the object store {tree!r}", objects_used))
                                 if used)
            raise Conflict(f"{where} of the target store {'are' if ' and ' in where else 'is'} "
                           "not empty: restore refuses to overwrite them. Give an empty database "
                           "and object store, or --force to replace the store there with the "
                           "backup (every table is emptied; objects not in the backup are left "
                           "for `cairn gc`; nothing is merged)")
        with tempfile.TemporaryDirectory(prefix="cairn-restore-") as scratch:
            index = _checked_index(source, manifest, Path(scratch), progress)
            for rel, data in _checked_objects(source, lines, progress):
                tree.write(rel, data)
            for rel, want in manifest["files"].items():
                if rel.startswith(f"{OBJECTS}/") and not rel.endswith(".sqlite"):
                    # The object store's own files (an encryption marker): as they were.
                    path = Path(scratch) / "extra"
                    _copy_checked(source, rel, want, path)
                    tree.write(rel[len(OBJECTS) + 1:], path.read_bytes())
            _load_tables(engine, index)
    finally:
        engine.dispose()
    return replaced


def _checked_index(source: Path, manifest: dict[str, Any], scratch: Path,
                   progress: bool | None) -> Path:
    """The index to load into the database: the snapshot itself for a database backup; for
    a local backup, the store assembled in ``scratch`` (its journals replayed)."""
    if manifest["source"]["kind"] == "sql":
        _copy_checked(source, INDEX, manifest["files"][INDEX], scratch / INDEX)
        return scratch / INDEX
    if (source / OBJECTS / "pack-index.sqlite").exists() and _has_packs(source):
        raise InvalidArgument("this local backup holds packed objects, which a database "
                              "store's object store does not read: restore it into a local "
                              "store")
    store_dir = scratch / "store"
    # The journals are replayed; objects are checked and copied by the caller.
    files = {k: v for k, v in manifest["files"].items() if not k.startswith(f"{OBJECTS}/")}
    _assemble_index_only(source, files, store_dir)
    return store_dir / INDEX


def _assemble_index_only(source: Path, files: dict[str, Any], store_dir: Path) -> None:
    store_dir.mkdir(parents=True)
    for rel, want in files.items():
        _copy_checked(source, rel, want, store_dir / rel)
    from ..store.local import LocalStore

    store = LocalStore(store_dir)
    try:
        store.open()
    finally:
        store.close()


def _has_packs(source: Path) -> bool:
    conn = sqlite3.connect(f"file:{source / OBJECTS / 'pack-index.sqlite'}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return any(conn.execute(f'SELECT 1 FROM "{t}" LIMIT 1').fetchone() for t in tables)
    finally:
        conn.close()


def _sql_in_use(conn: Any) -> bool:
    import sqlalchemy as sa

    present = set(sa.inspect(conn).get_table_names())
    if not present & {"runs", "experiments", "alembic_version"}:
        return False

    def execute(sql: str, params: tuple = ()) -> Any:
        if params:
            return conn.execute(sa.text(sql.replace("?", ":p")), {"p": params[0]})
        return conn.execute(sa.text(sql))

    return _rows_in(execute, present)


def _check_revision(conn: Any) -> None:
    """A database with a Cairn schema at another revision cannot take the backup's rows."""
    from ..store.sql import tables as T
    from ..store.sql.engine import current_revision

    rev = current_revision(conn)
    if rev is not None and rev != T.HEAD_REVISION:
        raise InvalidArgument(f"the target database's schema is at revision {rev!r}, the "
                              f"backup's at {T.HEAD_REVISION!r}: run `cairn db upgrade` on it "
                              "first (or give an empty database)")


def _rows_in(execute: Any, present: set[str]) -> bool:
    for table in _tables():
        if table.name not in present:
            continue
        if table.name == "experiments":
            n = execute("SELECT count(*) FROM experiments WHERE id <> ?", ("0",)).fetchone()[0]
        else:
            n = execute(f'SELECT count(*) FROM "{table.name}"').fetchone()[0]
        if n:
            return True
    return False


def _tables() -> list[Any]:
    from ..store.sql import tables as T

    return list(T.metadata.sorted_tables)


def _load_tables(engine: Any, index: Path) -> None:
    """Every table of ``index`` into the database, in one transaction (emptied first: the
    caller refused a database in use unless forced); PostgreSQL's sequences are moved past
    the restored ids."""
    import sqlalchemy as sa

    from ..store.sql import tables as T
    from ..store.sql.engine import session

    src = sa.create_engine(f"sqlite:///file:{index}?mode=ro&uri=true")
    try:
        with src.connect() as reader, session(engine, write=True) as conn:
            present = set(sa.inspect(conn).get_table_names())
            if "alembic_version" in present:
                _check_revision(conn)
            else:
                T.metadata.create_all(conn)
                conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS alembic_version "
                                     "(version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
                conn.execute(sa.text("INSERT INTO alembic_version (version_num) VALUES (:v)"),
                             {"v": T.HEAD_REVISION})
            for table in reversed(T.metadata.sorted_tables):
                conn.execute(sa.delete(table))  # empty, or emptied: --force replaces
            for table in T.metadata.sorted_tables:
                result = reader.execution_options(yield_per=_BATCH).execute(sa.select(table))
                for rows in result.partitions():
                    conn.execute(sa.insert(table), [dict(r._mapping) for r in rows])
            if conn.dialect.name == "postgresql":
                _advance_sequences(conn)
    finally:
        src.dispose()


def _advance_sequences(conn: Any) -> None:
    import sqlalchemy as sa

    from ..store.sql import tables as T

    for table in T.metadata.sorted_tables:
        pk = list(table.primary_key.columns)
        if len(pk) != 1 or pk[0].autoincrement is False or \
                not isinstance(pk[0].type, sa.Integer):
            continue
        col = pk[0].name
        seq = conn.execute(sa.text("SELECT pg_get_serial_sequence(:t, :c)"),
                           {"t": table.name, "c": col}).scalar()
        if seq:
            conn.execute(sa.text(f'SELECT setval(:s, COALESCE((SELECT max("{col}") FROM '
                                 f'"{table.name}"), 0) + 1, false)'), {"s": seq})
