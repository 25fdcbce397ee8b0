"""The registry: register versions, read them, and govern their stages.

:class:`Registry` works on any store with a SQL index (the local store today, the
server's PostgreSQL store later) and its object store.  Every mutation runs in
one write transaction together with its history event and its audit event, so a
failure leaves nothing half-applied.  The files of a version are written to the
content-addressed object store first; if the transaction then fails they are
merely unreferenced objects.
"""

from __future__ import annotations

import json
import platform
import tempfile
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .. import clock
from ..errors import AlreadyExists, InvalidArgument, NotFound
from ..services import StoreService
from ..store.base import Indexed
from ..store.validation import text_checked
from . import flavors as fl
from . import repo
from . import signature as sigmod
from .deployments import Deployments
from .entities import ModelVersion, RegisteredModel, Stage
from .lifecycle import Lifecycle
from .naming import NamingPolicy, check_name, make_policy
from .reading import VersionReading
from .semver import FIRST, SemVer, check_part
from .versions import Facts, suggest
from .workflow import Workflow

if TYPE_CHECKING:
    from sqlalchemy import Row
    from sqlalchemy.engine import Connection

META_FILE = "cairn-model.json"
META_FORMAT = "cairn.model/1"
NAMING_KEY = "naming_policy"


def target(name: str, version: str | None = None) -> str:
    return f"model:{name}" + (f"/{version}" if version else "")


def summary(mv: Any) -> dict[str, Any]:
    """What an audit event records about a version's state."""
    return {"version": mv.version, "stage": mv.stage}


# Every public method (the workflow's too) refuses text that is not valid Unicode (a lone
# surrogate) at the call: names, descriptions, tags, aliases, comments, references.
@text_checked("model", "input_example")
class Registry(StoreService, VersionReading, Workflow, Lifecycle, Deployments):
    """The model registry on ``store`` (one with an SQL index), acting as ``user``.

    Build it with :func:`cairn.services.registry_for` (what :class:`cairn.Client` and the
    server do) or directly: ``Registry(store, "alice")``; ``Registry(client)`` uses a
    client's store and user.
    """

    def __init__(self, store: Any = None, user: str | None = None) -> None:
        StoreService.__init__(self, store, user)

    # -- plumbing --------------------------------------------------------
    @property
    def store(self) -> Any:
        store = self._backend
        if not isinstance(store, Indexed):
            raise InvalidArgument(f"the model registry needs a store with a database (a local "
                                  f"store directory or a server), not {store.uri}")
        store.open()
        return store

    def session(self, write: bool = False) -> AbstractContextManager[Connection]:
        return self.store.index.session(write=write)

    # -- registered models -----------------------------------------------
    def create_registered_model(self, name: str, description: str = "",
                                tags: Mapping[str, str] | None = None) -> RegisteredModel:
        check_name(name)
        with self.session(write=True) as conn:
            if repo.model_row(conn, name) is not None:
                raise AlreadyExists(f"a registered model named {name!r} already exists")
            self._create_model(conn, name, description, tags, clock.now_ms())
            return repo.to_model(conn, repo.require_model(conn, name))

    def _create_model(self, conn: Connection, name: str, description: str, tags: Mapping[str, str] | None,
                      now: int) -> None:
        policy = self._naming(conn)
        if policy is not None:
            policy.check(name)
        repo.insert_model(conn, name, description, dict(tags or {}), self.user, now)
        repo.add_history(conn, name, None, "create", self.user, now)
        repo.record(conn, self.user, "model.create", target(name), None,
                    {"name": name, "description": description or "", "tags": dict(tags or {})}, now)

    def get_registered_model(self, name: str) -> RegisteredModel:
        with self.session() as conn:
            return repo.to_model(conn, repo.require_model(conn, name))

    def list_registered_models(self) -> list[RegisteredModel]:
        with self.session() as conn:
            return repo.list_models(conn)

    # -- naming policy ---------------------------------------------------
    def _naming(self, conn: Connection) -> NamingPolicy | None:
        value = repo.get_setting(conn, NAMING_KEY)
        return None if value is None else NamingPolicy(value.get("template"), value.get("regex"))

    def set_naming_policy(self, template: str | None = None, regex: str | None = None
                          ) -> NamingPolicy | None:
        """Require new model names to match a template (``{project}_{model_type}``) or a regex.

        With neither, the policy is removed.  Existing models are not renamed.
        """
        policy = make_policy(template, regex)
        with self.session(write=True) as conn:
            old = repo.get_setting(conn, NAMING_KEY)
            new = None if policy is None else policy.to_json()
            repo.put_setting(conn, NAMING_KEY, new)
            repo.record(conn, self.user, "registry.naming_policy", "registry:naming", old, new,
                        clock.now_ms())
        return policy

    def get_naming_policy(self) -> NamingPolicy | None:
        with self.session() as conn:
            return self._naming(conn)

    # -- versions --------------------------------------------------------
    def get_model_version(self, name: str, version: str) -> ModelVersion:
        SemVer.parse(version)
        with self.session() as conn:
            row = repo.require_version(conn, name, str(version))
            return repo.to_version(row, repo.aliases(conn, name))

    def list_model_versions(self, name: str, stage: str | None = None) -> list[ModelVersion]:
        """Versions of ``name`` in semver order (oldest first), optionally of one stage."""
        st = None if stage is None else Stage.parse(stage).value
        with self.session() as conn:
            repo.require_model(conn, name)
            al = repo.aliases(conn, name)
            return [repo.to_version(r, al) for r in repo.version_rows(conn, name, st)]

    def latest_model_version(self, name: str) -> ModelVersion:
        with self.session() as conn:
            repo.require_model(conn, name)
            row = repo.latest_row(conn, name)
            if row is None:
                raise NotFound(f"model {name!r} has no versions yet", name=name)
            return repo.to_version(row, repo.aliases(conn, name))

    def model_versions_of_run(self, run_id: str) -> list[ModelVersion]:
        """The versions registered from run ``run_id``; :class:`NotFound` for an unknown run."""
        self.client.get_run(run_id)  # NotFound, as on a server; delivers its buffered records
        with self.session() as conn:
            return repo.versions_for_run(conn, run_id)

    def resolve(self, ref: str) -> ModelVersion:
        """``name/1.3.0``, ``name@production`` (a stage), ``name@champion`` (an alias), ``name@latest``."""
        name, kind, value = parse_ref(ref)
        with self.session() as conn:
            repo.require_model(conn, name)
            al = repo.aliases(conn, name)
            row: Row[Any] | None
            if kind == "version":
                row = repo.require_version(conn, name, value)
            elif kind == "latest":
                row = repo.latest_row(conn, name)
                if row is None:
                    raise NotFound(f"model {name!r} has no versions yet", name=name)
            elif kind == "stage":
                rows = repo.version_rows(conn, name, value)
                if not rows:
                    raise NotFound(f"model {name!r} has no version in {value}; `cairn models "
                                   f"versions {name}` shows the stages", name=name, stage=value)
                row = max(rows, key=lambda r: (r.stage_since, r.major, r.minor, r.patch))
            else:
                version = al.get(value)
                if version is None:
                    known = ", ".join(sorted(al)) or "none"
                    raise NotFound(f"model {name!r} has no alias {value!r} (aliases: {known})",
                                   name=name, alias=value)
                row = repo.require_version(conn, name, version)
            return repo.to_version(row, al)

    # -- registering -----------------------------------------------------
    def register_model(self, name: str, model: Any, *, run_id: str | None = None,
                       input_example: Any = None, signature: Mapping[str, Any] | None = None,
                       flavor: str | None = None, version: str | None = None,
                       bump: str | None = None, parent: Any = None,
                       datasets: Sequence[Any] | None = None, description: str = "",
                       params: Mapping[str, Any] | None = None, torchscript: bool = False,
                       init_kwargs: Mapping[str, Any] | None = None,
                       signing_key: str | None = None, env: Mapping[str, Any] | None = None
                       ) -> ModelVersion:
        """Save ``model`` with its flavor, store its files as a tree, and register a version.

        The version is ``version`` if given, else the latest one bumped by ``bump``,
        else by the part suggested from what changed against ``parent`` (default: the
        latest version).  Inside a run (``run_id``) the version records the run's
        params, metrics, code commit and environment, and its files also appear as
        the run's artifacts under ``models/NAME/VERSION/``.
        """
        version, flavor = check_registration(name, model, flavor, version, bump, signature)
        parent_ref = None if parent is None else _parent_ref(name, parent)
        run = self.client.get_run(run_id) if run_id is not None else None
        store = self.store
        if run is not None:  # the data set versions the run logged as inputs
            with self.session() as conn:
                datasets = [*(datasets or ()), *repo.run_inputs(conn, run.id)]
        ds = normalize_datasets(datasets)
        packed = package_model(store.objects, model, flavor, input_example=input_example,
                               signature=signature, torchscript=torchscript,
                               init_kwargs=init_kwargs)
        saved, sig, reqs, entries = packed.saved, packed.signature, packed.requirements, packed.entries
        tree_oid = store.objects.put_tree(entries)
        hyper = dict(saved.hyperparams)
        if run is not None:
            hyper = {**dict(run.params), **hyper}
        hyper.update(fl.stringify(params or {}))
        lineage = _lineage(run, env)
        facts = Facts(flavor, sig, saved.fingerprint, hyper, ds, (lineage.get("code") or {}).get("commit"))
        values = {
            "tree_oid": tree_oid, "flavor": flavor, "source_run_id": run_id,
            "signature": None if sig is None else repo.dumps(sig), "requirements": repo.dumps(reqs),
            "metrics": repo.dumps(dict(run.metrics) if run is not None else {}),
            "params": repo.dumps(hyper), "datasets": repo.dumps(ds),
            "lineage": repo.dumps(lineage), "fingerprint": repo.dumps(saved.fingerprint),
            "description": description or "",
        }
        key = _signing_key(signing_key)
        for attempt in range(5):
            try:
                with self.session(write=True) as conn:
                    mv = self._insert_version(conn, name, values, facts, version, bump, parent_ref,
                                              key)
                break
            except AlreadyExists:
                if version is not None or attempt == 4:
                    raise
        if run_id is not None:
            prefix = f"models/{name}/{mv.version}"
            self.client._write(run_id, artifacts=tuple(
                type(e)(f"{prefix}/{e.path}", e.size, e.digest, e.chunks) for e in entries))
        return mv

    def _insert_version(self, conn: Connection, name: str, values: dict[str, Any], facts: Facts,
                        version: str | None, bump: str | None, parent_ref: tuple[str, str] | None,
                        key: Any, create_model: bool = True) -> ModelVersion:
        now = clock.now_ms()
        if repo.model_row(conn, name) is None:
            if not create_model:
                repo.require_model(conn, name)
            self._create_model(conn, name, "", None, now)
        latest = repo.latest_row(conn, name)
        parent_row: Row[Any] | None
        if parent_ref is not None:
            parent_row = repo.require_version(conn, *parent_ref)
        else:
            parent_row = latest
        parent_facts = None if parent_row is None else _facts(parent_row)
        part, reasons = suggest(parent_facts, facts)
        deleted = repo.deleted_versions(conn, name)
        top = repo.top_version(latest, deleted)  # deleted versions' numbers are not given again
        if top is not None and part == "initial":  # every earlier version was deleted
            part, reasons = "major", ["every earlier version of this model was deleted"]
        if version is not None:
            gone = version in deleted
            if gone or repo.version_row(conn, name, version) is not None:
                nxt = str(top.bump("patch")) if top else "1.0.0"
                why = ("was deleted, and a version number is never given twice" if gone else
                       "already exists and versions are immutable")
                raise AlreadyExists(f"{name}/{version} {why}; register a new one (e.g. {nxt})",
                                    name=name, version=version)
            new, kind = SemVer.parse(version), "explicit"
            reasons = [f"version {version} set explicitly (suggested: {part})", *reasons]
        elif bump is not None:
            new, kind = (top.bump(bump) if top else FIRST), bump
            reasons = [f"bump {bump} requested (suggested: {part})", *reasons]
        elif top is None:
            new, kind = FIRST, "initial"
            if part != "initial":
                reasons = ["first version of this model", *reasons]
        else:
            new, kind = top.bump(part), part
        row = {"name": name, "version": str(new), "bump": kind, "bump_reasons": repo.dumps(reasons),
               "parent_version": None if parent_row is None else f"{parent_row.name}/{parent_row.version}",
               "created_by": self.user, "created_at": now, **values}
        row["digest"] = repo.record_digest(row)
        row["signing_key"] = row["signature_bytes"] = None
        if key is not None:
            from . import signing

            private, key_id = key
            message = signing.payload(name, str(new), values["tree_oid"], values["source_run_id"],
                                      now, row["digest"])
            row["signing_key"], row["signature_bytes"] = key_id, signing.sign(private, message)
        repo.insert_version(conn, {**row, "stage": Stage.DEVELOPMENT.value, "stage_since": now})
        repo.touch_model(conn, name, now)
        repo.add_history(conn, name, str(new), "register", self.user, now, None,
                         Stage.DEVELOPMENT.value, "; ".join(reasons))
        repo.record(conn, self.user, "model_version.create", target(name, str(new)), None, {
            "version": str(new), "tree": values["tree_oid"], "flavor": values["flavor"],
            "source_run": values["source_run_id"], "bump": kind, "bump_reasons": reasons,
            "parent": row["parent_version"], "digest": row["digest"],
            "signing_key": row["signing_key"], "stage": Stage.DEVELOPMENT.value}, now)
        return repo.to_version(repo.require_version(conn, name, str(new)), repo.aliases(conn, name))


# -- helpers -------------------------------------------------------------------
def parse_ref(ref: Any) -> tuple[str, str, str]:
    """``(name, kind, value)`` with kind version | stage | alias | latest."""
    if isinstance(ref, ModelVersion):
        return ref.name, "version", ref.version
    if not isinstance(ref, str) or not ref:
        raise InvalidArgument(f"model reference must be a string like 'name/1.3.0', "
                              f"'name@production' or 'name@champion', got {ref!r}")
    text = ref.removeprefix("models:/")
    if "@" in text:
        name, _, sel = text.rpartition("@")
        check_name(name)
        if sel.lower() == "latest":
            return name, "latest", ""
        if Stage.is_stage(sel):
            return name, "stage", Stage.parse(sel).value
        if not sel:
            raise InvalidArgument(f"{ref!r}: nothing after '@'; name a stage or an alias")
        return name, "alias", sel
    if "/" in text:
        name, _, version = text.rpartition("/")
        check_name(name)
        return name, "version", str(SemVer.parse(version))
    check_name(text)
    raise InvalidArgument(f"{ref!r} does not say which version: use {text}/VERSION, "
                          f"{text}@STAGE (e.g. @production), {text}@ALIAS or {text}@latest")


def check_registration(name: str, model: Any, flavor: str | None, version: str | None,
                       bump: str | None, signature: Mapping[str, Any] | None
                       ) -> tuple[str | None, str]:
    """Refuse bad ``register_model`` arguments before anything is saved; returns the
    normalised version (or None) and the flavor (detected when not given)."""
    check_name(name)
    if version is not None and bump is not None:
        raise InvalidArgument("give version= or bump=, not both")
    if version is not None:
        version = str(SemVer.parse(version))
    if bump is not None:
        check_part(bump)
    flavor = fl.detect(model) if flavor is None else flavor
    fl.module_for(flavor)
    _check_flavor(flavor, model)
    if signature is not None and (not isinstance(signature, Mapping) or "inputs" not in signature):
        raise InvalidArgument("signature must be a dict with 'inputs' (and 'outputs') "
                              "schemas; or pass input_example= to infer one")
    return version, flavor


@dataclass(frozen=True, slots=True)
class PackagedModel:
    """A model saved with its flavor into the object store: what a version is made of."""

    saved: Any  # the flavor's SavedModel: options, hyperparams, fingerprint, packages
    signature: dict[str, Any] | None
    requirements: dict[str, Any]  # fl.requirements: {"python": ..., "packages": {...}}
    entries: list[Any]  # FileEntry of every file, META_FILE included


def package_model(objects: Any, model: Any, flavor: str, *, input_example: Any = None,
                  signature: Mapping[str, Any] | None = None, torchscript: bool = False,
                  init_kwargs: Mapping[str, Any] | None = None) -> PackagedModel:
    """Save ``model`` with its flavor, write ``cairn-model.json`` next to it and put the
    files into ``objects`` (a local store, or a remote client's spool before upload)."""
    mod = fl.module_for(flavor)
    with tempfile.TemporaryDirectory(prefix="cairn-model-") as tmp:
        root = Path(tmp)
        saved = mod.save(model, root / "model", input_example=input_example,
                         torchscript=torchscript,
                         init_kwargs=None if init_kwargs is None else dict(init_kwargs))
        sig = dict(signature) if signature is not None else None
        if sig is None and input_example is not None:
            sig = sigmod.infer(input_example, mod.predict(model, input_example))
        reqs = fl.requirements(saved.packages)
        meta = {"format": META_FORMAT, "flavor": flavor, "options": saved.options,
                "signature": sig, "requirements": reqs}
        (root / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
        if flavor == "directory":
            entries = objects.put_dir(model, "model")
            entries.append(objects.put_file(root / META_FILE, META_FILE))
        else:
            entries = objects.put_dir(root)
    return PackagedModel(saved, sig, reqs, entries)


def _parent_ref(name: str, parent: Any) -> tuple[str, str]:
    if isinstance(parent, ModelVersion):
        return parent.name, parent.version
    if isinstance(parent, str) and "/" in parent:
        pname, _, pver = parent.removeprefix("models:/").rpartition("/")
        return check_name(pname), str(SemVer.parse(pver))
    return name, str(SemVer.parse(parent))


def _check_flavor(flavor: str, model: Any) -> None:
    detected = fl.detect(model) if flavor != "directory" else "directory"
    if flavor in ("sklearn", "pytorch") and detected != flavor:
        raise InvalidArgument(f"flavor {flavor!r} does not fit a {type(model).__name__}; "
                              f"its detected flavor is {detected!r}")


def normalize_datasets(datasets: Sequence[Any] | None) -> list[dict[str, Any]]:
    """Data set references as ``{"name", "version", ...}`` dicts, from ``"name@3"`` or dicts."""
    out = []
    for item in datasets or ():
        if isinstance(item, str):
            name, sep, ver = item.partition("@")
            if not name:
                raise InvalidArgument(f"data set reference {item!r} needs a name, e.g. 'transactions@3'")
            out.append({"name": name, "version": ver if sep else None})
        elif isinstance(item, Mapping) and item.get("name"):
            out.append({str(k): v for k, v in item.items()})
        else:
            ref_name, version = getattr(item, "name", None), getattr(item, "version", None)
            if not ref_name:
                raise InvalidArgument(f"cannot use {item!r} as a data set reference; give "
                                      "'name@version' or {'name': ..., 'version': ...}")
            out.append({"name": str(ref_name), "version": version})
    unique: dict[tuple, dict[str, Any]] = {}
    for d in out:
        d["version"] = None if d.get("version") in (None, "") else str(d["version"])
        unique[(d["name"], d["version"], str(d.get("role") or ""))] = d
    return [unique[k] for k in sorted(unique)]


def _lineage(run: Any, env: Mapping[str, Any] | None) -> dict[str, Any]:
    env = dict(env or {}) or (dict(run.env) if run is not None else {})
    git = env.get("git") or None
    code = None if not git else {k: git.get(k) for k in ("commit", "branch", "dirty", "remote")}
    python = env.get("python")
    if isinstance(python, dict):
        python = python.get("version")
    out: dict[str, Any] = {"code": code,
                           "environment": {"python": python or platform.python_version(),
                                           "os": env.get("os")}}
    if run is not None:
        out["run"] = {"id": run.id, "name": run.name, "experiment": run.experiment,
                      "user": run.user}
    return out


def _facts(row: Any) -> Facts:
    lineage = json.loads(row.lineage)
    return Facts(row.flavor, None if row.signature is None else json.loads(row.signature),
                 json.loads(row.fingerprint), json.loads(row.params), json.loads(row.datasets),
                 (lineage.get("code") or {}).get("commit"))


def _signing_key(explicit: str | None) -> Any:
    from . import signing

    path = signing.signing_key_path(explicit)
    return None if path is None else signing.load_private(path)
