"""MLflow 3's logged models (``/logged-models``), kept with their source run.

Cairn has no separate model-artifact space: a model's files are artifacts of the run
that produced it.  So a logged model ``m-<hex>`` is described by a hidden tag
``cairn.mlflow.model.<id>`` on its source run (name, status, tags, params, times)
and its ``artifact_uri`` is a directory of that run's artifacts, ``<name>/`` (the
layout MLflow 2 used, so ``runs:/<run>/<name>`` works too); a second model of the
same name in one run gets ``<name>-<id prefix>/``.  A run holding models is tagged
``cairn.mlflow.models`` so a search finds them through Cairn's run search.  A model
logged outside any run, or naming a source run that does not exist (MLflow accepts any
``source_run_id``), gets a finished run of its own, named after it; the model still
reports the ``source_run_id`` it was given.  Metrics logged with a ``model_id`` are kept
in the model's description too (every point, as MLflow lists them), besides the run's.
"""

from __future__ import annotations

import hashlib
import json
import threading
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from ... import clock, search
from ...entities import Experiment, Run, RunStatus
from ...errors import InvalidArgument, NotFound
from ...names import random_name
from ...search.parser import Clause as RunClause, format_filter
from ...store.validation import MAX_TAG_VALUE, check_text
from ...store.wire import jfloat
from ..auth import Principal
from ..context import ServerContext
from . import _filters
from ._common import HIDDEN_TAG_PREFIX, OUTPUTS_TAG, MlflowError, Params, invalid, kv, missing
from .tracking import check_active, get_experiment, get_run, write

MODEL_TAG = HIDDEN_TAG_PREFIX + "model."
HAS_MODELS_TAG = HIDDEN_TAG_PREFIX + "models"
HOLDER_TAG = HIDDEN_TAG_PREFIX + "model_run"  # a run made to hold a model logged outside runs
# MLflow's LoggedModelStatus enum: finalize takes a name or its number.
STATUS_NUMBERS = {0: "LOGGED_MODEL_STATUS_UNSPECIFIED", 1: "LOGGED_MODEL_PENDING",
                  2: "LOGGED_MODEL_READY", 3: "LOGGED_MODEL_UPLOAD_FAILED"}
STATUSES = tuple(STATUS_NUMBERS.values())
BAD_NAME_CHARS = ("/", ":", ".", "%", '"', "'")  # what MLflow refuses in a model's name
DEFAULT_MAX_RESULTS = 100  # MLflow's, also for max_results 0 (protobuf's "not given")


# A change to a model reads its description, changes it and writes it back; two at once
# would lose one.  Striped locks serialise the changes of one model in this process, and
# the store's locks those of every process and replica (see _shared_locks).
_STRIPES = [threading.Lock() for _ in range(64)]
_FILE_STRIPES = 256  # lock files of a local store, shared by the models that hash alike


def _key(model_id: str) -> int:
    """A signed 64-bit key for a model id, the same in every process."""
    h = int.from_bytes(hashlib.sha256(model_id.encode()).digest()[:8], "big", signed=True)
    return h


@contextmanager
def _shared_locks(c: ServerContext, keys: list[int]) -> Iterator[None]:
    """Hold ``keys`` across processes: PostgreSQL's session advisory locks (every worker and
    replica of one database), or a local store's lock files (the workers of ``--workers
    N`` on one machine).  Taken in order, so two changes never wait on each other."""
    engine = c.engine
    if engine is not None and engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for k in keys:
                conn.exec_driver_sql("SELECT pg_advisory_lock(%s)", (k,))
            try:
                yield
            finally:
                for k in reversed(keys):
                    conn.exec_driver_sql("SELECT pg_advisory_unlock(%s)", (k,))
        return
    root = getattr(c.store, "root", None)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: this process's locks only
        fcntl = None  # type: ignore[assignment]
    if root is None or fcntl is None:
        yield
        return
    folder = Path(root) / "locks"
    folder.mkdir(exist_ok=True)
    with ExitStack() as stack:
        for stripe in sorted({k % _FILE_STRIPES for k in keys}):
            f = stack.enter_context(open(folder / f"logged-model-{stripe:03d}.lock", "a+b"))
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)  # released when the file closes
        yield


@contextmanager
def changing(c: ServerContext, model_ids: Iterable[Any]) -> Iterator[None]:
    """Hold the locks of ``model_ids`` (non-strings are ignored: the change refuses them)."""
    ids = sorted({m for m in model_ids if isinstance(m, str)})
    if not ids:
        yield
        return
    stripes = sorted({hash(m) % len(_STRIPES) for m in ids})
    with ExitStack() as stack:
        for i in stripes:  # in order, so two changes never wait on each other
            stack.enter_context(_STRIPES[i])
        stack.enter_context(_shared_locks(c, sorted({_key(m) for m in ids})))
        yield


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


def get_model(c: ServerContext, p: Principal, model_id: str, role: str | None = None,
              allow_deleted: bool = False) -> tuple[Any, dict]:
    """The logged model, if ``p`` holds ``role`` (default: the route's) on its experiment."""
    run, desc = _find(c, model_id)
    c.guard.need(p, "experiment", run.experiment_id, role)
    if desc.get("deleted") and not allow_deleted:
        raise NotFound(f"Logged model with ID '{model_id}' not found.")
    return run, desc


def _changeable(c: ServerContext, p: Principal, r: Params) -> tuple[Any, dict]:
    """The model a change names: as on MLflow, a deleted model still takes changes (its
    status, tags, params, a second delete); only reads hide it."""
    return get_model(c, p, r.text("model_id", required=True), allow_deleted=True)


def artifact_location(run: Any, desc: dict) -> str:
    return f"mlflow-artifacts:/{run.experiment_id}/{run.id}/artifacts/{desc['path']}"


def source_run_id(run: Any, desc: dict) -> str:
    """The source run the client named (kept as given), else the run holding the files."""
    return desc.get("source_run_id") or run.id


def _metric_json(model_id: str, m: list) -> dict[str, Any]:
    key, value, ts, step, run_id, dataset_name, dataset_digest = m
    out: dict[str, Any] = {"key": key, "value": jfloat(value), "timestamp": ts, "step": step}
    if dataset_name:
        out["dataset_name"] = dataset_name
    if dataset_digest:
        out["dataset_digest"] = dataset_digest
    out.update(model_id=model_id, run_id=run_id)
    return out


def model_json(run: Any, desc: dict) -> dict[str, Any]:
    """MLflow's LoggedModel; like mlflow server (protobuf's JSON), empty lists and an unset
    status message are left out."""
    info: dict[str, Any] = {
        "model_id": desc["id"], "experiment_id": run.experiment_id, "name": desc["name"],
        "creation_timestamp_ms": desc["created"], "last_updated_timestamp_ms": desc["updated"],
        "artifact_uri": artifact_location(run, desc), "status": desc["status"],
        "model_type": desc.get("model_type", ""), "source_run_id": source_run_id(run, desc),
    }
    if desc.get("status_message"):
        info["status_message"] = desc["status_message"]
    if desc.get("tags"):
        info["tags"] = kv(desc["tags"])
    if desc.get("registrations"):
        info["registrations"] = desc["registrations"]
    data: dict[str, Any] = {}
    if desc.get("params"):
        data["params"] = kv(desc["params"])
    if desc.get("metrics"):
        data["metrics"] = [_metric_json(desc["id"], m) for m in desc["metrics"]]
    return {"info": info, "data": data}


def _drop_superseded(metrics: list[list]) -> bool:
    """Drop the oldest point that a later point of the same series (key, run, data set)
    follows; False when every point left is the latest of its series."""
    for i, m in enumerate(metrics):
        series = (m[0], m[4], m[5], m[6])
        if any((n[0], n[4], n[5], n[6]) == series for n in metrics[i + 1:]):
            del metrics[i]
            return True
    return False


def _encode(desc: dict) -> str:
    """The description as its tag holds it.  Metric points are what grows: past the tag's
    size, older points of a series go first, so each series keeps its latest."""
    text = json.dumps(desc, separators=(",", ":"))
    while len(text) > MAX_TAG_VALUE and _drop_superseded(desc.get("metrics") or []):
        text = json.dumps(desc, separators=(",", ":"))
    if len(text) > MAX_TAG_VALUE:
        raise invalid(f"Logged model {desc['id']}: its tags, params and metrics exceed the "
                      f"{MAX_TAG_VALUE} characters Cairn keeps for a logged model's description")
    return text


def save(c: ServerContext, p: Principal, run: Any, desc: dict, touch: bool = True) -> None:
    """Write the description; ``touch``: a change that moves its last-updated time (as on
    mlflow server: a status change or a delete, not tags, params or metrics)."""
    if touch:
        desc["updated"] = clock.now_ms()
    write(c, p, run_id=run.id, tags={MODEL_TAG + desc["id"]: _encode(desc),
                                     HAS_MODELS_TAG: "1"})


def _holder_run(c: ServerContext, p: Principal, exp: Experiment, name: str) -> Run:
    """A finished run of its own for a model logged outside any run (or naming a source run
    Cairn does not have): Cairn keeps a model's files with a run."""
    run_id = clock.new_run_id()
    now = clock.now_ms()
    write(c, p, run_id=run_id, status=RunStatus.FINISHED, end_time=now,
          create={"experiment_id": exp.id, "experiment_name": exp.name,
                  "experiment_created_at": exp.created_at,
                  "name": f"{name}-{random_name(run_id)}", "user": p.user, "start_time": now},
          tags={HOLDER_TAG: "true"})
    return c.store.get_run(run_id)


def _source_run(c: ServerContext, p: Principal, exp: Experiment, source: str | None,
                name: str) -> Run:
    """The run that holds a new model's files: its source run when that is a run of the
    model's experiment, else a run of its own (MLflow accepts any source_run_id)."""
    if source:
        try:
            run = c.store.get_run(source)
        except NotFound:
            run = None
        if run is not None and run.experiment_id == exp.id:
            return run
    return _holder_run(c, p, exp, name)


def _check_name(name: str | None) -> str | None:
    if name is None:
        return None
    if any(ch in name for ch in BAD_NAME_CHARS):
        raise invalid(f"Invalid model name ({name!r}) provided. Model name must be a non-empty "
                      f"string and cannot contain the following characters: {BAD_NAME_CHARS}")
    return check_text(name, "name")


def _duplicate(what: str, key: str) -> MlflowError:
    # mlflow server answers a key given twice (its table's unique key) with BAD_REQUEST.
    return MlflowError("BAD_REQUEST", 400, f"Duplicate {what} key {key!r} for the logged model "
                                           f"(a logged model's {what}s are set once)")


def _new_pairs(r: Params, name: str, what: str, old: dict[str, str]) -> dict[str, str]:
    """``{key, value}`` items of ``name`` that are new to ``old``; a key given twice, or one
    ``old`` already has, is refused."""
    out: dict[str, str] = {}
    for k, v in r.key_values(name):
        check_text(k, f"{what} key")
        check_text(v, f"{what} {k!r} value")
        if k in out or k in old:
            raise _duplicate(what, k)
        out[k] = v
    return out


def create(c: ServerContext, p: Principal, r: Params) -> dict:
    experiment_id = r.text("experiment_id", required=True)  # required, as on mlflow server
    model_id = clock.new_logged_model_id()
    name = _check_name(r.text("name") or None) or random_name(model_id[2:])
    model_type = check_text(r.text("model_type") or "", "model_type")
    source = r.text("source_run_id") or None
    if source is not None:
        check_text(source, "source_run_id")
    tags, params = _new_pairs(r, "tags", "tag", {}), _new_pairs(r, "params", "param", {})
    exp = get_experiment(c, experiment_id)
    c.guard.need(p, "experiment", exp.id)
    if exp.lifecycle != "active":
        raise invalid(f"The experiment {exp.id} must be in the 'active' state. Current state "
                      f"is {exp.lifecycle}.")
    run = _source_run(c, p, exp, source, name)
    taken = {json.loads(v)["path"] for k, v in run.tags.items() if k.startswith(MODEL_TAG)}
    taken |= {e.path.split("/", 1)[0] for e in c.store.list_artifacts(run.id)}
    path = name if name not in taken else f"{name}-{model_id[2:10]}"
    now = clock.now_ms()
    desc = {"id": model_id, "name": name, "path": path, "created": now, "updated": now,
            "status": "LOGGED_MODEL_PENDING", "model_type": model_type,
            "tags": tags, "params": params}
    if source and source != run.id:
        desc["source_run_id"] = source
    save(c, p, run, desc, touch=False)
    c.audit(p, "mlflow.logged_model.create", f"runs/{run.id}", None,
            {"model_id": model_id, "name": name, "path": path})
    return {"model": model_json(c.store.get_run(run.id), desc)}


def get(c: ServerContext, p: Principal, r: Params) -> dict:
    # allow_deleted: what `mlflow gc` asks, to find the files of models deleted before.
    run, desc = get_model(c, p, r.text("model_id", required=True),
                          allow_deleted=r.boolean("allow_deleted"))
    return {"model": model_json(run, desc)}


def _status(r: Params) -> str:
    """``status``: a LoggedModelStatus name or number, as mlflow server takes it."""
    raw = r.data.get("status")
    if raw is None:
        raise missing("status")
    if type(raw) is int and raw in STATUS_NUMBERS:
        return STATUS_NUMBERS[raw]
    if isinstance(raw, str) and raw in STATUSES:
        return raw
    raise invalid(f"Invalid value {raw!r} for parameter 'status': one of {', '.join(STATUSES)}")


def finalize(c: ServerContext, p: Principal, r: Params) -> dict:
    with changing(c, [r.data.get("model_id")]):
        run, desc = _changeable(c, p, r)  # the caller's role first, as on MLflow with auth on
        status = _status(r)
        desc["status"] = status
        save(c, p, run, desc)
        return {"model": model_json(run, desc)}


def set_tags(c: ServerContext, p: Principal, r: Params) -> dict:
    with changing(c, [r.data.get("model_id")]):
        tags = {}
        for k, v in r.key_values("tags"):  # a key given twice: the last value, as on MLflow
            tags[check_text(k, "tag key")] = check_text(v, f"tag {k!r} value")
        run, desc = _changeable(c, p, r)
        desc["tags"] = {**desc.get("tags", {}), **tags}
        save(c, p, run, desc, touch=False)
        return {}


def delete_tag(c: ServerContext, p: Principal, r: Params) -> dict:
    with changing(c, [r.data.get("model_id")]):
        run, desc = _changeable(c, p, r)
        key = r.text("tag_key", required=True)
        if key not in desc.get("tags", {}):
            raise NotFound(f"No tag with key {key!r} found for model with ID {desc['id']!r}.")
        desc["tags"].pop(key)
        save(c, p, run, desc, touch=False)
        return {}


def log_params(c: ServerContext, p: Principal, r: Params) -> dict:
    with changing(c, [r.data.get("model_id")]):
        run, desc = _changeable(c, p, r)
        desc["params"] = {**desc.get("params", {}),
                          **_new_pairs(r, "params", "param", desc.get("params", {}))}
        save(c, p, run, desc, touch=False)
        return {}


def delete(c: ServerContext, p: Principal, r: Params) -> dict:
    with changing(c, [r.data.get("model_id")]):
        run, desc = _changeable(c, p, r)
        desc["deleted"] = True
        save(c, p, run, desc)
        return {}


# -- metrics logged with a model_id ----------------------------------------------------

def model_points(c: ServerContext, p: Principal, run_id: str, metrics: list[Any],
                 points: list[tuple[str, int, int, float]]) -> list[tuple[Any, dict]]:
    """(run, description with the new points) of each logged model that ``metrics``
    (request items, ``points`` parsed from them) name in ``model_id``, for
    :func:`record_points`.  All is checked before anything is written: mlflow server
    refuses a metric naming an unknown model (its foreign key) with BAD_REQUEST, and a
    description that cannot hold the points must not leave the run with them alone."""
    grouped: dict[str, list[list]] = {}
    for m, (key, step, ts, value) in zip(metrics, points):
        item = Params(m)
        model_id = item.text("model_id")
        if not model_id:
            continue
        dataset = [item.text(f) or None for f in ("dataset_name", "dataset_digest")]
        for f, v in zip(("dataset_name", "dataset_digest"), dataset):
            if v is not None:
                check_text(v, f)
        grouped.setdefault(model_id, []).append([key, value, ts, step, run_id, *dataset])
    out = []
    for model_id, new in grouped.items():
        try:
            run, desc = get_model(c, p, model_id, allow_deleted=True)
        except NotFound:
            raise MlflowError("BAD_REQUEST", 400, f"Logged model with ID '{model_id}' not "
                                                  "found: a metric's model_id must name a "
                                                  "logged model") from None
        _add_points(desc, new)
        _encode(desc)
        out.append((run, desc))
    return out


def _add_points(desc: dict, new: list[list]) -> None:
    """A point already there (same key, timestamp, step and run: MLflow's key) is not
    added twice."""
    metrics = desc.setdefault("metrics", [])
    seen = {(m[0], m[2], m[3], m[4]) for m in metrics}
    for m in new:
        if (m[0], m[2], m[3], m[4]) not in seen:
            seen.add((m[0], m[2], m[3], m[4]))
            metrics.append(m)


def record_points(c: ServerContext, p: Principal, targets: list[tuple[Any, dict]]) -> None:
    """Save what :func:`model_points` prepared, once the run has its points."""
    for run, desc in targets:
        save(c, p, run, desc, touch=False)


# -- search ----------------------------------------------------------------------------

_ATTRIBUTES = {"name": "name", "model_id": "model_id", "model_type": "model_type",
               "status": "status", "source_run_id": "source_run_id",
               "experiment_id": "experiment_id",
               "creation_timestamp": "creation_timestamp", "creation_time": "creation_timestamp",
               "creation_timestamp_ms": "creation_timestamp",
               "last_updated_timestamp": "last_updated_timestamp",
               "last_updated_time": "last_updated_timestamp",
               "last_updated_timestamp_ms": "last_updated_timestamp"}


def _value(item: tuple[Any, dict], key: str) -> Any:
    run, d = item
    return {"name": d["name"], "model_id": d["id"], "model_type": d.get("model_type", ""),
            "status": d["status"], "source_run_id": source_run_id(run, d),
            "experiment_id": run.experiment_id, "creation_timestamp": d["created"],
            "last_updated_timestamp": d["updated"]}[key]


def _dataset(d: Any) -> tuple[str, str | None]:
    """(name, digest or None) of a ``datasets`` item or a metric order_by item."""
    name = d.get("dataset_name") if isinstance(d, dict) else None
    if not isinstance(name, str) or not name:
        raise invalid("`dataset_name` in the `datasets` clause must be specified.")
    digest = d.get("dataset_digest")
    return check_text(name, "dataset_name"), digest if isinstance(digest, str) and digest else None


def _datasets(r: Params) -> list[tuple[str, str | None]]:
    return [_dataset(d) for d in r.items("datasets")]


def _on(m: list, datasets: list[tuple[str, str | None]]) -> bool:
    """Whether point ``m`` was logged on one of ``datasets`` (any point if none is given)."""
    return not datasets or any(m[5] == name and (digest is None or m[6] == digest)
                               for name, digest in datasets)


def _matcher(clauses: list[_filters.Clause],
             datasets: list[tuple[str, str | None]]) -> Any:
    """MLflow's test: a metric clause holds when any point of that metric (on the given data
    sets) does; data sets without a metric clause ask for any metric on them."""
    def holds(item: tuple[Any, dict], cl: _filters.Clause) -> bool:
        _, d = item
        if cl.entity == "metric":
            return any(m[0] == cl.key and _on(m, datasets)
                       and _filters.compare(m[1], cl.op, cl.value)
                       for m in d.get("metrics") or [])
        if cl.entity == "tag":
            actual = d.get("tags", {}).get(cl.key)
        elif cl.entity == "param":
            actual = d.get("params", {}).get(cl.key)
        else:
            actual = _value(item, cl.key)
        return _filters.compare(actual, cl.op, cl.value)

    need_dataset = bool(datasets) and all(cl.entity != "metric" for cl in clauses)

    def test(item: tuple[Any, dict]) -> bool:
        if need_dataset and not any(_on(m, datasets) for m in item[1].get("metrics") or []):
            return False
        return all(holds(item, cl) for cl in clauses)

    return test


def _order(r: Params) -> tuple[list[tuple[str, bool]], dict[str, tuple]]:
    """MLflow's order_by items as sort keys; a ``metrics.<key>`` item sorts on the model's
    latest point of it (then the tie-breaks: newest first, then model id)."""
    order: list[tuple[str, bool]] = []
    by_metric: dict[str, tuple] = {}
    for o in r.items("order_by"):
        if not isinstance(o, dict):
            raise invalid(f"Invalid value {o!r} for parameter 'order_by'")
        field = o.get("field_name")
        field = field if isinstance(field, str) else ""
        ascending = o.get("ascending", True) is not False
        if "." in field:
            entity, key = field.split(".", 1)
            if entity != "metrics":
                raise invalid(f"Invalid order by field name: {field}. Only metrics are "
                              "supported.")
            name = f"metrics#{len(by_metric)}"  # a sort key no attribute is named
            by_metric[name] = (key, [_dataset(o)] if o.get("dataset_name") else [])
            order.append((name, ascending))
        elif field in _ATTRIBUTES:
            order.append((_ATTRIBUTES[field], ascending))
        else:
            raise invalid(f"Invalid order by field name: {field}")
    names = {n for n, _ in order}
    if "creation_timestamp" not in names:
        order.append(("creation_timestamp", False))
    if "model_id" not in names:
        order.append(("model_id", True))
    return order, by_metric


def _latest(d: dict, key: str, datasets: list[tuple[str, str | None]]) -> float | None:
    points = [m for m in d.get("metrics") or [] if m[0] == key and _on(m, datasets)]
    if not points:
        return None
    return min(points, key=lambda m: (-m[2], -m[3], m[4]))[1]


def search_models(c: ServerContext, p: Principal, r: Params) -> dict:
    ids = r.texts("experiment_ids")
    if not ids:
        raise missing("experiment_ids")
    if c.guard.enabled and not c.guard.sees_all(p, "experiment"):
        ids = [i for i in ids if i in set(c.guard.visible(p, "experiment", ids))]
    datasets = _datasets(r)
    test = _matcher(_filters.parse(r.text("filter"), _ATTRIBUTES), datasets)
    order, by_metric = _order(r)
    limit = r.integer("max_results", 0) or DEFAULT_MAX_RESULTS
    if limit < 1:
        raise invalid(f"Invalid value {limit} for parameter 'max_results'")
    offset = search.decode_page_token(r.text("page_token"))
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

    def key(item: tuple[Any, dict], name: str) -> Any:
        if name in by_metric:
            return _latest(item[1], *by_metric[name])
        return _value(item, name)

    items = _filters.sort(items, order, key)
    out: dict[str, Any] = {}
    page = items[offset:offset + limit]
    if page:  # mlflow server leaves an empty list out
        out["models"] = [model_json(run, d) for run, d in page]
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
    run = get_run(c, p, r.run_id())
    check_active(run.id, run.lifecycle)
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
