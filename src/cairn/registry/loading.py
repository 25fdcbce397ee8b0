"""Loading model versions: integrity first, then a verified local cache, then the flavor.

Every load checks, in order: the version's record digest (its registry row is as
registered), its Ed25519 signature when a trusted key is known (or demanded), and
the digest of every file.  Files are materialised once per tree in a cache
directory (``STORE/cache/models/<tree oid>`` for a local store); a later load of
the same tree re-hashes the cached files against the manifest and reads nothing
else from the object store.  A cached file that no longer matches is thrown away
and checked out again; an object that is corrupt in the store fails the load with
:class:`~cairn.errors.CorruptObject` naming the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import stat
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

from ..errors import CorruptObject, InvalidArgument, InvalidSignature, NotFound
from ..store.base import Directory
from . import flavors as fl
from . import repo, signing
from . import signature as sigmod
from .entities import ModelVersion, VerifyReport



class ModelSource(Protocol):
    """What loading needs of a registry: :class:`~cairn.registry.service.Registry` (SQL)
    and :class:`~cairn.registry.remote.RemoteRegistry` (REST) both have it."""

    @property
    def store(self) -> Any: ...

    def resolve(self, ref: str) -> ModelVersion: ...

    def get_model_version(self, name: str, version: str) -> ModelVersion: ...

    def list_model_versions(self, name: str, stage: str | None = None) -> list[ModelVersion]: ...

    def trusted_keys(self) -> dict[str, str]: ...

META_FILE = "cairn-model.json"
_MARKER = ".cairn-tree"
_MISSING = object()


def record_ok(mv: ModelVersion) -> bool:
    values = {"name": mv.name, "version": mv.version, "tree_oid": mv.tree_oid,
              "flavor": mv.flavor, "source_run_id": mv.source_run_id, "signature": mv.signature,
              "requirements": mv.requirements, "parent_version": mv.parent, "bump": mv.bump,
              "bump_reasons": list(mv.bump_reasons), "metrics": mv.metrics, "params": mv.params,
              "datasets": list(mv.datasets), "lineage": mv.lineage, "fingerprint": mv.fingerprint,
              "description": mv.description, "created_by": mv.created_by,
              "created_at": mv.created_at}
    return repo.record_digest(values) == mv.digest


def check_record(mv: ModelVersion) -> None:
    if not record_ok(mv):
        raise CorruptObject(f"the registry record of {mv.uri} was changed after it was registered "
                            "(its digest does not match); do not trust this version",
                            name=mv.name, version=mv.version)


def check_signature(reg: ModelSource, mv: ModelVersion, verify_signature: bool | None,
                    trusted_keys: Iterable[Any] | None) -> str:
    """``verified``, ``unsigned``, ``untrusted`` or ``skipped``; raises when it must not load."""
    if verify_signature is False:
        return "skipped"
    if mv.signing_key is None:  # not mv.signed
        if verify_signature:
            raise InvalidSignature(f"{mv.uri} is not signed, and a signature was required; "
                                   "sign new versions by creating a key (`cairn keys create`)")
        return "unsigned"
    trusted = reg.trusted_keys()
    if trusted_keys:
        trusted.update(signing.trusted_from(trusted_keys))
    pem = trusted.get(mv.signing_key)
    if pem is None:
        if verify_signature:
            raise InvalidSignature(f"{mv.uri} is signed by key {mv.signing_key}, which is not "
                                   "trusted here; trust its public key with `cairn keys trust "
                                   "FILE` or pass trusted_keys=[...]", key_id=mv.signing_key)
        return "untrusted"
    message = signing.payload(mv.name, mv.version, mv.tree_oid, mv.source_run_id, mv.created_at,
                              mv.digest)
    signing.verify(pem, mv.signature_bytes or b"", message, mv.uri)
    return "verified"


def _check_files(mv: ModelVersion, meta: dict) -> None:
    """A version registered from a source whose files Cairn does not hold has none to load."""
    external = meta.get("external")
    if isinstance(external, dict):
        raise NotFound(f"{mv.uri} holds no files: it was registered from "
                       f"{external.get('source')!r}, which Cairn did not copy; load the model "
                       "from there", name=mv.name, version=mv.version)


def cache_root(reg: ModelSource, cache_dir: Any = None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    if isinstance(reg.store, Directory):
        return Path(reg.store.root) / "cache" / "models"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cairn" / "models"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _cached_ok(directory: Path, entries: list, tree_oid: str) -> bool:
    try:
        if (directory / _MARKER).read_text() != tree_oid:
            return False
    except OSError:
        return False
    for e in entries:
        p = directory / e.path
        try:
            if p.stat().st_size != e.size or _sha256(p) != e.digest:
                return False
        except OSError:
            return False
    return True


def _rmtree(path: Path) -> None:
    # cached files are read-only; Windows refuses to delete those
    def retry(func: Callable[[str], object], p: str, _exc: object) -> None:
        os.chmod(p, stat.S_IWRITE | stat.S_IREAD | stat.S_IEXEC)
        func(p)

    if path.exists():
        if sys.version_info >= (3, 12):
            shutil.rmtree(path, onexc=retry)
        else:
            shutil.rmtree(path, onerror=retry)


def _entries(reg: ModelSource, mv: ModelVersion) -> list:
    """The version's file list, with what to do when it is damaged or missing."""
    try:
        return list(reg.store.objects.get_tree(mv.tree_oid))
    except CorruptObject as exc:
        raise CorruptObject(f"{mv.uri}: its file list (tree {mv.tree_oid}) is corrupt in the "
                            f"object store: {exc.message}", name=mv.name, version=mv.version) from None
    except NotFound:
        raise NotFound(f"{mv.uri}: its files (tree {mv.tree_oid}) are missing from the object "
                       "store; pull them from a remote", name=mv.name, version=mv.version) from None


def materialize(reg: ModelSource, mv: ModelVersion, cache_dir: Any = None,
                advance: Callable[[int], None] | None = None) -> Path:
    """The version's files in the local cache, verified; checked out when missing or damaged.
    ``advance(n)`` is told the bytes of each file as it is fetched (all at once when cached)."""
    objects = reg.store.objects
    entries = _entries(reg, mv)
    root = cache_root(reg, cache_dir)
    final = root / mv.tree_oid
    if final.is_dir():
        if _cached_ok(final, entries, mv.tree_oid):
            if advance is not None:
                advance(sum(e.size for e in entries))
            return final
        _rmtree(final)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{mv.tree_oid[:12]}-{secrets.token_hex(4)}"
    try:
        for e in entries:
            try:
                objects.checkout(e, tmp / e.path)
            except CorruptObject as exc:
                raise CorruptObject(
                    f"{mv.uri}: file {e.path} is corrupt in the object store "
                    f"({exc.details.get('oid') or e.digest}); the model was not loaded. Restore "
                    "the object from a remote or a backup (`cairn models verify` lists every "
                    "damaged file)", name=mv.name, version=mv.version, path=e.path,
                    oid=exc.details.get("oid")) from None
            except NotFound:
                raise NotFound(f"{mv.uri}: file {e.path} is missing from the object store",
                               name=mv.name, version=mv.version, path=e.path) from None
            os.chmod(tmp / e.path, 0o444)
            if advance is not None:
                advance(e.size)
        (tmp / _MARKER).write_text(mv.tree_oid)
        try:
            os.rename(tmp, final)
        except OSError:  # another process cached the same tree a moment ago
            if not _cached_ok(final, entries, mv.tree_oid):
                raise
    finally:
        _rmtree(tmp)
    return final


def load(reg: ModelSource, ref: Any, *, check_inputs: Any = _MISSING,
         verify_signature: bool | None = None, trusted_keys: Iterable[Any] | None = None,
         cache_dir: Any = None, **flavor_options: Any) -> Any:
    """Load a model version (``name/1.3.0``, ``name@production``, ``name@champion``).

    ``check_inputs=X`` checks ``X`` against the stored signature first.
    ``verify_signature``: None verifies when a trusted key is known, True demands a
    valid signature by a trusted key, False skips it.  Flavor options: ``model=``
    (a PyTorch instance to load weights into), ``map_location=``.
    """
    mv = reg.resolve(ref)
    check_record(mv)
    if check_inputs is not _MISSING:
        sigmod.check(mv.signature, check_inputs, mv.uri)
    check_signature(reg, mv, verify_signature, trusted_keys)
    path = materialize(reg, mv, cache_dir)
    meta = json.loads((path / META_FILE).read_text())
    _check_files(mv, meta)
    mod = fl.module_for(meta["flavor"])
    unknown = sorted(set(flavor_options) - set(getattr(mod, "LOAD_OPTIONS", ())))
    if unknown:
        raise InvalidArgument(f"unknown load option(s) {', '.join(unknown)} for {mv.uri} (flavor "
                              f"{meta['flavor']}); it takes check_inputs, verify_signature, "
                              "trusted_keys, cache_dir" + "".join(
                                  f", {o}" for o in getattr(mod, "LOAD_OPTIONS", ())))
    return mod.load(path / "model", meta.get("options") or {}, what=mv.uri, **flavor_options)


def download(reg: ModelSource, ref: Any, dst: Any = None, *, verify_signature: bool | None = None,
             trusted_keys: Iterable[Any] | None = None, cache_dir: Any = None,
             progress: bool | None = False) -> Path:
    """The version's files: the read-only cached copy, or a verified copy under ``dst``.
    ``progress``: a bar on stderr while the files are fetched and checked (None: when
    stderr is a terminal)."""
    from ..progress import bar

    mv = reg.resolve(ref)
    check_record(mv)
    check_signature(reg, mv, verify_signature, trusted_keys)
    show = sys.stderr.isatty() if progress is None else progress
    total = sum(e.size for e in _entries(reg, mv)) if show else None
    with bar(f"fetching {mv.uri}", total, enabled=show) as advance:
        path = materialize(reg, mv, cache_dir, advance)
    meta_file = path / META_FILE
    if meta_file.is_file():
        _check_files(mv, json.loads(meta_file.read_text()))
    if dst is None:
        return path
    out = Path(dst)
    for e in reg.store.objects.get_tree(mv.tree_oid):
        target = out / e.path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path / e.path, target)
    return out


def verify_versions(reg: ModelSource, name: str, version: str | None,
                    trusted_keys: Iterable[Any] | None,
                    progress: bool | None = False) -> list[VerifyReport]:
    """Check every stored byte of one or all versions of ``name``; report, don't raise."""
    mvs = [reg.get_model_version(name, version)] if version else reg.list_model_versions(name)
    objects = reg.store.objects
    reports = []
    for mv in mvs:
        problems: list[str] = []
        if not record_ok(mv):
            problems.append("registry record changed after registration (digest mismatch)")
        try:
            status = check_signature(reg, mv, None, trusted_keys)
        except InvalidSignature as exc:
            status = "invalid"
            problems.append(exc.message)
        files = 0
        try:
            entries = objects.get_tree(mv.tree_oid)
        except (CorruptObject, NotFound) as exc:
            problems.append(f"file list (tree {mv.tree_oid}): {exc.message}")
            entries = []
        by_oid: dict[str, list[str]] = {}
        for e in entries:
            files += 1
            for oid in ([c[0] for c in e.chunks] if e.chunks else [e.digest]):
                by_oid.setdefault(oid, []).append(e.path)
        result = objects.verify(list(by_oid), progress=progress)
        for oid in result.corrupt:
            problems.extend(f"{p}: object {oid} is corrupt" for p in by_oid[oid])
        for oid in result.missing:
            problems.extend(f"{p}: object {oid} is missing" for p in by_oid[oid])
        reports.append(VerifyReport(mv.name, mv.version, files, status, tuple(problems)))
    return reports
