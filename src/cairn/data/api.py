"""Data set versions over a store: add, checkout, diff, split, derive, inputs, remotes.

:class:`Datasets` is the explicit API (one per store and user); ``cairn.data.add(...)`` and
friends call it for the fluent API's tracking store.  Order of writes in every
operation: objects first (files, packs, trees), the catalog row last and in one
transaction, so a failure at any point leaves no version that names a missing object.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import hashlib
import os
import re
import secrets
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence, TypeAlias

from ..cas.packs import body_start
from ..cas.tree import check_path, encode_tree, referenced_oids
from ..entities import FileEntry
from ..errors import CorruptObject, InvalidArgument, MissingDependency, NotFound
from ..services import StoreService, services_of, store_of
from ..store.base import Indexed
from ..store.validation import text_checked
from . import quality as Q
from .catalog import Catalog
from .entities import (
    DataDiff, DataRef, Dataset, DatasetVersion, TransferResult, check_alias, check_name,
)
from .hashcache import HashCache
from .ingest import (
    Scanned, checkout_error, encode_entries, ingest, restore_missing, scan, storage_error,
)
from ..progress import bar

if TYPE_CHECKING:
    from ..cas.verify import VerifyResult
    from .arrays import Staged

Ref: TypeAlias = "str | DataRef | DatasetVersion"
_COMMIT_RE = re.compile(r"[0-9a-f]{7,64}")


# Every public method refuses text that is not valid Unicode (a lone surrogate) at the
# call: names, messages, aliases, references, roles, expectations.  Local paths and data
# are not text the store keeps.
@text_checked("data", "target", "path", "dest", "output")
class Datasets(StoreService):
    """Data set versioning for one store (see ``docs/data.md``), acting as one user.

    ``Datasets(store, user)``; ``Datasets(client)`` uses a client's store and user, and
    ``Datasets()`` the fluent API's.  For a client of a Cairn server (an ``http://``
    tracking URI) this makes a :class:`cairn.data.remote.RemoteDatasets`: the same API over
    the server's REST API (the class :func:`cairn.services.datasets_for` picks).
    """

    def __new__(cls, store: Any = None, user: str | None = None) -> "Datasets":
        if cls is Datasets:
            cls = services_of(store_of(store)).load("datasets")
        return super().__new__(cls)

    def __init__(self, store: Any = None, user: str | None = None) -> None:
        StoreService.__init__(self, store, user)

    # -- plumbing ------------------------------------------------------------------
    @property
    def store(self) -> Any:
        store = self._backend
        if not isinstance(store, Indexed):
            raise InvalidArgument(f"data versioning needs a local store directory, not "
                                  f"{store.uri!r}")
        store.open()
        return store

    @property
    def objects(self) -> Any:
        return self.store.objects

    @property
    def catalog(self) -> Catalog:
        return Catalog(self.store.index)

    def _cache(self) -> HashCache:
        return HashCache(Path(self.store.root) / "cache" / "hashes.sqlite")

    # What a remote implementation replaces (cairn.data.remote): where new objects go
    # before a version names them, the latest version, and recording a version.
    def _excluded(self) -> builtins.list[str]:
        """Directories an add never enters: the store itself may live inside the data."""
        return [str(Path(self.store.root).resolve())]

    def _writing(self, sources: Sequence[Scanned] = ()) -> Any:
        """A context giving the object store new files go into (``sources``: the files
        about to be added)."""
        return contextlib.nullcontext(self.objects)

    def _reading(self, v: DatasetVersion) -> Any:
        """A context giving the object store that reads version ``v``'s objects."""
        return contextlib.nullcontext(self.objects)

    def _latest(self, name: str) -> DatasetVersion | None:
        return self.catalog.latest(name)

    # -- reading the catalog -------------------------------------------------------
    def version(self, ref: Ref) -> DatasetVersion:
        """The version a reference names: ``name``, ``name@3``, ``name@gold``."""
        return self.catalog.resolve(ref)

    def versions(self, name: str) -> builtins.list[DatasetVersion]:
        return self.catalog.versions(name)

    def list(self) -> builtins.list[Dataset]:
        return self.catalog.datasets()

    def files(self, ref: Ref, path: str | None = None) -> builtins.list[FileEntry]:
        """The files of a version (under ``path`` if given), sorted by path."""
        v = self.version(ref)
        entries = self.objects.get_tree(v.tree)
        return _under(entries, path, v)

    # -- add -----------------------------------------------------------------------
    def add(self, path: str | os.PathLike[str], name: str, message: str = "", *,
            aliases: Sequence[str] = (), expect: Sequence[str] | str | None = None,
            stats: bool = True, pack: bool = True,
            progress: bool | None = False) -> DatasetVersion:
        """Record the file or directory at ``path`` as the next version of data set ``name``.

        The files are only read.  If nothing changed since the latest version, no
        version is made and the latest is returned with ``created=False``.
        ``expect`` lists quality expectations (see :mod:`cairn.data.quality`) that
        must hold, or nothing is recorded and :class:`QualityCheckFailed` says why.
        """
        return self._add(path, name, message, aliases=aliases, expect=expect, stats=stats,
                         pack=pack, progress=progress)

    def _add(self, path: str | os.PathLike[str], name: str, message: str = "", *,
             aliases: Sequence[str] = (), expect: Sequence[str] | str | None = None,
             stats: bool = True, pack: bool = True, progress: bool | None = False,
             kind: str = "add", parents: Sequence[DatasetVersion] = (),
             run_id: str | None = None, commit: str | None = None,
             transform: Mapping[str, Any] | None = None) -> DatasetVersion:
        check_name(name)
        expectations = Q.parse_all(expect)
        for alias in aliases:
            check_alias(alias)
        files, is_dir = scan(path, exclude=self._excluded())
        if not files:
            raise InvalidArgument(f"{path} contains no regular files; nothing to version",
                                  path=str(path))
        source = str(Path(path).expanduser().resolve())
        with self._writing(files) as objects:
            cache = self._cache()
            try:
                cached = cache.load(source, single=not is_dir)
                total = sum(f.size for f in files)
                with bar(f"adding {name}", total, enabled=progress) as advance:
                    res = ingest(objects, files, cache=cache, cached=cached, pack=pack,
                                 progress=advance)
                entries = res.entries
                tree_bytes = encode_entries(entries)  # = encode_tree, for entries of a valid scan
                tree = hashlib.sha256(tree_bytes).hexdigest()
                latest = self._latest(name)
                unchanged = latest is not None and latest.tree == tree and not parents
                if res.cached and not unchanged:
                    restore_missing(objects, files, entries, cache=cache, pack=pack)
            finally:
                cache.close()
            return self._record(name, entries, tree_bytes, message=message, source=source,
                                aliases=aliases, expectations=expectations, stats=stats,
                                kind=kind, parents=parents, run_id=run_id, commit=commit,
                                transform=transform, objects=objects, latest=latest)

    def _record(self, name: str, entries: builtins.list[FileEntry], tree_bytes: bytes | None = None, *,
                message: str, source: str, aliases: Sequence[str],
                expectations: Sequence[Q.Expectation], stats: bool | Mapping[str, Any],
                kind: str, parents: Sequence[DatasetVersion], run_id: str | None,
                commit: str | None, transform: Mapping[str, Any] | None,
                objects: Any = None, latest: Any = ...) -> DatasetVersion:
        """Compute stats (or take ``stats`` as computed), check expectations, then store
        the tree and write the catalog row (:meth:`_commit`).

        ``objects``: where the entries' objects are (default: the store's); ``latest``:
        the latest version of ``name`` when the caller has just read it."""
        objects = self.objects if objects is None else objects
        tree_bytes = tree_bytes if tree_bytes is not None else encode_tree(entries)
        tree = hashlib.sha256(tree_bytes).hexdigest()
        if latest is ...:
            latest = self._latest(name)
        if latest is not None and latest.tree == tree and not parents and kind == "add":
            table_stats = dict(latest.stats)
        elif isinstance(stats, Mapping):
            table_stats = dict(stats)
        else:
            table_stats = self._stats(entries, latest, objects) if stats else {}
        if expectations and any("pyarrow" in str(st.get("error", ""))
                                for st in table_stats.values() if isinstance(st, Mapping)):
            raise MissingDependency("checking expectations on tables needs pyarrow: "
                                    "pip install 'cairn[data]'")
        results = Q.evaluate(expectations, table_stats) if expectations else []
        if any(not r["passed"] for r in results):
            raise Q.QualityCheckFailed(Q.failure_report(name, results), results, name=name)
        return self._commit(name, entries, tree_bytes, objects=objects, latest=latest,
                            stats=table_stats, quality=results, expectations=expectations,
                            message=message, source=source, kind=kind, run_id=run_id,
                            commit=commit, transform=transform, parents=parents,
                            aliases=aliases)

    def _commit(self, name: str, entries: builtins.list[FileEntry], tree_bytes: bytes, *, objects: Any,
                latest: DatasetVersion | None, stats: Mapping[str, Any],
                quality: builtins.list[dict[str, Any]], expectations: Sequence[Q.Expectation],
                **meta: Any) -> DatasetVersion:
        """Store the tree, then write the catalog row (objects first, the row last)."""
        tree = hashlib.sha256(tree_bytes).hexdigest()
        unchanged = latest is not None and latest.tree == tree
        try:
            if not unchanged:
                objects.put_bytes(tree_bytes)
        except OSError as exc:
            raise storage_error(exc) from None
        packs = list(latest.packs) if unchanged else self._packs_of(entries)  # type: ignore[union-attr]
        return self.catalog.create_version(
            name, tree=tree, packs=packs, files=len(entries),
            size=sum(e.size for e in entries), user=self.user, stats=stats,
            quality=quality, **meta)

    # -- in-memory data ------------------------------------------------------------
    def add_array(self, data: Any, name: str, message: str = "", *, target: Any = None,
                  aliases: Sequence[str] = (), stats: bool = True) -> DatasetVersion:
        """Record in-memory data (and its ``target``) as a version of data set ``name``.

        ``data`` and ``target``: NumPy arrays (or nested lists, tensors), pandas data frames
        or series, SciPy sparse matrices.  Each is stored as one canonical file,
        ``data.npy`` / ``data.parquet`` / ``data.npz`` and ``target.*`` (see
        :mod:`cairn.data.arrays`); the statistics record type, shape and dtype (and, for
        data frames unless ``stats=False``, the table statistics of :meth:`add`).  The data
        is only read.

        Identical content never makes a second version: when some version of ``name``
        already holds exactly this data, it is returned with ``created=False`` (and
        ``aliases`` move to it).  :meth:`load_array` reads a version back.
        """
        from . import arrays as A

        check_name(name)
        for alias in aliases:
            check_alias(alias)
        if data is None:
            raise InvalidArgument("add_array needs data, got None")
        self.store  # noqa: B018 - a store without data sets fails here, before any work
        digest = A.content_digest(data, target)
        source = A.SOURCE_PREFIX + A.fingerprint(data, target, digest=digest)
        found = self._find_array(name, source)
        if found is not None:
            return self._reuse(found, aliases)
        staged = self._stage_array(data, target, digest=digest, stats=stats)
        return self._commit_array(staged, name, message, aliases=aliases)

    # add_array in two steps, for autologging: the data is copied while training waits
    # (a snapshot: training may change it in place later), stored while it runs.
    def _stage_array(self, data: Any, target: Any = None, *, digest: str | None = None,
                     stats: bool = True) -> Staged:
        """Write ``data`` and ``target`` into their files in a temporary directory
        (:class:`cairn.data.arrays.Staged`); ``digest``: ``arrays.content_digest(data,
        target)`` when the caller has it already, so the data is not hashed twice."""
        from . import arrays as A

        if data is None:
            raise InvalidArgument("add_array needs data, got None")
        self.store  # noqa: B018 - a store without data sets fails here, before any work
        return A.stage(data, target, digest=digest, table_stats=stats)

    def _commit_array(self, staged: Any, name: str, message: str = "", *,
                      aliases: Sequence[str] = ()) -> DatasetVersion:
        """Record staged files as a version of ``name`` (or find the version holding them);
        removes the staged files."""
        try:
            check_name(name)
            for alias in aliases:
                check_alias(alias)
            found = self._find_array(name, staged.source)
            if found is not None:
                return self._reuse(found, aliases)
            self.store  # noqa: B018 - a store without data sets fails here
            with self._writing() as objects:
                entries: list[FileEntry] = []
                described: dict[str, Any] = {}
                for rel, info in staged.files:
                    try:
                        e = objects.put_file(staged.directory / rel, rel)
                    except OSError as exc:
                        raise storage_error(exc) from None
                    entries.append(e)
                    described[rel] = {**info, "digest": e.digest}
                staged.cleanup()
                tree = hashlib.sha256(encode_tree(entries)).hexdigest()
                for v in self._versions_or_none(name):
                    if v.tree == tree and not v.parents:  # the same files, another fingerprint
                        return self._reuse(v, aliases)
                return self._record(name, entries, message=message, source=staged.source,
                                    aliases=aliases, expectations=(), stats=described,
                                    kind="add", parents=(), run_id=None, commit=None,
                                    transform=None, objects=objects)
        finally:
            staged.cleanup()

    def _find_array(self, name: str, source: str) -> DatasetVersion | None:
        """The latest version of ``name`` made from in-memory data with this fingerprint."""
        for v in reversed(self._versions_or_none(name)):
            if v.source == source and not v.parents:
                return v
        return None

    def _versions_or_none(self, name: str) -> builtins.list[DatasetVersion]:
        try:
            return self.versions(name)
        except NotFound:
            return []

    def _reuse(self, v: DatasetVersion, aliases: Sequence[str]) -> DatasetVersion:
        for alias in aliases:
            v = self.alias(v, alias)
        return dataclasses.replace(v, created=False)

    def load_array(self, ref: Ref) -> tuple[Any, Any]:
        """``(data, target)`` of a version made by :meth:`add_array` (target None if it had none).

        NumPy arrays come back as arrays, pandas objects as pandas objects (dtypes, labels
        and index included), sparse data as CSR; every object is verified as it is read.
        """
        from . import arrays as A

        v = self.version(ref)
        objects = self.objects
        entries = {e.path: e for e in objects.get_tree(v.tree)}
        try:
            parts = A.part_files(sorted(entries))
        except InvalidArgument as exc:
            raise InvalidArgument(f"{v.ref}: {exc.message}", ref=v.ref) from None
        out = [A.read(parts[p], objects.read_bytes(entries[parts[p]]), v.stats.get(parts[p]))
               if p in parts else None for p in A.PARTS]
        return out[0], out[1]

    def _packs_of(self, entries: Sequence[FileEntry]) -> builtins.list[str]:
        packs = self.objects.packs
        if packs is None:
            return []
        where = packs.locate(e.digest for e in entries if not e.chunks)
        return sorted({loc.pack for loc in where.values()})

    def _stats(self, entries: Sequence[FileEntry], previous: DatasetVersion | None,
               objects: Any) -> dict:
        from . import stats as S

        candidates = [(e, S.tabular_format(e.path)) for e in entries]
        tabular = [(e, fmt) for e, fmt in candidates if fmt]
        if not tabular:
            return {}
        if not S.have_pyarrow():
            return {e.path: {"error": "statistics need pyarrow: pip install 'cairn[data]'"}
                    for e, _ in tabular}
        known = {}
        if previous is not None:
            known = {s.get("digest"): s for s in previous.stats.values()
                     if isinstance(s, Mapping) and s.get("digest")}
        out: dict[str, Any] = {}
        for e, fmt in tabular:
            if e.digest in known and "rows" in known[e.digest]:
                out[e.path] = known[e.digest]
                continue
            if e.size > S.MAX_STATS_BYTES:
                out[e.path] = {"digest": e.digest, "error": "too large for statistics"}
                continue
            try:
                table = S.read_table(objects.read_bytes(e), fmt, e.path)
            except InvalidArgument as exc:
                out[e.path] = {"digest": e.digest, "error": exc.message}
                continue
            out[e.path] = S.table_stats(table, fmt, e.digest)
        return out

    # -- the trash -------------------------------------------------------------------
    def delete_version(self, ref: Ref, force: bool = False) -> DatasetVersion:
        """Move version ``ref`` (``name@3``: a number, never an alias) to the trash; returns it.

        A version in the trash is hidden from every read (a reference to it fails with
        :class:`~cairn.errors.NotFound` saying it is in the trash), keeps its files and
        aliases, and comes back with :meth:`restore_version` until the trash is emptied
        (``cairn trash empty``, or ``cairn gc`` after ``CAIRN_TRASH_DAYS``).  Its number
        is never given again.  A version that is an input of a live registered model
        version is refused (:class:`~cairn.errors.Conflict`) unless ``force``; on a server
        forcing needs a server admin.  Audited.
        """
        if not isinstance(force, bool):
            raise InvalidArgument(f"force must be True or False, got {force!r}")
        return self.catalog.delete_version(ref, self.user, force)

    def restore_version(self, ref: Ref) -> DatasetVersion:
        """Bring version ``ref`` (``name@3``) back from the trash, with its aliases."""
        return self.catalog.restore_version(ref, self.user)

    # -- aliases and inputs --------------------------------------------------------
    def alias(self, ref: Ref, alias: str) -> DatasetVersion:
        """Point ``alias`` (e.g. ``gold``) at a version; moves it if it pointed elsewhere."""
        return self.catalog.set_alias(ref, alias, self.user)

    def remove_alias(self, name: str, alias: str) -> None:
        self.catalog.delete_alias(name, alias)

    def log_input(self, run_id: str, ref: Ref, role: str = "input") -> DatasetVersion:
        """Record that run ``run_id`` read data set version ``ref`` in ``role`` (e.g. "train")."""
        if not isinstance(role, str) or not role or len(role) > 64:
            raise InvalidArgument(f"role must be a non-empty string of at most 64 characters, "
                                  f"got {role!r}")
        v = self.version(ref)
        self._log_input(run_id, v, role)
        return v

    def _log_input(self, run_id: str, v: DatasetVersion, role: str) -> None:
        self.client.get_run(run_id)  # NotFound for a run nobody created, as on a server
        self.catalog.log_input(run_id, v, role)

    # -- checkout ------------------------------------------------------------------
    def checkout(self, ref: Ref, dest: str | os.PathLike[str], path: str | None = None, *,
                 progress: bool | None = False) -> Path:
        """Write the version's files (under ``path``) into directory ``dest``, verified.

        Files keep their paths inside the data set; each is written to a temporary
        file and renamed into place, so a failed checkout never leaves a half file.
        Other files already in ``dest`` are left alone.
        """
        v = self.version(ref)
        with self._reading(v) as objects:
            return self._checkout(v, objects, dest, path, progress=progress)

    def _checkout(self, v: DatasetVersion, objects: Any, dest: str | os.PathLike[str],
                  path: str | None, *, progress: bool | None) -> Path:
        """:meth:`checkout` of version ``v`` from ``objects`` (with its packs located)."""
        from ..cas._pool import ordered_map

        objects.drop_caches()  # read packs from the store, as they are now
        entries = _under(objects.get_tree(v.tree), path, v)
        dest = Path(dest)
        if dest.exists() and not dest.is_dir():
            raise InvalidArgument(f"checkout destination {dest} exists and is not a directory")
        where = objects.packs.locate(e.digest for e in entries if not e.chunks) \
            if objects.packs is not None else {}
        by_pack: dict[str, list[FileEntry]] = {}
        loose: list[FileEntry] = []
        for e in entries:
            loc = where.get(e.digest)
            if loc is None:
                loose.append(e)
            else:
                by_pack.setdefault(loc.pack, []).append(e)

        root = os.fspath(dest)

        def target(e: FileEntry) -> str:
            return os.path.join(root, *e.path.split("/"))

        def write_pack(item: tuple[str, list[FileEntry]]) -> int:
            # One read (verified) per pack; each member re-hashed before it is written.
            pack, members = item
            content = objects.get_bytes(pack)
            body = body_start(pack, content)
            for e in members:
                loc = where[e.digest]
                data = content[body + loc.offset: body + loc.offset + loc.size]
                if len(data) != e.size or hashlib.sha256(data).hexdigest() != e.digest:
                    raise CorruptObject(f"cannot check out {target(e)}: {e.path} in pack "
                                        f"{pack} is corrupt", oid=e.digest, path=e.path)
                _write_file(target(e), data)
            return sum(e.size for e in members)

        def write_loose(e: FileEntry) -> int:
            objects.checkout(e, dest / e.path)
            return e.size

        try:
            for d in sorted({os.path.dirname(target(e)) for e in entries}):
                os.makedirs(d, exist_ok=True)
            with bar(f"checking out {v.ref}", sum(e.size for e in entries),
                     enabled=progress) as advance:
                for n in ordered_map(write_pack, sorted(by_pack.items()), workers=objects.workers):
                    advance(n)
                for n in ordered_map(write_loose, loose, workers=objects.workers):
                    advance(n)
        except OSError as exc:
            raise checkout_error(exc, dest) from None
        return dest

    get = checkout

    def verify(self, ref: Ref, *, progress: bool | None = False) -> VerifyResult:
        """Re-hash every object of a version; a :class:`~cairn.cas.VerifyResult`.
        ``progress``: a bar on stderr (None: when it is a terminal).  A version already
        read (a :class:`DatasetVersion`) is not read again."""
        v = ref if isinstance(ref, DatasetVersion) else self.version(ref)
        objects = self.objects
        entries = objects.get_tree(v.tree)
        return objects.verify(sorted(referenced_oids(entries) | {v.tree} | set(v.packs)),
                              progress=progress)

    # -- diff ------------------------------------------------------------------------
    def diff(self, a: Ref, b: Ref) -> DataDiff:
        from .diff import diff_entries

        va, vb = self.version(a), self.version(b)
        return diff_entries(va.ref, vb.ref, self.objects.get_tree(va.tree),
                            self.objects.get_tree(vb.tree), va.stats, vb.stats)

    # -- splits and derived versions ---------------------------------------------------
    def split(self, ref: Ref, fractions: Mapping[str, float], *, seed: int = 42,
              stratify: str | None = None, by: str = "auto",
              names: Mapping[str, str] | None = None,
              run_id: str | None = None) -> dict[str, DatasetVersion]:
        """Split a version into derived versions, one data set per split (``name.train``...).

        ``by="rows"`` splits the rows of a single tabular file, ``by="files"`` the
        files; ``"auto"`` picks rows for a version that is one CSV/TSV/Parquet file.
        Membership is a pure function of the content and ``seed``.
        """
        from . import splits as S
        from .stats import tabular_format

        fr = S.check_fractions(fractions)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise InvalidArgument(f"seed must be an int, got {seed!r}")
        v = self.version(ref)
        if by not in ("auto", "rows", "files"):
            raise InvalidArgument(f"by must be 'auto', 'rows' or 'files', got {by!r}")
        out_names = {s: (names or {}).get(s, f"{v.name}.{s}") for s in fr}
        for n in out_names.values():
            check_name(n)
        with self._reading(v) as source, self._writing() as out:
            entries = source.get_tree(v.tree)
            if by == "auto":
                by = "rows" if len(entries) == 1 and tabular_format(entries[0].path) else "files"
            parts: dict[str, list[FileEntry]] = {}
            objects = source  # where the parts' objects are
            if by == "files":
                parts = S.split_files(entries, fr, seed, stratify)
            else:
                if len(entries) != 1 or not tabular_format(entries[0].path):
                    raise InvalidArgument(f"{v.ref} is not a single CSV, TSV or Parquet file; "
                                          "split it by='files'")
                e = entries[0]
                fmt = tabular_format(e.path)
                assert fmt is not None
                tables = S.split_table(source.read_bytes(e), fmt, fr, seed, stratify, e.path)
                objects = out
                try:
                    for split_name, data in tables.items():
                        parts[split_name] = [self._put_generated(out, e.path, data)]
                except OSError as exc:
                    raise storage_error(exc) from None
            # Every part is checked before any is recorded: a refused split records nothing.
            for split_name, part in parts.items():
                if not part:
                    raise InvalidArgument(f"split {split_name!r} of {v.ref} would be empty; "
                                          "use larger fractions or more data")
            run_id, commit = self._run_and_commit(run_id)
            result = {}
            for split_name, part in parts.items():
                result[split_name] = self._record(
                    out_names[split_name], part, message=f"{split_name} split of {v.ref}",
                    source=v.ref, aliases=(), expectations=(), stats=True, kind="split",
                    parents=[v], run_id=run_id, commit=commit,
                    transform=S.describe(fr, seed, stratify, by, split_name), objects=objects)
        if run_id:
            self._log_input(run_id, v, "split")
        return result

    @staticmethod
    def _put_generated(objects: Any, rel: str, data: bytes) -> FileEntry:
        if len(data) <= objects.chunk_threshold:
            return FileEntry(rel, len(data), objects.put_bytes(data))
        with tempfile.TemporaryDirectory(prefix="cairn-") as tmp:
            p = Path(tmp) / "part"
            p.write_bytes(data)
            return objects.put_file(p, rel)

    def derive(self, inputs: Sequence[Ref], output: str | os.PathLike[str], name: str, *,
               transform: Mapping[str, Any] | None = None, message: str = "",
               aliases: Sequence[str] = (), expect: Sequence[str] | str | None = None,
               run_id: str | None = None, commit: str | None = None,
               progress: bool | None = False) -> DatasetVersion:
        """Record ``output`` as a version of ``name`` made from ``inputs`` by ``transform``.

        Inside a run (the active one, or ``run_id``) it also records the run, its
        code commit, and the inputs as the run's inputs: raw → cleaned → features.
        ``inputs`` may be empty when ``run_id`` is given: the run made the output from no
        recorded data.  ``commit``: the code commit, when the caller knows it (otherwise it
        is read from the environment of this process, which costs a capture).
        """
        if isinstance(inputs, (str, DataRef, DatasetVersion)):
            inputs = [inputs]
        if not inputs and not run_id:
            # Without a run a version made from nothing is an add; with one it records what
            # the run produced (a pipeline stage that reads no data).
            raise InvalidArgument("derive needs at least one input version, or the run_id of "
                                  "the run that made the output")
        if run_id is not None and (not isinstance(run_id, str) or not run_id):
            raise InvalidArgument(f"run_id must be a run id, got {run_id!r}")
        if commit is not None:
            if not isinstance(commit, str) or not _COMMIT_RE.fullmatch(commit):
                raise InvalidArgument("commit must be a git commit id (7 to 64 hex digits), "
                                      f"got {commit!r:.80}")
        parents = [self.version(r) for r in inputs]
        if transform is not None and not isinstance(transform, Mapping):
            raise InvalidArgument("transform must be a mapping of parameters, e.g. "
                                  "{'normalize': 'zscore'}")
        given = commit
        run_id, commit = self._run_and_commit(run_id, commit)
        if given is not None and run_id is None:
            raise InvalidArgument("commit is recorded with the run that made the output: give "
                                  "run_id too, or derive inside a run")
        v = self._add(output, name, message, aliases=aliases, expect=expect, kind="derive",
                      parents=parents, run_id=run_id, commit=commit,
                      transform=dict(transform or {}), progress=progress)
        if run_id:
            for p in parents:
                self._log_input(run_id, p, "input")
        return v

    def _run_and_commit(self, run_id: str | None,
                        commit: str | None = None) -> tuple[str | None, str | None]:
        if run_id is None:
            from ..fluent import active_run

            run = active_run()
            run_id = run.id if run is not None else None
        elif run_id:
            self.client.get_run(run_id)  # an unknown run: NotFound before anything is recorded
        if run_id is None:
            return None, None
        if commit is not None:
            return run_id, commit
        from .. import settings

        if not settings.CAPTURE_ENV.get():  # capture is off: record no commit, read no tree
            return run_id, None
        from ..environment import capture_environment

        git = capture_environment().get("git") or {}
        return run_id, git.get("commit")

    # -- remotes -----------------------------------------------------------------------
    def push(self, names: Sequence[str] | str | None = None, remote: str | None = None, *,
             progress: bool | None = None, workers: int = 8) -> TransferResult:
        """Send versions (all of ``names``, or every data set) and their objects to a remote."""
        from .transfer import push

        return push(self, names, remote, progress=progress, workers=workers)

    def pull(self, names: Sequence[str] | str | None = None, remote: str | None = None, *,
             progress: bool | None = None, workers: int = 8) -> TransferResult:
        """Fetch versions (all of ``names``, or every data set) and the objects they need."""
        from .transfer import pull

        return pull(self, names, remote, progress=progress, workers=workers)


def _write_file(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file next to it, then a rename."""
    head, name = os.path.split(path)
    tmp = os.path.join(head, f".{name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        try:
            view = memoryview(data)
            while view:  # os.write may write less than asked for
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _under(entries: list[FileEntry], path: str | None, v: DatasetVersion) -> list[FileEntry]:
    if not path:
        return entries
    prefix = check_path(path.strip("/"))
    picked = [e for e in entries if e.path == prefix or e.path.startswith(prefix + "/")]
    if not picked:
        raise NotFound(f"{v.ref} has no file or directory {prefix!r}", ref=v.ref, path=prefix)
    return picked
