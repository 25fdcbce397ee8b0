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

import json
import posixpath
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from ... import clock, search
from ...errors import Conflict, NotFound
from ...registry.entities import ModelVersion, Stage
from ...registry.semver import SemVer
from ..auth import Principal
from ..context import ServerContext
from . import _filters
from ._common import MlflowError, Params, artifact_uri, invalid, kv, missing

STAGE_TO_CAIRN = {"none": Stage.DEVELOPMENT.value, "staging": Stage.STAGING.value,
                  "production": Stage.PRODUCTION.value, "archived": Stage.ARCHIVED.value}
STAGE_TO_MLFLOW = {Stage.DEVELOPMENT.value: "None", Stage.STAGING.value: "Staging",
                   Stage.PRODUCTION.value: "Production", Stage.ARCHIVED.value: "Archived"}
PROMPT_TAG = "mlflow.prompt.is_prompt"


# -- plumbing ------------------------------------------------------------------------

def registry(c: ServerContext, p: Principal):
    from ...services import registry_for

    return registry_for(c.store, p.user)


def _extras_key(name: str, version: str) -> str:
    # The model's part is repo.model_key: rename and delete find these rows by it.
    from ...registry import repo

    return f"mlflow.mv/{repo.model_key(name)}/{version}"


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
            row, rows = repo.require_model(conn, name), repo.version_rows(conn, name)
            aliases = repo.aliases(conn, name)
            self.model = repo.to_model(conn, row, rows, aliases)
            versions = [repo.to_version(r, aliases) for r in rows]
            versions.sort(key=lambda v: v.created_at)  # stable: semver order on ties
            self.versions = versions
            self.extras = {v.version: _extras(conn, name, v.version) for v in versions}
            gone = repo.deleted_versions(conn, name)
        # A deleted version keeps its place: MLflow never gives its number again.
        order = sorted([(v.created_at, SemVer.parse(v.version), v) for v in versions]
                       + [(t, SemVer.parse(ver), None) for ver, t in gone.items()],
                       key=lambda x: (x[0], x[1]))
        self.number = {v.version: str(i + 1) for i, (_, _, v) in enumerate(order) if v}
        self.by_number = {str(i + 1): v for i, (_, _, v) in enumerate(order) if v}

    def version(self, number: Any) -> ModelVersion:
        mv = self.by_number.get(_number(number))
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


def _number(number: Any) -> str:
    """An MLflow version number as text (``" 2 "`` is 2, as on MLflow); 400 if none."""
    try:
        return str(int(str(number).strip()))
    except ValueError:
        raise invalid(f"Parameter 'version' must be an integer, got '{number}'.") from None


def _cairn_source(mv: ModelVersion) -> str:
    """A Cairn-registered version's files as a run path (registrations in a run copy them
    under ``models/NAME/VERSION/``), or its registry reference."""
    if mv.source_run_id:
        return f"runs:/{mv.source_run_id}/{_run_path(mv)}"
    return f"models:/{mv.name}/{mv.version}"


def _model(c: ServerContext, p: Principal, name: str | None, role: str | None = None):
    """The model, if ``p`` holds ``role`` (default: the route's) on it."""
    if not name:
        raise missing("name")
    c.guard.need(p, "model", name, role)
    reg = registry(c, p)
    try:
        return reg, _Model(reg, name)
    except NotFound:
        raise NotFound(f"Registered Model with name={name} not found") from None


# -- registered models ---------------------------------------------------------------

def create_model(c: ServerContext, p: Principal, r: Params) -> dict:
    from ...errors import AlreadyExists

    name = r.text("name", required=True)
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
        now = clock.now_ms()
        before = {k: (json.loads(getattr(row, k)) if k == "tags" else getattr(row, k))
                  for k in values}
        stored = {k: (repo.dumps(v) if k == "tags" else v) for k, v in values.items()}
        conn.execute(sa.update(repo.T.registered_models)
                     .where(repo.T.registered_models.c.name == name)
                     .values(updated_at=now, **stored))
        repo.record(conn, reg.user, action, f"model:{name}", before, values, now)


def update_model(c: ServerContext, p: Principal, r: Params) -> dict:
    reg, m = _model(c, p, r.text("name"))
    description = r.text("description")
    if description is not None:
        _update_model_row(reg, m.model.name, "model.update", description=description)
    return {"registered_model": _Model(reg, m.model.name).model_json()}


def set_model_tag(c: ServerContext, p: Principal, r: Params) -> dict:
    reg, m = _model(c, p, r.text("name"))
    key = r.text("key", required=True)
    tags = {**m.model.tags, key: r.text("value", default="")}
    _update_model_row(reg, m.model.name, "model.set_tag", tags=tags)
    return {}


def delete_model_tag(c: ServerContext, p: Principal, r: Params) -> dict:
    reg, m = _model(c, p, r.text("name"))
    key = r.text("key", required=True)
    if key not in m.model.tags:
        raise NotFound(f"No tag with key {key!r} on registered model {m.model.name}")
    _update_model_row(reg, m.model.name, "model.delete_tag",
                      tags={k: v for k, v in m.model.tags.items() if k != key})
    return {}


def rename_model(c: ServerContext, p: Principal, r: Params) -> dict:
    """MLflow's rename: the model, its versions, aliases, tags and roles take the new name
    (audited; every version's record digest is recomputed for it)."""
    from ...errors import AlreadyExists

    new_name = r.text("new_name", required=True)
    reg, m = _model(c, p, r.text("name"), "admin")  # the permissions table's role, in any case
    if "/" in new_name or ":" in new_name:
        raise invalid(f"Invalid model name '{new_name}'. Names cannot contain '/' or ':'.")
    try:
        reg.rename_registered_model(m.model.name, new_name)
    except AlreadyExists:
        raise AlreadyExists(f"Registered Model (name={new_name}) already exists.") from None
    c.guard.forget()  # the model's roles moved with it, in the rename's transaction
    return {"registered_model": _Model(reg, new_name).model_json()}


def _refused(what: str, blockers: dict[str, list[str]], m: "_Model") -> MlflowError:
    listed = "; ".join(f"version {m.number.get(v, v)} ({v}): {', '.join(why)}"
                       for v, why in blockers.items())
    return MlflowError(
        "INVALID_STATE", 400,
        f"{what} refused: {listed}. Cairn does not delete a version that is in Production (or "
        "in a Staging that needs approvals) or that an alias points at; move it to another "
        "stage (e.g. Archived) and delete its aliases first. A model admin can force it with "
        "Cairn's own API (`cairn models delete ... --force`), which the MLflow API has no "
        "field for.")


def delete_model(c: ServerContext, p: Principal, r: Params) -> dict:
    """MLflow's delete: the model and all its versions, unless one is protected."""
    reg, m = _model(c, p, r.text("name"), "admin")
    try:  # the delete checks the protections, in its own transaction
        reg.delete_registered_model(m.model.name)
    except Conflict as exc:
        if "blocked" not in exc.details:
            raise
        raise _refused(f"Deleting registered model {m.model.name}", exc.details["blocked"],
                       m) from None
    c.guard.forget()  # the roles on it went with it, in the delete's transaction
    return {}


def delete_version(c: ServerContext, p: Principal, r: Params) -> dict:
    """MLflow's version delete: its number is never given again."""
    name = r.text("name", required=True)
    reg, m, mv = _version(c, p, r, "admin")
    try:  # the delete checks the protections, in its own transaction
        reg.delete_model_version(mv.name, mv.version)
    except Conflict as exc:
        if "reasons" not in exc.details:
            raise
        raise _refused(f"Deleting model version {name}/{m.number[mv.version]}",
                       {mv.version: exc.details["reasons"]}, m) from None
    return {}


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
    reg, m = _model(c, p, r.text("name"))
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
    reg, m = _model(c, p, r.text("name"))
    alias = r.text("alias", required=True)
    if alias not in m.model.aliases:
        raise MlflowError("INVALID_PARAMETER_VALUE", 400,
                          f"Registered model alias {alias} not found.")
    reg.delete_alias(m.model.name, alias)
    return {}


# -- versions ------------------------------------------------------------------------

_BAD_SOURCE = "Invalid model version source: '{}'. "
_NOT_ABSOLUTE = ("If supplying a source as an http, https, local file path, ftp, objectstore, or "
                 "mlflow-artifacts uri, an absolute path must be provided without relative path "
                 "references present. Please provide an absolute path.")
_LOCAL = ("To use a local path as a model version source, the {0} request parameter has to be "
          "specified and the local path has to be contained within the artifact directory of "
          "the run specified by the {0}.")
_MUST_CONTAIN = "The {} request parameter must identify the resource that contains the source."
_ARTIFACT_ROUTE = ("api", "2.0", "mlflow-artifacts", "artifacts")


# Schemes whose artifact repositories connect to the host the URI names: mlflow server
# refuses them in a source (GHSA-mr9f-g8qf-4w4j); Cairn never connects to a source, and
# refuses them as it does.
_HOST_SCHEMES = frozenset({"ftp", "sftp", "hdfs", "viewfs", "http", "https", "mlflow-artifacts",
                           "r2", "b2", "abfss"})


def _check_scheme(source: str) -> None:
    u = urllib.parse.urlsplit(source)
    scheme = u.scheme.lower()
    if scheme in _HOST_SCHEMES and (scheme != "mlflow-artifacts" or u.netloc):
        raise invalid(f"'source' cannot use the '{scheme}' scheme: the '{scheme}' scheme "
                      "addresses a host other than the tracking server's configured artifact "
                      "storage, so the server would connect to the host named in the URI.")
    if scheme == "file" and u.hostname not in (None, "", "localhost", "127.0.0.1"):
        raise invalid(f"{source} is not a valid remote uri. For remote access on windows, "
                      "please consider using a different scheme such as SMB (e.g. "
                      "smb://<hostname>/<path>).")


def _bad_source(source: str, why: str) -> MlflowError:
    return MlflowError("INVALID_PARAMETER_VALUE", 400, _BAD_SOURCE.format(source) + why)


@dataclass
class _Source:
    """Where a new version's files are: ``path`` among run ``run_id``'s artifacts when
    this store may have them (``run_id`` may also name a run that is not here), else
    nowhere Cairn reads; ``extras`` is what the MLflow API shows of it."""

    run_id: str | None = None
    path: str | None = None
    extras: dict = field(default_factory=dict)


def _unquoted(text: str) -> str:
    while (plain := urllib.parse.unquote_plus(text)) != text:
        text = plain
    return text


def _is_local(source: str) -> bool:
    """A path on some machine's disk, as MLflow tells them (no scheme, or ``file:``)."""
    parsed = urllib.parse.urlparse(source)
    return parsed.scheme == "" or (parsed.scheme == "file" and parsed.hostname in
                                   (None, "", "localhost", "127.0.0.1"))


def _check_absolute(source: str) -> None:
    """MLflow's refusal of ``..``, ``.``, ``//`` and NUL in a URI's path."""
    plain = _unquoted(source)
    path = re.sub(r"/+", "/", urllib.parse.urlparse(plain).path.rstrip("/"))
    if "\x00" in path or ".." in plain.split("/") or not path.startswith("/") \
            or posixpath.normpath(path) != path:
        raise _bad_source(source, _NOT_ABSOLUTE)


def _parts(uri: str) -> tuple[str, str, tuple[str, ...]]:
    u = urllib.parse.urlsplit(uri)
    return (u.scheme.lower(), u.netloc.lower(),
            tuple(_unquoted(x) for x in u.path.split("/") if x))


def _within(source: str, root: str) -> tuple[str, ...] | None:
    """The parts of ``source`` below ``root`` (None: not inside it)."""
    s, r = _parts(source), _parts(root)
    if s[:2] != r[:2] or not r[2] or s[2][:len(r[2])] != r[2]:
        return None
    return s[2][len(r[2]):]


def _is_artifact_uri(source: str) -> bool:
    scheme, _, parts = _parts(source)
    return scheme == "mlflow-artifacts" or (scheme in ("http", "https") and any(
        parts[i:i + 4] == _ARTIFACT_ROUTE for i in range(len(parts) - 3)))


def _run_or_none(c: ServerContext, p: Principal, run_id: str) -> Any:
    from .tracking import get_run

    try:
        return get_run(c, p, run_id, "viewer")  # its viewers may register what it logged
    except NotFound:
        return None


def _source_of_run(c: ServerContext, p: Principal, source: str, run_id: str | None) -> _Source:
    """MLflow's checks of a source given with (or without) a run id, and where its files are."""
    if _is_local(source):
        path = posixpath.normpath(urllib.parse.urlparse(source).path or ".")
        run = _run_or_none(c, p, run_id) if run_id else None
        if run_id and run is None:
            raise _bad_source(source, _MUST_CONTAIN.format("run_id"))
        # Cairn keeps no run's files on a disk, and never reads one a request names: a path
        # is accepted where MLflow lays out this run's artifacts (.../<run id>/artifacts/...)
        # and stands for those artifacts.
        parts = path.split("/")
        for i in range(len(parts) - 1):
            if run is not None and parts[i] == run.id and parts[i + 1] == "artifacts":
                return _Source(run.id, "/".join(parts[i + 2:]))
        raise _bad_source(path, _LOCAL.format("run_id"))
    _check_absolute(source)
    scheme, netloc, parts = _parts(source)
    if scheme == "runs":
        rid, _, path = source[len("runs:/"):].partition("/") if not netloc else ("", "", "")
        if not run_id or rid != run_id:
            raise _bad_source(source, _MUST_CONTAIN.format("run_id"))
        run = _run_or_none(c, p, run_id)
        return _Source(run_id, path.strip("/") if run is not None else None,
                       {} if run is not None else {"storage_location": source})
    if scheme == "models":  # a logged model's id (registered models were resolved before)
        raise _bad_source(source, _MUST_CONTAIN.format("model_id"))
    if _is_artifact_uri(source):
        run = _run_or_none(c, p, run_id) if run_id else None
        rest = None if run is None else _within(source, artifact_uri(run))
        if rest is None:
            raise _bad_source(source, _MUST_CONTAIN.format("run_id"))
        return _Source(run.id, "/".join(rest))
    # Any other URI (s3://, gs://, hdfs://...): recorded, its files are not read.
    if run_id:
        _run_or_none(c, p, run_id)  # a run here: only its viewers may name it
    return _Source(run_id, None, {"storage_location": source})


def _source_of_model(c: ServerContext, p: Principal, source: str, model_id: str) -> _Source:
    """MLflow's checks of a source given with a logged model's id."""
    from .logged_models import artifact_location, get_model as get_logged_model

    def logged() -> tuple[Any, dict]:
        try:
            return get_logged_model(c, p, model_id, "viewer")
        except NotFound:
            raise _bad_source(source, _MUST_CONTAIN.format("model_id")) from None

    if _is_local(source):
        logged()
        raise _bad_source(posixpath.normpath(urllib.parse.urlparse(source).path or "."),
                          _LOCAL.format("model_id"))
    _check_absolute(source)
    scheme, netloc, parts = _parts(source)
    if scheme == "runs" or (scheme == "models" and (netloc or parts != (model_id,))):
        raise _bad_source(source, _MUST_CONTAIN.format("model_id"))
    run, desc = logged()
    if scheme == "models":
        return _Source(run.id, desc["path"], {"model_id": model_id})
    if _is_artifact_uri(source):
        rest = _within(source, artifact_location(run, desc))
        if rest is None:
            raise _bad_source(source, _MUST_CONTAIN.format("model_id"))
        return _Source(run.id, "/".join((desc["path"], *rest)), {"model_id": model_id})
    return _Source(run.id, None, {"model_id": model_id, "storage_location": source})


def _registered_source(c: ServerContext, p: Principal, source: str, r: Params
                       ) -> tuple[str, str | None, str | None, _Source]:
    """A ``models:/<name>/<version|stage|latest>`` or ``models:/<name>@<alias>`` source as
    MLflow records it: (``models:/<name>/<N>``, run id, logged model id, where its files
    are), the ids inherited from that version unless the request gives them (they must then
    match)."""
    netloc = urllib.parse.urlsplit(source).netloc
    if netloc:
        raise _bad_source(source, "Registered model sources must use the active model registry.")
    ref = source[len("models:/"):]
    name, at, alias = ref.partition("@")
    if not at:
        name, _, sel = ref.rpartition("/")
    _, other = _model(c, p, name, "viewer")
    if other.model.tags.get(PROMPT_TAG) == "true":
        raise _bad_source(source, "Prompt versions cannot be used as model version sources.")
    if at:
        version = other.model.aliases.get(alias)
        if version is None:
            raise MlflowError("INVALID_PARAMETER_VALUE", 400,
                              f"Registered model alias {alias} not found.")
        mv = next(v for v in other.versions if v.version == version)
    elif sel.lower() == "latest" or sel.lower() in STAGE_TO_CAIRN:
        wanted = None if sel.lower() == "latest" else STAGE_TO_CAIRN[sel.lower()]
        found = [v for v in other.versions if wanted is None or v.stage == wanted]
        if not found:
            raise NotFound(f"No versions of model with name '{name}' and stage '{sel}' found")
        mv = max(found, key=lambda v: int(other.number[v.version]))
    else:
        try:
            int(sel)
        except ValueError:
            _stage(sel)  # MLflow's "Invalid Model Version stage: ..." (a 400)
        mv = other.version(sel)
    number = other.number[mv.version]
    extras = other.extras.get(mv.version, {})
    run_id, model_id = mv.source_run_id or "", extras.get("model_id") or ""
    if (r.has("run_id") and (r.text("run_id") or "") != run_id) or \
            (r.has("model_id") and (r.text("model_id") or "") != model_id):
        raise _bad_source(source, "The run_id and model_id request parameters must match the "
                                  "referenced model version.")
    return (f"models:/{other.model.name}/{number}", run_id or None, model_id or None,
            _source_of_version(c, p, other, mv))


def _source_of_version(c: ServerContext, p: Principal, other: _Model, mv: ModelVersion
                       ) -> _Source:
    """The files of registered version ``mv`` of ``other`` (a ``models:/`` source)."""
    name, number = other.model.name, other.number[mv.version]
    extras = other.extras.get(mv.version, {})
    if extras.get("model_id"):
        try:
            return _source_of_model(c, p, f"models:/{extras['model_id']}", extras["model_id"])
        except MlflowError:
            pass  # the logged model is gone: what the version's own record says, below
    if "storage_location" in extras:
        return _Source(mv.source_run_id, None, {"storage_location": extras["storage_location"]})
    if mv.source_run_id and _run_or_none(c, p, mv.source_run_id) is not None:
        path = extras["run_path"] if "run_path" in extras else _run_path(mv)
        return _Source(mv.source_run_id, path)
    return _Source(mv.source_run_id, None, {"storage_location": f"models:/{name}/{number}"})


def create_version(c: ServerContext, p: Principal, r: Params) -> dict:
    from ...registry.from_run import register_source

    name = r.text("name", required=True)
    source = r.text("source", required=True)
    run_id = r.text("run_id") or None
    model_id = r.text("model_id") or None
    c.guard.need(p, "model", name)
    _check_scheme(source)
    parsed = urllib.parse.urlsplit(source)
    if parsed.scheme == "models" and (parsed.netloc or not _is_model_id(source)):
        if ".." in _unquoted(source).split("/"):
            raise _bad_source(source, _NOT_ABSOLUTE)
        source, run_id, inherited, loc = _registered_source(c, p, source, r)
        model_id = model_id or inherited
        if model_id:
            loc.extras["model_id"] = model_id
        loc.run_id = run_id or loc.run_id
    elif model_id:
        loc = _source_of_model(c, p, source, model_id)
    else:
        loc = _source_of_run(c, p, source, run_id)
    reg = registry(c, p)
    description = r.text("description") or ""
    try:  # the model must exist: checked in the registration's transaction
        mv = register_source(reg, name, source, run_id=loc.run_id, path=loc.path,
                             description=description, create_model=False)
    except NotFound as exc:
        if exc.details.get("name") != name or "version" in exc.details:
            raise
        raise NotFound(f"Registered Model with name={name} not found") from None
    extras = {**loc.extras, "source": source, "tags": dict(r.key_values("tags")),
              "run_link": r.text("run_link") or ""}
    if loc.path is not None and "storage_location" not in extras:
        extras["run_path"] = loc.path
    if description:
        extras["description"] = description
    _put_extras(reg, name, mv.version, extras)
    m = _Model(reg, name)
    return {"model_version": m.version_json(next(v for v in m.versions
                                                 if v.version == mv.version))}


def _is_model_id(source: str) -> bool:
    """``models:/<logged model id>``: one path segment, no alias (MLflow's reading)."""
    ref = source[len("models:/"):].strip("/")
    return bool(ref) and "/" not in ref and "@" not in ref


def _version(c: ServerContext, p: Principal, r: Params, role: str | None = None):
    """The model and version a request names; 404 "Model Version (name=…, version=…) not
    found" for either missing, as on MLflow."""
    name = r.text("name", required=True)
    number = r.text("version", required=True)
    try:
        reg, m = _model(c, p, name, role)
        return reg, m, m.version(number)
    except NotFound:
        raise NotFound(f"Model Version (name={name}, version={number}) not found") from None


def get_version(c: ServerContext, p: Principal, r: Params) -> dict:
    _, m, mv = _version(c, p, r)
    return {"model_version": m.version_json(mv)}


def _edit_extras(c: ServerContext, p: Principal, r: Params, change) -> tuple:
    from ...registry import repo

    reg, m, mv = _version(c, p, r)
    extras = dict(m.extras.get(mv.version, {}))
    before = json.loads(json.dumps(extras))
    change(extras)
    extras["updated"] = clock.now_ms()
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
    """Where the client downloads a version: the logged model's or run's artifacts it came
    from, or (a version whose files are not in Cairn) its source, as MLflow stores it."""
    from .logged_models import artifact_location, get_model as get_logged_model
    from .tracking import get_run

    _, m, mv = _version(c, p, r)
    extras = m.extras.get(mv.version, {})
    if extras.get("model_id") and "storage_location" not in extras:
        run, desc = get_logged_model(c, p, extras["model_id"], "viewer")
        return {"artifact_uri": artifact_location(run, desc)}
    if "storage_location" in extras:
        return {"artifact_uri": extras["storage_location"]}
    if not mv.source_run_id:
        raise invalid(f"Model version {mv.name}/{mv.version} was registered without a run; "
                      "download it with Cairn (cairn models download)")
    run = get_run(c, p, mv.source_run_id, "viewer")
    base = artifact_uri(run)
    if "run_path" in extras:
        return {"artifact_uri": f"{base}/{extras['run_path']}".rstrip("/")}
    source = extras.get("source", "")
    if source.startswith("runs:/"):
        return {"artifact_uri": f"{base}/{source[len('runs:/'):].partition('/')[2]}"}
    if source.startswith("mlflow-artifacts:/"):
        return {"artifact_uri": source}
    return {"artifact_uri": f"{base}/{_run_path(mv)}"}


def _run_path(mv: ModelVersion) -> str:
    """Where a registration inside a run copied the version's files among its artifacts
    (an MLflow model registered as a directory sits under ``model/`` there), under the
    name the model had then."""
    name = mv.lineage.get("registered_as") or mv.name
    return f"models/{name}/{mv.version}" + ("/model" if mv.flavor == "directory" else "")


def transition_stage(c: ServerContext, p: Principal, r: Params) -> dict:
    reg, m, mv = _version(c, p, r)
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
    ("POST", "/registered-models/rename", rename_model),
    ("DELETE", "/registered-models/delete", delete_model),
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
    ("DELETE", "/model-versions/delete", delete_version),
    ("GET", "/model-versions/search", search_versions),
    ("GET", "/model-versions/get-download-uri", download_uri),
    ("POST", "/model-versions/transition-stage", transition_stage),
    ("POST", "/model-versions/set-tag", set_version_tag),
    ("DELETE", "/model-versions/delete-tag", delete_version_tag),
]
