"""Data set versions on a Cairn server, with the same Python API as a local store.

``cairn.Client("http://host:5000").data`` (or ``cairn.data.add(...)`` after
``cairn.set_tracking_uri``) is a :class:`RemoteDatasets`.  Adding a version does
everything a local add does on this machine (scan, hash with the hash cache, chunk
big files, pack small ones, table statistics, quality expectations) into a
temporary object store; asks the server which of those objects it lacks; uploads
only those; then creates the version with ``POST /api/v1/datasets/{name}/versions``,
where the server checks every object is there, registers the packs and writes the
catalog row (with its own audit event, the caller's token as actor).  Nothing is
uploaded before the input has been checked, and a failed add records no version.

Reading resolves versions on the server and fetches objects from it, verifying
each one: ``files``, ``checkout`` (one download per pack of small files),
``load_array``.  ``verify`` and ``diff`` run on the server, next to the objects.

``split`` and ``derive`` work as locally: parts and outputs are recorded with their
parents, transformation, run and commit (the run must be on the server).

Not available against a server (each raises :class:`InvalidArgument` saying so):
``push`` and ``pull`` (the server *is* the shared copy) and the local catalog
(``Datasets.catalog``; ``client.lineage`` asks the server's ``GET /api/v1/lineage``).
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import hashlib
import json
import tempfile
import urllib.parse
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, NoReturn, Sequence

from ..cas.odb import ObjectStore
from ..cas.packs import MemoryPackIndex, register_pack
from ..entities import FileEntry
from ..errors import Conflict, InvalidArgument, NotFound
from ..store.validation import text_checked
from ..store.wire import entry_to_json
from .api import Datasets, Ref
from .entities import DataDiff, DataRef, Dataset, DatasetVersion, FileChange, check_alias
from .hashcache import HashCache
from .ingest import Scanned

if TYPE_CHECKING:
    from ..cas.verify import VerifyResult


def _q(name: str) -> str:
    return urllib.parse.quote(name, safe="/")


def _unsupported(what: str, instead: str) -> InvalidArgument:
    return InvalidArgument(f"{what} is not available against a Cairn server; {instead}")


def _selector(r: DataRef) -> str:
    if r.version is not None:
        return str(r.version)
    return r.alias or "latest"


class _Staging(ObjectStore):
    """Objects on their way to the server: a temporary directory, asked about together
    with the server, so that only what the server lacks is stored here and sent.

    Reads fall back to the server, and, for a file being added that the server holds
    only inside a pack (which cannot be fetched on its own), to the file on disk,
    checked against its digest.
    """

    def __init__(self, backend: Any, http: Any, sources: Sequence[Scanned]) -> None:
        super().__init__(backend, packs=MemoryPackIndex())
        self.http = http
        self.sources = {f.rel: f.path for f in sources}

    def missing(self, oids: Iterable[str]) -> set[str]:
        here = super().missing(oids)
        return self.http.missing_objects(here) if here else here

    def read_file(self, entry: FileEntry, *, verify: bool = True) -> Iterator[bytes]:
        try:
            yield b"".join(super().read_file(entry, verify=verify))
            return
        except NotFound:
            path = self.sources.get(entry.path)
            if path is None:
                raise
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError:
            data = b""
        if len(data) != entry.size or hashlib.sha256(data).hexdigest() != entry.digest:
            raise Conflict(f"{path} changed while it was being added; nothing was recorded",
                           path=path)
        yield data


@text_checked("data", "target", "path", "dest", "output")  # as Datasets
class RemoteDatasets(Datasets):
    """:class:`~cairn.data.Datasets` over a Cairn server's REST API (see the module doc)."""

    # -- plumbing ------------------------------------------------------------------
    @property
    def store(self) -> Any:
        return self._backend

    @property
    def objects(self) -> Any:
        """Objects read from the server (each verified), through the client's spool."""
        return self.store.objects

    @property
    def catalog(self) -> Any:
        raise _unsupported("the local data set catalog",
                           "use the methods of cairn.data (and client.lineage for lineage)")

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        return self.store.call(method, path, **kw)

    def _cache(self) -> HashCache:
        # Digests of files already hashed: a re-add of unchanged data reads nothing.
        return HashCache(self.store.spool.root / "cache" / "hashes.sqlite")

    def _excluded(self) -> builtins.list[str]:
        return [str(self.store.spool.root.resolve())]

    @contextlib.contextmanager
    def _writing(self, sources: Sequence[Scanned] = ()) -> Iterator[_Staging]:
        from ..store.http import _SpoolBackend
        from ..cas.backends.local import LocalBackend

        # Refused here, before any file is read, when the token may not add versions.
        self._call("POST", "/objects/missing", json={"oids": []})
        # Next to the spool rather than in /tmp: a big file is staged whole.
        root = self.store.spool.root
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="data-upload-", dir=root) as tmp:
            yield _Staging(_SpoolBackend(LocalBackend(tmp), self.store), self.store, sources)

    @contextlib.contextmanager
    def _reading(self, v: DatasetVersion) -> Iterator[ObjectStore]:
        """Objects of ``v`` from the server, its packs downloaded once and located."""
        from ..cas._pool import ordered_map
        from ..cas.backends.local import LocalBackend
        from ..store.http import _SpoolBackend

        root = self.store.spool.root
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="data-download-", dir=root) as tmp:
            backend = _SpoolBackend(LocalBackend(tmp), self.store)
            objects = ObjectStore(backend, packs=MemoryPackIndex())

            def fetch(pack: str) -> None:
                backend.local.put(pack, backend.get(pack))
                register_pack(objects, pack)  # reads it back, verified

            list(ordered_map(fetch, list(v.packs), workers=min(8, len(v.packs) or 1)))
            yield objects

    # -- reading the catalog -------------------------------------------------------
    def version(self, ref: Ref) -> DatasetVersion:
        """The version a reference names (``name``, ``name@3``, ``name@gold``), with its
        statistics."""
        r = DataRef.parse(ref)
        path = f"/datasets/{_q(r.name)}/versions/{_q(_selector(r))}"
        d = self._call("GET", path)
        return self._with_stats(d)

    def _with_stats(self, d: Mapping[str, Any]) -> DatasetVersion:
        st = self._call("GET", f"/datasets/{_q(d['name'])}/versions/{d['version']}/stats")
        return _version(d, stats=st.get("stats") or {})

    def versions(self, name: str) -> builtins.list[DatasetVersion]:
        """Versions of ``name``, oldest first (without statistics: :meth:`version` has them)."""
        return [_version(d) for d in self._call("GET", f"/datasets/{_q(name)}/versions")]

    def list(self) -> builtins.list[Dataset]:
        return [_make(Dataset, d, aliases=dict(d.get("aliases") or {}))
                for d in self._call("GET", "/datasets")]

    def _latest(self, name: str) -> DatasetVersion | None:
        try:
            return self.version(f"{name}@latest")
        except NotFound:
            return None

    # -- recording versions -------------------------------------------------------------
    def _commit(self, name: str, entries: builtins.list[FileEntry], tree_bytes: bytes, *, objects: Any,
                latest: DatasetVersion | None, stats: Mapping[str, Any],
                quality: builtins.list[dict[str, Any]], expectations: Sequence[Any],
                **meta: Any) -> DatasetVersion:
        """Upload what the server lacks of ``objects`` (from :meth:`_writing` or
        :meth:`_reading`), then ask it to record the version; the server stores the tree
        and re-checks the expectations."""
        if meta.get("run_id"):
            self.client.get_run(meta["run_id"])  # sends what this process buffered of the run
        staged = objects.backend.local
        self.store.upload_objects(staged.iter_oids(), source=staged)
        body = {"files": [entry_to_json(e) for e in entries],
                "packs": sorted(objects.packs.packs()),
                "message": meta.get("message") or "", "source": meta.get("source") or "",
                "aliases": list(meta.get("aliases") or ()),
                "expect": [e.text for e in expectations],
                "stats": json.loads(json.dumps(dict(stats), default=str)),
                "kind": meta.get("kind") or "add",
                "parents": [p.ref for p in meta.get("parents") or ()],
                "run_id": meta.get("run_id"), "commit": meta.get("commit"),
                "transform": json.loads(json.dumps(dict(meta.get("transform") or {}),
                                                   default=str))}
        d = self._call("POST", f"/datasets/{_q(name)}/versions", json=body)
        # An unchanged add returns the latest version, whose statistics these are too.
        return _version(d, stats=body["stats"])

    # -- aliases and inputs --------------------------------------------------------
    def alias(self, ref: Ref, alias: str) -> DatasetVersion:
        """Point ``alias`` (e.g. ``gold``) at a version; moves it if it pointed elsewhere."""
        r = DataRef.parse(ref)
        check_alias(alias)
        d = self._call("PUT", f"/datasets/{_q(r.name)}/aliases/{_q(alias)}",
                       json={"version": _selector(r)})
        return self._with_stats(d)

    def remove_alias(self, name: str, alias: str) -> None:
        DataRef.parse(name)  # a clear error for a bad name, before the request
        self._call("DELETE", f"/datasets/{_q(name)}/aliases/{_q(alias)}")

    # -- the trash -----------------------------------------------------------------------
    def delete_version(self, ref: Ref, force: bool = False) -> DatasetVersion:
        """Move version ``ref`` to the trash on the server (editors; ``force``: server
        admins)."""
        if not isinstance(force, bool):
            raise InvalidArgument(f"force must be True or False, got {force!r}")
        r = _exact_ref(ref, "delete")
        return _version(self._call("DELETE", f"/datasets/{_q(r.name)}/versions/{r.version}",
                                   params={"force": "true" if force else "false"}))

    def restore_version(self, ref: Ref) -> DatasetVersion:
        """Bring version ``ref`` back from the server's trash (editors)."""
        r = _exact_ref(ref, "restore")
        return self._with_stats(self._call(
            "POST", f"/datasets/{_q(r.name)}/versions/{r.version}/restore"))

    def _log_input(self, run_id: str, v: DatasetVersion, role: str) -> None:
        self.client.get_run(run_id)  # sends what this process buffered of the run first
        self._call("POST", f"/runs/{_q(run_id)}/inputs", json={"dataset": v.ref, "role": role})

    # -- verify, diff (checkout: Datasets.checkout over _reading) -------------------------
    def verify(self, ref: Ref, *, progress: bool | None = False) -> VerifyResult:
        """Have the server re-hash every object of a version; a :class:`~cairn.cas.VerifyResult`
        (one request: ``progress`` has nothing to show)."""
        from ..cas.verify import VerifyResult

        r = DataRef.parse(ref)
        d = self._call("POST", f"/datasets/{_q(r.name)}/versions/{_q(_selector(r))}/verify")
        return VerifyResult(d["checked"], tuple(d.get("corrupt") or ()),
                            tuple(d.get("missing") or ()))

    def diff(self, a: Ref, b: Ref) -> DataDiff:
        d = self._call("GET", "/datasets/diff",
                       params={"a": str(DataRef.parse(a)), "b": str(DataRef.parse(b))})

        def changes(key: str) -> tuple[FileChange, ...]:
            return tuple(_make(FileChange, c) for c in d.get(key) or ())

        return DataDiff(d["a"], d["b"], added=changes("added"), removed=changes("removed"),
                        changed=changes("changed"),
                        moved=tuple(tuple(m) for m in d.get("moved") or ()),
                        unchanged=d.get("unchanged", 0), tables=d.get("tables") or {})

    # -- not available against a server -------------------------------------------------
    def push(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise _unsupported("push", "the server is the shared copy; push from a local store")

    def pull(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise _unsupported("pull", "check a version out with cairn.data.checkout")


def _exact_ref(ref: Ref, verb: str) -> DataRef:
    from .catalog import _exact

    return _exact(ref, verb)


# -- JSON -> entities (the server sends dataclasses.asdict of the same ones) ------------
def _make(cls: type, d: Mapping[str, Any], **values: Any) -> Any:
    """``cls`` from the keys of ``d`` it knows (a newer server may send more)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in names and k not in values}, **values)


def _version(d: Mapping[str, Any], stats: Mapping[str, Any] | None = None) -> DatasetVersion:
    return _make(DatasetVersion, d, aliases=tuple(d.get("aliases") or ()),
                 packs=tuple(d.get("packs") or ()), parents=tuple(d.get("parents") or ()),
                 transform=dict(d.get("transform") or {}), stats=dict(stats or {}),
                 quality=tuple(d.get("quality") or ()))
