"""Registering a version from files a run already logged (``runs:/<run id>/model``).

:meth:`Registry.register_model` saves a live Python object.  A tracking server has
no such object, only the files a client logged (``cairn.autolog``'s ``model/``
directory, or the ``models/NAME/VERSION/`` copy an earlier registration made), and
it must never unpickle them: that would run code chosen by whoever uploaded the
file.  So the flavor comes from the metadata file next to the model:

* ``cairn-model.json`` (a registered layout): kept as it is, flavor and all;
* ``cairn_model.json`` (what autolog writes): a pickled scikit-learn estimator
  becomes flavor ``sklearn``, another ``model.pkl`` flavor ``pickle``;
* anything else is registered as flavor ``directory`` (loading returns the path).

The files are not copied: the new version's tree names the objects the run's
artifacts already point at.

A remote client's :meth:`Registry.register_model` (:mod:`cairn.registry.remote`)
saves the model where the object lives and uploads the files; :func:`register_files`
registers those, with what only the client knows of the model (``claims``).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, Literal, Mapping, Sequence

from ..cas.tree import check_path, referenced_oids
from ..entities import FileEntry
from ..errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from . import flavors as fl
from . import repo
from .entities import ModelVersion
from .naming import check_name
from .semver import SemVer, check_part
from .service import (
    META_FILE, META_FORMAT, _lineage, _parent_ref, _signing_key, normalize_datasets,
)
from .versions import Facts

if TYPE_CHECKING:  # pragma: no cover
    from .service import Registry

AUTOLOG_META = "cairn_model.json"  # cairn.autolog's description of a logged model
PICKLE_FILE = "model.pkl"
SOURCE_PREFIX = "runs:/"
_RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def parse_source(source: str) -> tuple[str, str]:
    """``runs:/<run id>/<path>`` -> (run id, path)."""
    if not isinstance(source, str) or not source.startswith(SOURCE_PREFIX):
        raise InvalidArgument(f"source must look like 'runs:/<run id>/<artifact path>', got "
                              f"{source!r}")
    run_id, _, path = source[len(SOURCE_PREFIX):].partition("/")
    if not _RUN_ID.fullmatch(run_id) or not path.rstrip("/"):
        raise InvalidArgument(f"source {source!r} needs a run id and an artifact path, e.g. "
                              "'runs:/<run id>/model'")
    return run_id, path


def register_from_run(reg: "Registry", name: str, run_id: str, path: str, *,
                      version: str | None = None, bump: str | None = None, parent: Any = None,
                      description: str = "", signing_key: str | Literal[False] | None = None,
                      claims: Mapping[str, Any] | None = None) -> ModelVersion:
    """Register the files under ``path`` in run ``run_id``'s artifacts as a version of ``name``.

    The version number is chosen as in :meth:`Registry.register_model` (``version``,
    ``bump``, or the part suggested from what changed against ``parent`` or the
    latest version).  The files also appear among the run's artifacts under
    ``models/NAME/VERSION/``, as with a registration inside the run.  ``claims``:
    see :func:`register_files`.
    """
    parent_ref = _check_numbering(name, version, bump, parent)
    prefix = check_path(path.rstrip("/")) if isinstance(path, str) and path.rstrip("/") else None
    if prefix is None:
        raise InvalidArgument(f"artifact path must name a file or directory of the run, got "
                              f"{path!r}")
    run = reg.client.get_run(run_id)  # NotFound for an unknown run
    found = [e for e in reg.store.list_artifacts(run.id)
             if e.path == prefix or e.path.startswith(prefix + "/")]
    if not found:
        raise NotFound(f"run {run.id} has no artifacts under {prefix!r}", run_id=run.id,
                       path=prefix)
    files = {(e.path[len(prefix) + 1:] if e.path != prefix else e.path.rsplit("/", 1)[-1]): e
             for e in found}
    return _register(reg, name, run, files, prefix, version, bump, parent_ref, description,
                     signing_key, claims or {})


def register_source(reg: "Registry", name: str, source: str, *, run_id: str | None = None,
                    path: str | None = None, description: str = "",
                    create_model: bool = True) -> ModelVersion:
    """Register a version of ``name`` from ``source``, any URI an MLflow client names
    (``runs:/<id>/model``, ``s3://...``, a path on the client's machine...).

    When run ``run_id`` is in this store and has files under ``path`` (``""``: all its
    artifacts), they are the version's, as :func:`register_from_run` registers them.
    Otherwise the version holds no files: its ``cairn-model.json`` and its lineage record
    ``source`` (``lineage["source"]``), loading it says where the model is, and nothing
    is read from where ``source`` points (the server's own disk included).  A ``run_id``
    that names no run of this store is kept as the version's source run, marked external
    (``lineage["run"]["external"]``); lineage shows it as a run that is not in this store.

    ``create_model=False``: a model ``name`` that does not exist is not created (NotFound,
    checked in the registration's own transaction), as MLflow's ``model-versions/create``.
    """
    check_name(name)
    run = None
    if run_id is not None:
        try:
            run = reg.client.get_run(run_id)
        except NotFound:
            if not _RUN_ID.fullmatch(run_id):
                raise InvalidArgument(f"run id {run_id!r} names no run here, and it cannot be "
                                      "kept as an external run's id (1 to 64 letters, digits, "
                                      "'-' or '_')", run_id=run_id) from None
    if run is not None and path is not None:
        prefix = path.strip("/")
        if prefix:
            check_path(prefix)
        found = [e for e in reg.store.list_artifacts(run.id)
                 if not prefix or e.path == prefix or e.path.startswith(prefix + "/")]
        if found:
            files = {_relative(e.path, prefix): e for e in found}
            return _register(reg, name, run, files, prefix or "artifacts", None, None, None,
                             description, None, {}, create_model=create_model)
    return _register(reg, name, run, {}, "source", None, None, None, description, None, {},
                     external={"source": source, "run_id": None if run is not None else run_id},
                     create_model=create_model)


def _relative(path: str, prefix: str) -> str:
    """``path`` under ``prefix`` (a file named by the prefix itself: its base name)."""
    if not prefix:
        return path
    return path[len(prefix) + 1:] if path != prefix else path.rsplit("/", 1)[-1]


def register_files(reg: "Registry", name: str, files: Sequence[FileEntry], *,
                   run_id: str | None = None, version: str | None = None,
                   bump: str | None = None, parent: Any = None, description: str = "",
                   signing_key: str | Literal[False] | None = None,
                   claims: Mapping[str, Any] | None = None
                   ) -> ModelVersion:
    """Register files a client saved and uploaded (their objects already in the store).

    This is what a remote :meth:`Registry.register_model` sends: the model saved on
    the client, with its ``cairn-model.json``.  With ``run_id`` the version records
    that run and its files appear among the run's artifacts under
    ``models/NAME/VERSION/``, exactly as a local registration inside the run.
    ``claims`` are what only the client could know, as :func:`cairn.registry.service.
    Registry.register_model` records them: ``params`` (the model's hyperparameters and
    the caller's ``params=``, over the run's), ``fingerprint`` (its architecture) and
    ``datasets`` (beyond the run's inputs).
    """
    parent_ref = _check_numbering(name, version, bump, parent)
    by_path: dict[str, FileEntry] = {}
    for e in files:
        check_path(e.path)
        if e.path in by_path:
            raise InvalidArgument(f"file {e.path!r} is listed twice")
        by_path[e.path] = e
    if META_FILE not in by_path:
        raise InvalidArgument(f"uploaded model files need a {META_FILE} next to the model "
                              "(what Registry.register_model saves)")
    missing = reg.store.objects.missing(referenced_oids(by_path.values()))
    if missing:
        raise Conflict(f"{len(missing)} object(s) of the model are not on the server yet; upload "
                       "them first (POST /api/v1/objects/missing, then PUT /api/v1/objects/{oid})",
                       missing=sorted(missing)[:20])
    run = None if run_id is None else reg.client.get_run(run_id)
    return _register(reg, name, run, by_path, "upload", version, bump, parent_ref, description,
                     signing_key, claims or {})


def _check_numbering(name: str, version: str | None, bump: str | None,
                     parent: Any) -> tuple[str, str] | None:
    check_name(name)
    if version is not None and bump is not None:
        raise InvalidArgument("give version= or bump=, not both")
    if version is not None:
        SemVer.parse(version)
    if bump is not None:
        check_part(bump)
    return None if parent is None else _parent_ref(name, parent)


def _register(reg: "Registry", name: str, run: Any, files: dict[str, FileEntry], prefix: str,
              version: str | None, bump: str | None, parent_ref: tuple[str, str] | None,
              description: str, signing_key: str | Literal[False] | None, claims: Mapping[str, Any],
              external: Mapping[str, Any] | None = None,
              create_model: bool = True) -> ModelVersion:
    if version is not None:
        version = str(SemVer.parse(version))
    store = reg.store
    if external is None and run is not None:
        # Asking freshens them, as a put that finds its object does: a gc that found them
        # unreferenced (the run's artifact TTL passed) spares them now they become the
        # model's.  One already gone is a clear error, not a version naming nothing.
        lost = store.objects.missing(referenced_oids(files.values()))
        if lost:
            raise NotFound(f"{len(lost)} object(s) of run {run.id}'s files under {prefix!r} "
                           "are no longer stored (collected after the artifacts expired?); "
                           "run `cairn doctor`", run_id=run.id, missing=sorted(lost)[:20])
    layout = (_layout(store.objects, files, prefix) if external is None
              else _external_layout(store.objects, external["source"]))
    tree_oid = store.objects.put_tree(layout["tree"])

    with reg.session() as conn:
        ds = normalize_datasets([*(repo.run_inputs(conn, run.id) if run is not None else ()),
                                 *(claims.get("datasets") or ())])
        same = [] if run is None else [mv for mv in repo.versions_for_run(conn, run.id)
                                       if mv.tree_oid == tree_oid]
    # A copy of a version this run registered keeps what that version knew of the model.
    fingerprint = dict(same[0].fingerprint) if same else layout["fingerprint"]
    if claims.get("fingerprint") is not None:
        fingerprint = dict(claims["fingerprint"])
    hyper = {**(dict(run.params) if run is not None else {}),
             **(dict(same[0].params) if same else {}),
             **fl.stringify(claims.get("params") or {})}
    sig, reqs, flavor = layout["signature"], layout["requirements"], layout["flavor"]
    lineage = _lineage(run, None)
    source_run = None if run is None else run.id
    if external is not None:
        lineage["source"] = {"uri": external["source"], "files": False}
        if external.get("run_id"):
            source_run = external["run_id"]
            lineage["run"] = {"id": source_run, "external": True}
    facts = Facts(flavor, sig, fingerprint, hyper, ds, (lineage.get("code") or {}).get("commit"))
    values = {
        "tree_oid": tree_oid, "flavor": flavor, "source_run_id": source_run,
        "signature": None if sig is None else repo.dumps(sig), "requirements": repo.dumps(reqs),
        "metrics": repo.dumps(dict(run.metrics) if run is not None else {}),
        "params": repo.dumps(hyper), "datasets": repo.dumps(ds), "lineage": repo.dumps(lineage),
        "fingerprint": repo.dumps(fingerprint), "description": description or "",
    }
    # False: the client signs this version itself (POST .../signature), not this server's key.
    key = None if signing_key is False else _signing_key(signing_key)
    for attempt in range(5):  # two registrations racing for the same number: take the next
        try:
            with reg.session(write=True) as conn:
                mv = reg._insert_version(conn, name, values, facts, version, bump, parent_ref, key,
                                         create_model)
            break
        except AlreadyExists:
            if version is not None or attempt == 4:
                raise
    if run is not None and external is None:
        out = f"models/{name}/{mv.version}"
        reg.client._write(run.id, artifacts=tuple(
            FileEntry(f"{out}/{e.path}", e.size, e.digest, e.chunks)
            for e in store.objects.get_tree(tree_oid)))
    return mv


def _layout(objects: Any, files: dict[str, FileEntry], prefix: str) -> dict[str, Any]:
    """Flavor, signature, requirements, fingerprint and the version's tree of files."""
    if META_FILE in files:
        meta = _read_json(objects, files[META_FILE], prefix)
        flavor = meta.get("flavor")
        if meta.get("format") != META_FORMAT or flavor not in fl.NAMES:
            raise InvalidArgument(f"{prefix}/{META_FILE} is not a Cairn model description "
                                  f"(format {META_FORMAT!r} with a known flavor)")
        meta_options = meta.get("options") or {}
        cls = meta_options.get("class") if isinstance(meta_options, dict) else None
        return {"flavor": flavor, "signature": meta.get("signature"),
                "requirements": meta.get("requirements") or {},
                "fingerprint": {"class": cls} if cls else {},
                "tree": [FileEntry(p, e.size, e.digest, e.chunks) for p, e in files.items()]}
    options: dict[str, Any] = {}
    flavor, fingerprint, packages = "directory", {"kind": "directory"}, {}
    if AUTOLOG_META in files and PICKLE_FILE in files:
        meta = _read_json(objects, files[AUTOLOG_META], prefix)
        framework = meta.get("flavor")
        cls = _class_path(meta.get("class"))
        flavor = "sklearn" if framework == "sklearn" else "pickle"
        options = {"file": PICKLE_FILE, **({"class": cls} if cls else {})}
        fingerprint = {"class": cls} if cls else {}
        if meta.get("framework_version"):
            dist = {"sklearn": "scikit-learn"}.get(str(framework), str(framework))
            packages = {dist: str(meta["framework_version"])}
        python = meta.get("python")
    else:
        python = None
    reqs = fl.requirements(())
    reqs = {"python": python or reqs["python"], "packages": packages}
    description = {"format": META_FORMAT, "flavor": flavor, "options": options,
                   "signature": None, "requirements": reqs}
    data = json.dumps(description, indent=2, sort_keys=True).encode()
    meta_entry = FileEntry(META_FILE, len(data), objects.put_bytes(data))
    tree = [FileEntry(f"model/{p}", e.size, e.digest, e.chunks) for p, e in files.items()]
    return {"flavor": flavor, "signature": None, "requirements": reqs,
            "fingerprint": fingerprint, "tree": [*tree, meta_entry]}


def _external_layout(objects: Any, source: str) -> dict[str, Any]:
    """A version without files: only its description, which says where the model is."""
    reqs = fl.requirements(())
    reqs = {"python": reqs["python"], "packages": {}}
    description = {"format": META_FORMAT, "flavor": "directory", "options": {},
                   "signature": None, "requirements": reqs, "external": {"source": source}}
    data = json.dumps(description, indent=2, sort_keys=True).encode()
    return {"flavor": "directory", "signature": None, "requirements": reqs,
            "fingerprint": {"kind": "external"},
            "tree": [FileEntry(META_FILE, len(data), objects.put_bytes(data))]}


def _read_json(objects: Any, entry: FileEntry, prefix: str) -> dict[str, Any]:
    if entry.size > 1 << 20:
        raise InvalidArgument(f"{prefix}/{entry.path} is too large to be a model description")
    try:
        doc = json.loads(objects.read_bytes(entry))
    except ValueError:
        raise InvalidArgument(f"{prefix}/{entry.path} is not valid JSON") from None
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{prefix}/{entry.path} must hold a JSON object")
    return doc


def _class_path(dotted: Any) -> str | None:
    """autolog's ``module.Class`` as the registry's ``module:Class`` (top-level classes)."""
    if not isinstance(dotted, str) or "." not in dotted:
        return None
    module, _, qual = dotted.rpartition(".")
    return f"{module}:{qual}"
