"""MLflow 3's logged models (``/logged-models``), kept with their source run.

Cairn has no separate model-artifact space: a model's files are artifacts of the run
that produced it.  So a logged model ``m-<hex>`` is described by a hidden tag
``cairn.mlflow.model.<id>`` on its source run (name, status, tags, params, times)
and its ``artifact_uri`` is a directory of that run's artifacts, ``<name>/`` (the
layout MLflow 2 used, so ``runs:/<run>/<name>`` works too); a second model of the
same name in one run gets ``<name>-<id prefix>/``.  A run holding models is tagged
``cairn.mlflow.models`` so a search finds them through Cairn's run search.  A model
logged outside any run gets a finished run of its own, named after it.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from ... import search
from ...errors import InvalidArgument, NotFound
from ...search.parser import Clause as RunClause, format_filter
from ...store.validation import MAX_TAG_VALUE
from ..auth import Principal
from ..context import ServerContext
from ..routes._common import now_ms
from . import _filters
from ._common import HIDDEN_TAG_PREFIX, OUTPUTS_TAG, Params, invalid, kv, missing
from .tracking import get_run, write

MODEL_TAG = HIDDEN_TAG_PREFIX + "model."
HAS_MODELS_TAG = HIDDEN_TAG_PREFIX + "models"
HOLDER_TAG = HIDDEN_TAG_PREFIX + "model_run"  # a run made to hold a model logged outside runs
STATUSES = ("LOGGED_MODEL_PENDING", "LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED")


def _tag_clause(key: str, op: str = "IS NOT NULL", value: Any = None) -> str:
    return format_filter((RunClause("tags", key, op, value),))


def _find(c: ServerContext, model_id: str) -> tuple[Any, dict]:
    """(source run, description) of a logged model; NotFound otherwise."""
    if not isinstance(model_id, str) or not model_id.startswith("m-") or len(model_id) > 40:
        raise NotFound(f"Logged model with ID '{model_id}' not found.")
    runs, _ = c.store.search_runs(None, _tag_clause(MODEL_TAG + model_id), (), 1)
    if not runs:
        raise NotFound(f"Logged model with ID '{model_id}' not found.")
    run = runs[0]
    return run, json.loads(run.tags[MODEL_TAG + model_id])


def get_model(c: ServerContext, p: Principal, model_id: str, role: str = "viewer",
              allow_deleted: bool = False) -> tuple[Any, dict]:
    run, desc = _find(c, model_id)
    c.guard.require(p, role, "experiment", run.experiment_id)
    if desc.get("deleted") and not allow_deleted:
        raise NotFound(f"Logged model with ID '{model_id}' not found.")
    return run, desc


def artifact_location(run: Any, desc: dict) -> str:
    return f"mlflow-artifacts:/{run.experiment_id}/{run.id}/artifacts/{desc['path']}"


def model_json(run: Any, desc: dict) -> dict[str, Any]:
    return {
        "info": {
            "model_id": desc["id"], "experiment_id": run.experiment_id, "name": desc["name"],
            "creation_timestamp_ms": desc["created"], "last_updated_timestamp_ms": desc["updated"],
            "artifact_uri": artifact_location(run, desc), "status": desc["status"],
            "model_type": desc.get("model_type", ""), "source_run_id": run.id,
            "status_message": desc.get("status_message", ""), "tags": kv(desc.get("tags", {})),
            "registrations": desc.get("registrations", []),
        },
        "data": {"params": kv(desc.get("params", {})), "metrics": []},
    }


def save(c: ServerContext, p: Principal, run: Any, desc: dict) -> None:
    desc["updated"] = now_ms()
    text = json.dumps(desc, separators=(",", ":"))
    if len(text) > MAX_TAG_VALUE:
        raise invalid(f"Logged model {desc['id']}: its tags and params exceed the 8000 "
                      "characters Cairn keeps for a logged model's description")
    write(c, p, run_id=run.id, tags={MODEL_TAG + desc["id"]: text, HAS_MODELS_TAG: "1"})


def _holder_run(c: ServerContext, p: Principal, experiment_id: str | None, name: str) -> str:
    """A finished run of its own for a model logged outside any run: Cairn keeps a model's
    files with a run."""
    from ...entities import RunStatus
    from ...names import random_name
    from .tracking import DEFAULT_EXPERIMENT_ID, get_experiment

    exp = get_experiment(c, experiment_id or DEFAULT_EXPERIMENT_ID)
    c.guard.require(p, "editor", "experiment", exp.id)
    run_id = uuid.uuid4().hex
    now = now_ms()
    write(c, p, run_id=run_id, status=RunStatus.FINISHED, end_time=now,
          create={"experiment_id": exp.id, "experiment_name": exp.name,
                  "experiment_created_at": exp.created_at,
                  "name": f"{name}-{random_name(run_id)}", "user": p.user, "start_time": now},
          tags={HOLDER_TAG: "true"})
    return run_id


def create(c: ServerContext, p: Principal, r: Params) -> dict:
    name = r.text("name") or "model"
    run_id = r.text("source_run_id") or _holder_run(c, p, r.text("experiment_id"), name)
    run = get_run(c, p, run_id, "editor")
    if "/" in name or name in (".", ".."):
        raise invalid(f"Invalid logged model name {name!r}")
    model_id = "m-" + uuid.uuid4().hex
    taken = {json.loads(v)["path"] for k, v in run.tags.items() if k.startswith(MODEL_TAG)}
    taken |= {e.path.split("/", 1)[0] for e in c.store.list_artifacts(run.id)}
    path = name if name not in taken else f"{name}-{model_id[2:10]}"
    params = dict(r.key_values("params"))
    now = now_ms()
    desc = {"id": model_id, "name": name, "path": path, "created": now, "updated": now,
            "status": "LOGGED_MODEL_PENDING", "model_type": r.text("model_type") or "",
            "tags": dict(r.key_values("tags")), "params": params}
    save(c, p, run, desc)
    c.audit(p, "mlflow.logged_model.create", f"runs/{run.id}", None,
            {"model_id": model_id, "name": name, "path": path})
    return {"model": model_json(c.store.get_run(run.id), desc)}


def get(c: ServerContext, p: Principal, r: Params) -> dict:
    # allow_deleted: what `mlflow gc` asks, to find the files of models deleted before.
    run, desc = get_model(c, p, r.text("model_id", required=True),
                          allow_deleted=r.boolean("allow_deleted"))
    return {"model": model_json(run, desc)}


def finalize(c: ServerContext, p: Principal, r: Params) -> dict:
    run, desc = get_model(c, p, r.text("model_id", required=True), "editor")
    status = r.text("status", required=True)
    if status not in STATUSES:
        raise invalid(f"Invalid value {status!r} for parameter 'status'")
    desc["status"] = status
    save(c, p, run, desc)
    return {"model": model_json(run, desc)}


def set_tags(c: ServerContext, p: Principal, r: Params) -> dict:
    run, desc = get_model(c, p, r.text("model_id", required=True), "editor")
    desc["tags"] = {**desc.get("tags", {}), **dict(r.key_values("tags"))}
    save(c, p, run, desc)
    return {"model": model_json(run, desc)}


def delete_tag(c: ServerContext, p: Principal, r: Params) -> dict:
    run, desc = get_model(c, p, r.text("model_id", required=True), "editor")
    key = r.text("tag_key", required=True)
    if key not in desc.get("tags", {}):
        raise NotFound(f"No tag with key {key!r} on logged model {desc['id']}")
    desc["tags"].pop(key)
    save(c, p, run, desc)
    return {}


def log_params(c: ServerContext, p: Principal, r: Params) -> dict:
    run, desc = get_model(c, p, r.text("model_id", required=True), "editor")
    desc["params"] = {**desc.get("params", {}), **dict(r.key_values("params"))}
    save(c, p, run, desc)
    return {}


def delete(c: ServerContext, p: Principal, r: Params) -> dict:
    run, desc = get_model(c, p, r.text("model_id", required=True), "editor")
    desc["deleted"] = True
    save(c, p, run, desc)
    return {}


_ATTRIBUTES = {"name": "name", "model_id": "model_id", "model_type": "model_type",
               "status": "status", "source_run_id": "source_run_id",
               "creation_timestamp": "creation_timestamp", "creation_time": "creation_timestamp",
               "last_updated_timestamp": "last_updated_timestamp",
               "last_updated_time": "last_updated_timestamp"}


def _value(item: tuple[Any, dict], key: str) -> Any:
    run, d = item
    return {"name": d["name"], "model_id": d["id"], "model_type": d.get("model_type", ""),
            "status": d["status"], "source_run_id": run.id, "creation_timestamp": d["created"],
            "last_updated_timestamp": d["updated"]}[key]


def search_models(c: ServerContext, p: Principal, r: Params) -> dict:
    ids = r.texts("experiment_ids")
    if not ids:
        raise missing("experiment_ids")
    if c.guard.enabled and not c.guard.sees_all(p, "experiment"):
        ids = [i for i in ids if i in set(c.guard.visible(p, "experiment", ids))]
    clauses = _filters.parse(r.text("filter"), _ATTRIBUTES)

    def value(item: tuple[Any, dict], cl: _filters.Clause) -> Any:
        _, d = item
        if cl.entity == "tag":
            return d.get("tags", {}).get(cl.key)
        if cl.entity == "param":
            return d.get("params", {}).get(cl.key)
        if cl.entity == "metric":
            return None
        return _value(item, cl.key)

    test = _filters.matcher(clauses, value)
    items = []
    token = None
    while ids:
        runs, token = c.store.search_runs(ids, _tag_clause(HAS_MODELS_TAG, "=", "1"), (), 1000,
                                          token)
        for run in runs:
            for k, v in run.tags.items():
                if k.startswith(MODEL_TAG):
                    d = json.loads(v)
                    if not d.get("deleted") and test((run, d)):
                        items.append((run, d))
        if token is None:
            break
    order = []
    for o in r.items("order_by"):
        if not isinstance(o, dict) or o.get("field_name") not in _ATTRIBUTES:
            raise invalid(f"Invalid order_by {o!r} for logged models")
        order.append((_ATTRIBUTES[o["field_name"]], bool(o.get("ascending", True))))
    items = _filters.sort(items, order + [("creation_timestamp", False)], _value)
    offset = search.decode_page_token(r.text("page_token"))
    limit = r.integer("max_results", 100)
    if limit < 1:
        raise invalid(f"Invalid value {limit} for parameter 'max_results'")
    out: dict[str, Any] = {"models": [model_json(run, d) for run, d in
                                      items[offset:offset + limit]]}
    if offset + limit < len(items):
        out["next_page_token"] = search.encode_page_token(offset + limit)
    return out


def list_artifacts(c: ServerContext, p: Principal, r: Params) -> dict:
    """A logged model's files under ``artifact_directory_path`` (the MLflow UI's browser)."""
    from .artifacts import listing

    run, desc = get_model(c, p, r.text("model_id", required=True))
    sub = (r.text("artifact_directory_path") or "").strip("/")
    rel = desc["path"] + (f"/{sub}" if sub else "")
    files = listing(c.store.list_artifacts(run.id), rel) or []
    prefix = sub + "/" if sub else ""
    return {"root_uri": artifact_location(run, desc),
            "files": [{**f, "path": prefix + f["path"]} for f in files]}


def log_outputs(c: ServerContext, p: Principal, r: Params) -> dict:
    """``runs/outputs``: the models a run produced, shown in ``run.outputs``."""
    run = get_run(c, p, r.run_id(), "editor")
    outputs = json.loads(run.tags.get(OUTPUTS_TAG) or "[]")
    for m in r.items("models"):
        if not isinstance(m, dict) or not isinstance(m.get("model_id"), str):
            raise InvalidArgument(f"Invalid value {m!r} for parameter 'models'")
        entry = {"model_id": m["model_id"], "step": Params(m).integer("step", 0)}
        if entry not in outputs:
            outputs.append(entry)
    write(c, p, run_id=run.id, tags={OUTPUTS_TAG: json.dumps(outputs, separators=(",", ":"))})
    return {}


ROUTES = [
    ("POST", "/logged-models", create),
    ("POST", "/logged-models/search", search_models),
    ("GET", "/logged-models/{model_id}", get),
    ("PATCH", "/logged-models/{model_id}", finalize),
    ("DELETE", "/logged-models/{model_id}", delete),
    ("PATCH", "/logged-models/{model_id}/tags", set_tags),
    ("DELETE", "/logged-models/{model_id}/tags/{tag_key:path}", delete_tag),
    ("POST", "/logged-models/{model_id}/params", log_params),
    ("GET", "/logged-models/{model_id}/artifacts/directories", list_artifacts),
    ("POST", "/runs/outputs", log_outputs),
]
