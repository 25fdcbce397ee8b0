"""MLflow's model registry over Cairn's (``/registered-models``, ``/model-versions``).

A model the mlflow client registers is a Cairn registered model, and each MLflow
version a Cairn version registered from the files of its source run
(:func:`cairn.registry.from_run.register_from_run`), with its lineage, digests and
audit trail; ``cairn models ls`` lists them.  The mapping:

* **version numbers**: MLflow's version ``N`` is the model's ``N``-th Cairn version in
  order of registration (Cairn numbers versions MAJOR.MINOR.PATCH);
* **stages**: MLflow's ``None`` is Cairn's ``Development``; Staging, Production and
  Archived are the same (a stage policy that needs approvals refuses a direct move);
* **aliases** are Cairn's aliases;
* what only MLflow has of a version (its ``source`` URI, logged-model id, tags,
  description, run link) is kept in the registry's settings table under
  ``mlflow.mv/<hash of the name>/<version>``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ... import search
from ...errors import NotFound
from ...registry.entities import ModelVersion, Stage
from ..auth import Principal
from ..context import ServerContext
from . import _filters
from ._common import MlflowError, Params, invalid, kv, missing

STAGE_TO_CAIRN = {"none": Stage.DEVELOPMENT.value, "staging": Stage.STAGING.value,
                  "production": Stage.PRODUCTION.value, "archived": Stage.ARCHIVED.value}
STAGE_TO_MLFLOW = {Stage.DEVELOPMENT.value: "None", Stage.STAGING.value: "Staging",
                   Stage.PRODUCTION.value: "Production", Stage.ARCHIVED.value: "Archived"}
PROMPT_TAG = "mlflow.prompt.is_prompt"


# -- plumbing ------------------------------------------------------------------------

def registry(c: ServerContext, p: Principal):
    from ...client import Client
    from ...registry.service import Registry

    client = Client(c.store.uri, user=p.user)
    client._store = c.store
    return Registry(client)


def _extras_key(name: str, version: str) -> str:
    return f"mlflow.mv/{hashlib.sha256(name.encode()).hexdigest()[:32]}/{version}"


def _extras(conn: Any, name: str, version: str) -> dict:
    from ...registry import repo

    return repo.get_setting(conn, _extras_key(name, version)) or {}


def _put_extras(reg: Any, name: str, version: str, extras: dict) -> None:
    from ...registry import repo

    with reg.session(write=True) as conn:
        repo.put_setting(conn, _extras_key(name, version), extras)


class _Model:
    """One registered model's versions in MLflow's numbering, read in one transaction."""

    def __init__(self, reg: Any, name: str) -> None:
        from ...registry import repo

        with reg.session() as conn:
            self.model = repo.to_model(conn, repo.require_model(conn, name))
            aliases = repo.aliases(conn, name)
            versions = [repo.to_version(r, aliases) for r in repo.version_rows(conn, name)]
            versions.sort(key=lambda v: v.created_at)  # stable: semver order on ties
            self.versions = versions
            self.extras = {v.version: _extras(conn, name, v.version) for v in versions}
        self.number = {v.version: str(i + 1) for i, v in enumerate(versions)}
        self.by_number = {str(i + 1): v for i, v in enumerate(versions)}

    def version(self, number: Any) -> ModelVersion:
        mv = self.by_number.get(str(number).strip())
        if mv is None:
            raise NotFound(f"Model Version (name={self.model.name}, version={number}) not found")
        return mv

    def version_json(self, mv: ModelVersion) -> dict[str, Any]:
        extras = self.extras.get(mv.version, {})
        out = {
            "name": mv.name, "version": self.number[mv.version],
            "creation_timestamp": mv.created_at,
            "last_updated_timestamp": max(mv.stage_since, extras.get("updated", 0)),
            "user_id": mv.created_by, "current_stage": STAGE_TO_MLFLOW.get(mv.stage, mv.stage),
            "description": extras.get("description", mv.description),
            "source": extras.get("source") or _cairn_source(mv),
            "run_id": mv.source_run_id or "", "status": "READY", "status_message": "",
            "tags": kv(extras.get("tags", {})), "run_link": extras.get("run_link", ""),
            "aliases": list(mv.aliases),
        }
        if extras.get("model_id"):
            out["model_id"] = extras["model_id"]
        return out

    def model_json(self) -> dict[str, Any]:
        m = self.model
        latest: dict[str, ModelVersion] = {}
        for mv in self.versions:
            latest[mv.stage] = mv
        return {
            "name": m.name, "creation_timestamp": m.created_at,
            "last_updated_timestamp": m.updated_at, "user_id": m.created_by,
            "description": m.description, "tags": kv(m.tags),
            "latest_versions": [self.version_json(v) for v in latest.values()],
            "aliases": [{"alias": a, "version": self.number.get(v, v)}
                        for a, v in m.aliases.items()],
        }


def _cairn_source(mv: ModelVersion) -> str:
    """A Cairn-registered version's files as a run path (registrations in a run copy them
    under ``models/NAME/VERSION/``), or its registry reference."""
    if mv.source_run_id:
        return f"runs:/{mv.source_run_id}/{_run_path(mv)}"
    return f"models:/{mv.name}/{mv.version}"


def _model(c: ServerContext, p: Principal, name: str | None, role: str = "viewer"):
    if not name:
        raise missing("name")
    c.guard.require(p, role, "model", name)
    reg = registry(c, p)
    try:
        return reg, _Model(reg, name)
    except NotFound:
        raise NotFound(f"Registered Model with name={name} not found") from None


# -- registered models ---------------------------------------------------------------

def create_model(c: ServerContext, p: Principal, r: Params) -> dict:
    from ...errors import AlreadyExists

    name = r.text("name", required=True)
    c.guard.require_global(p, "editor", "model")
    reg = registry(c, p)
    try:
        reg.create_registered_model(name, r.text("description") or "", dict(r.key_values("tags")))
    except AlreadyExists:
        raise AlreadyExists(f"Registered Model (name={name}) already exists.") from None
    if c.settings.auth and not p.is_admin:
        c.auth_db.grant(p.user, "model", name, "admin", granted_by=p.user)
        c.guard.forget()
    return {"registered_model": _Model(reg, name).model_json()}


def get_model(c: ServerContext, p: Principal, r: Params) -> dict:
    _, m = _model(c, p, r.text("name"))
    return {"registered_model": m.model_json()}


def _update_model_row(reg: Any, name: str, action: str, **values: Any) -> None:
    import sqlalchemy as sa

    from ...registry import repo

    with reg.session(write=True) as conn:
        row = repo.require_model(conn, name)
        now = repo.now_ms()
        before = {k: (json.loads(getattr(row, k)) if k == "tags" else getattr(row, k))
                  for k in values}
        stored = {k: (repo.dumps(v) if k == "tags" else v) for k, v in values.items()}
        conn.execute(sa.update(repo.T.registered_models)
                     .where(repo.T.registered_models.c.name == name)
                     .values(updated_at=now, **stored))
        repo.record(conn, reg.user, action, f"model:{name}", before, values, now)


def update_model(c: ServerContext, p: Principal, r: Params) -> dict:
    reg, m = _model(c, p, r.text("name"), "editor")
    description = r.text("description")
    if description is not None:
        _update_model_row(reg, m.model.name, "model.update", description=description)
    return {"registered_model": _Model(reg, m.model.name).model_json()}


def set_model_tag(c: ServerContext, p: Principal, r: Params) -> dict:
    reg, m = _model(c, p, r.text("name"), "editor")
    key = r.text("key", required=True)
    tags = {**m.model.tags, key: r.text("value", default="")}
    _update_model_row(reg, m.model.name, "model.set_tag", tags=tags)
    return {}


def delete_model_tag(c: ServerContext, p: Principal, r: Params) -> dict:
    reg, m = _model(c, p, r.text("name"), "editor")
    key = r.text("key", required=True)
    if key not in m.model.tags:
        raise NotFound(f"No tag with key {key!r} on registered model {m.model.name}")
    _update_model_row(reg, m.model.name, "model.delete_tag",
                      tags={k: v for k, v in m.model.tags.items() if k != key})
    return {}


def unsupported(what: str):
    def handler(c: ServerContext, p: Principal, r: Params) -> dict:
        raise invalid(f"{what} is not supported by Cairn: registered models and versions are "
                      "immutable and audited (archive a version with a stage transition instead)")
    return handler


_MODEL_ATTRIBUTES = {"name": "name"}
_MODEL_ORDER = {"name": "name", "timestamp": "last_updated_timestamp",
                "last_updated_timestamp": "last_updated_timestamp",
                "creation_timestamp": "creation_timestamp"}


def _page(items: list, r: Params, default: int, limit: int) -> tuple[list, str | None]:
    max_results = r.integer("max_results", default)
    if not 1 <= max_results <= limit:
        raise invalid(f"Invalid value {max_results} for parameter 'max_results' supplied; it "
                      f"must be between 1 and {limit}")
    offset = search.decode_page_token(r.text("page_token"))
    more = offset + max_results < len(items)
    return items[offset:offset + max_results], (search.encode_page_token(offset + max_results)
                                                if more else None)


def search_models(c: ServerContext, p: Principal, r: Params) -> dict:
    clauses = _filters.parse(r.text("filter"), _MODEL_ATTRIBUTES)
    for cl in clauses:
        if cl.entity not in ("attribute", "tag"):
            raise invalid(f"Invalid entity type '{cl.entity}' in a registered model filter")

    def value(m: Any, cl: _filters.Clause) -> Any:
        return m.name if cl.entity == "attribute" else m.tags.get(cl.key)

    reg = registry(c, p)
    test = _filters.matcher(clauses, value)
    models = [m for m in reg.list_registered_models() if test(m)]
    if not c.guard.sees_all(p, "model"):
        ok = set(c.guard.visible(p, "model", [m.name for m in models]))
        models = [m for m in models if m.name in ok]
    order = _filters.parse_order(r.texts("order_by"), _MODEL_ORDER) + [("name", True)]
    models = _filters.sort(models, order, lambda m, k: {
        "name": m.name, "last_updated_timestamp": m.updated_at,
        "creation_timestamp": m.created_at}[k])
    page, token = _page(models, r, 100, 1000)
    out: dict[str, Any] = {"registered_models": [_Model(reg, m.name).model_json() for m in page]}
    if token:
        out["next_page_token"] = token
    return out


def latest_versions(c: ServerContext, p: Principal, r: Params) -> dict:
    _, m = _model(c, p, r.text("name"))
    wanted = {_stage(s) for s in r.texts("stages")}
    latest: dict[str, ModelVersion] = {}
    for mv in m.versions:
        if not wanted or mv.stage in wanted:
            latest[mv.stage] = mv
    return {"model_versions": [m.version_json(v) for v in latest.values()]}


def _stage(text: str) -> str:
    st = STAGE_TO_CAIRN.get(str(text).strip().lower())
    if st is None:
        raise invalid(f"Invalid Model Version stage: {text}. Value must be one of None, "
                      "Staging, Production, Archived.")
    return st


# -- aliases -------------------------------------------------------------------------

def set_alias(c: ServerContext, p: Principal, r: Params) -> dict:
    reg, m = _model(c, p, r.text("name"), "editor")
    alias = r.text("alias", required=True)
    mv = m.version(r.text("version", required=True))
    reg.set_alias(m.model.name, alias, mv.version)
    return {}


def get_by_alias(c: ServerContext, p: Principal, r: Params) -> dict:
    _, m = _model(c, p, r.text("name"))
    alias = r.text("alias", required=True)
    version = m.model.aliases.get(alias)
    if version is None:
        raise MlflowError("INVALID_PARAMETER_VALUE", 400,
                          f"Registered model alias {alias} not found.")
    mv = next(v for v in m.versions if v.version == version)
    return {"model_version": m.version_json(mv)}


def delete_alias(c: ServerContext, p: Principal, r: Params) -> dict:
    reg, m = _model(c, p, r.text("name"), "editor")
    alias = r.text("alias", required=True)
    if alias not in m.model.aliases:
        raise MlflowError("INVALID_PARAMETER_VALUE", 400,
                          f"Registered model alias {alias} not found.")
    reg.delete_alias(m.model.name, alias)
    return {}


# -- versions ------------------------------------------------------------------------

def _source_location(c: ServerContext, p: Principal, source: str,
                     model_id: str | None) -> tuple[str, str, dict]:
    """(run id, artifact path, extras) of the files a new version registers."""
    from .logged_models import get_model as get_logged_model

    if model_id or source.startswith("models:/m-"):
        mid = model_id or source[len("models:/"):].split("/", 1)[0]
        run, desc = get_logged_model(c, p, mid)
        return run.id, desc["path"], {"model_id": mid}
    if source.startswith("models:/") and source.count("/") == 2:  # models:/<name>/<N>
        name, _, number = source[len("models:/"):].partition("/")
        _, other = _model(c, p, name)
        mv = other.version(number)
        extras = other.extras.get(mv.version, {})
        if extras.get("model_id"):
            return _source_location(c, p, "", extras["model_id"])
        if mv.source_run_id:
            return mv.source_run_id, _run_path(mv), {}
    if source.startswith("runs:/"):
        rid, _, path = source[len("runs:/"):].partition("/")
        return rid, path.strip("/"), {}
    if source.startswith("mlflow-artifacts:/"):
        parts = source[len("mlflow-artifacts:/"):].strip("/").split("/", 3)
        if len(parts) == 4 and parts[2] == "artifacts":
            return parts[1], parts[3], {}
    raise invalid(f"Unsupported model version source {source!r}: Cairn registers files a run "
                  "logged, so use 'models:/<logged model id>', 'runs:/<run id>/<path>' or "
                  "'mlflow-artifacts:/<experiment>/<run>/artifacts/<path>'")


def create_version(c: ServerContext, p: Principal, r: Params) -> dict:
    from ...registry.from_run import register_from_run
    from .tracking import get_run

    name = r.text("name", required=True)
    source = r.text("source", required=True)
    reg, _ = _model(c, p, name, "editor")
    run_id, path, extras = _source_location(c, p, source, r.text("model_id"))
    get_run(c, p, run_id)  # its viewers may register what it logged
    if not path:
        raise invalid(f"Model version source {source!r} names no directory of the run")
    mv = register_from_run(reg, name, run_id, path, description=r.text("description") or "")
    extras.update({"source": source, "tags": dict(r.key_values("tags")),
                   "run_link": r.text("run_link") or ""})
    if r.text("description"):
        extras["description"] = r.text("description")
    _put_extras(reg, name, mv.version, extras)
    m = _Model(reg, name)
    return {"model_version": m.version_json(next(v for v in m.versions
                                                 if v.version == mv.version))}


def _version(c: ServerContext, p: Principal, r: Params, role: str = "viewer"):
    reg, m = _model(c, p, r.text("name"), role)
    return reg, m, m.version(r.text("version", required=True))


def get_version(c: ServerContext, p: Principal, r: Params) -> dict:
    _, m, mv = _version(c, p, r)
    return {"model_version": m.version_json(mv)}


def _edit_extras(c: ServerContext, p: Principal, r: Params, change) -> tuple:
    from ...registry import repo

    reg, m, mv = _version(c, p, r, "editor")
    extras = dict(m.extras.get(mv.version, {}))
    before = json.loads(json.dumps(extras))
    change(extras)
    extras["updated"] = repo.now_ms()
    _put_extras(reg, mv.name, mv.version, extras)
    with reg.session(write=True) as conn:
        repo.record(conn, reg.user, "model.version.mlflow_update",
                    f"model:{mv.name}/{mv.version}", before, extras, extras["updated"])
    return reg, mv


def update_version(c: ServerContext, p: Principal, r: Params) -> dict:
    description = r.text("description")
    reg, mv = _edit_extras(c, p, r, lambda e: e.update(
        {} if description is None else {"description": description}))
    m = _Model(reg, mv.name)
    return {"model_version": m.version_json(next(v for v in m.versions if v.version == mv.version))}


def set_version_tag(c: ServerContext, p: Principal, r: Params) -> dict:
    key = r.text("key", required=True)
    value = r.text("value", default="")
    _edit_extras(c, p, r, lambda e: e.setdefault("tags", {}).update({key: value}))
    return {}


def delete_version_tag(c: ServerContext, p: Principal, r: Params) -> dict:
    key = r.text("key", required=True)

    def drop(e: dict) -> None:
        if key not in e.get("tags", {}):
            raise NotFound(f"No tag with key {key!r} on this model version")
        e["tags"].pop(key)

    _edit_extras(c, p, r, drop)
    return {}


def download_uri(c: ServerContext, p: Principal, r: Params) -> dict:
    from .logged_models import artifact_location, get_model as get_logged_model
    from .tracking import get_run

    _, m, mv = _version(c, p, r)
    extras = m.extras.get(mv.version, {})
    if extras.get("model_id"):
        run, desc = get_logged_model(c, p, extras["model_id"])
        return {"artifact_uri": artifact_location(run, desc)}
    if not mv.source_run_id:
        raise invalid(f"Model version {mv.name}/{mv.version} was registered without a run; "
                      "download it with Cairn (cairn models download)")
    run = get_run(c, p, mv.source_run_id)
    base = f"mlflow-artifacts:/{run.experiment_id}/{run.id}/artifacts"
    source = extras.get("source", "")
    if source.startswith("runs:/"):
        return {"artifact_uri": f"{base}/{source[len('runs:/'):].partition('/')[2]}"}
    if source.startswith("mlflow-artifacts:/"):
        return {"artifact_uri": source}
    return {"artifact_uri": f"{base}/{_run_path(mv)}"}


def _run_path(mv: ModelVersion) -> str:
    """Where a registration inside a run copied the version's files among its artifacts
    (an MLflow model registered as a directory sits under ``model/`` there)."""
    return f"models/{mv.name}/{mv.version}" + ("/model" if mv.flavor == "directory" else "")


def transition_stage(c: ServerContext, p: Principal, r: Params) -> dict:
    reg, m, mv = _version(c, p, r, "editor")
    stage = _stage(r.text("stage", required=True))
    if mv.stage != stage:
        reg.transition_stage(mv.name, mv.version, stage, "via the MLflow API")
    if r.boolean("archive_existing_versions") and stage in (Stage.STAGING.value,
                                                             Stage.PRODUCTION.value):
        # Re-read: an exclusive stage (Production by default) already archived the others.
        for other in _Model(reg, mv.name).versions:
            if other.version != mv.version and other.stage == stage:
                reg.transition_stage(mv.name, other.version, Stage.ARCHIVED.value,
                                     "archived by an MLflow transition")
    m = _Model(reg, mv.name)
    return {"model_version": m.version_json(next(v for v in m.versions if v.version == mv.version))}


_VERSION_ATTRIBUTES = {"name": "name", "run_id": "run_id", "source_path": "source",
                       "source": "source", "version_number": "version_number",
                       "version": "version_number"}
_VERSION_ORDER = {"name": "name", "version_number": "version_number",
                  "creation_timestamp": "creation_timestamp",
                  "last_updated_timestamp": "last_updated_timestamp", "timestamp": "last_updated_timestamp"}


def search_versions(c: ServerContext, p: Principal, r: Params) -> dict:
    clauses = _filters.parse(r.text("filter"), _VERSION_ATTRIBUTES)
    for cl in clauses:
        if cl.entity not in ("attribute", "tag"):
            raise invalid(f"Invalid entity type '{cl.entity}' in a model version filter")
    reg = registry(c, p)
    names = [m.name for m in reg.list_registered_models()]
    exact = [cl.value for cl in clauses if cl.entity == "attribute" and cl.key == "name"
             and cl.op == "="]
    if exact:
        names = [n for n in names if n == exact[0]]
    if not c.guard.sees_all(p, "model"):
        names = c.guard.visible(p, "model", names)
    rows = []
    for name in names:
        m = _Model(reg, name)
        if m.model.tags.get(PROMPT_TAG) != "true":  # MLflow leaves prompts out
            rows.extend(m.version_json(v) for v in m.versions)

    def value(v: dict, cl: _filters.Clause) -> Any:
        if cl.entity == "tag":
            return next((t["value"] for t in v["tags"] if t["key"] == cl.key), None)
        if cl.key == "version_number":
            return float(v["version"])
        return v[cl.key]

    test = _filters.matcher(clauses, value)
    rows = [v for v in rows if test(v)]
    order = _filters.parse_order(r.texts("order_by"), _VERSION_ORDER) + [
        ("last_updated_timestamp", False), ("name", True), ("version_number", False)]
    rows = _filters.sort(rows, order, lambda v, k: int(v["version"]) if k == "version_number"
                         else v[k])
    page, token = _page(rows, r, 10_000, 200_000)
    out: dict[str, Any] = {"model_versions": page}
    if token:
        out["next_page_token"] = token
    return out


ROUTES = [
    ("POST", "/registered-models/create", create_model),
    ("GET", "/registered-models/get", get_model),
    ("PATCH", "/registered-models/update", update_model),
    ("POST", "/registered-models/rename", unsupported("Renaming a registered model")),
    ("DELETE", "/registered-models/delete", unsupported("Deleting a registered model")),
    ("GET", "/registered-models/search", search_models),
    ("POST", "/registered-models/set-tag", set_model_tag),
    ("DELETE", "/registered-models/delete-tag", delete_model_tag),
    ("POST", "/registered-models/get-latest-versions", latest_versions),
    ("GET", "/registered-models/get-latest-versions", latest_versions),
    ("POST", "/registered-models/alias", set_alias),
    ("DELETE", "/registered-models/alias", delete_alias),
    ("GET", "/registered-models/alias", get_by_alias),
    ("POST", "/model-versions/create", create_version),
    ("GET", "/model-versions/get", get_version),
    ("PATCH", "/model-versions/update", update_version),
    ("DELETE", "/model-versions/delete", unsupported("Deleting a model version")),
    ("GET", "/model-versions/search", search_versions),
    ("GET", "/model-versions/get-download-uri", download_uri),
    ("POST", "/model-versions/transition-stage", transition_stage),
    ("POST", "/model-versions/set-tag", set_version_tag),
    ("DELETE", "/model-versions/delete-tag", delete_version_tag),
]
