"""MLflow tracking endpoints: experiments, runs, logging, search, metric history.

Every run the mlflow client creates is a Cairn run written through the same record
batches as Cairn's own clients (so the audit log, search and the UI see it), and
every Cairn run reads back as an MLflow run, a run's rename and delete/restore
included (the reserved tags ``cairn.run.name`` / ``cairn.run.lifecycle``, as Cairn's own
clients write them).  An experiment's name, tags and lifecycle are updated in the index
and, on a local store, in its experiment file (what ``cairn reindex`` rebuilds from).
"""

from __future__ import annotations

import dataclasses
import json
import os
import posixpath
import re
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np

from ... import clock, search
from ...entities import RUN_LIFECYCLE_TAG, RUN_NAME_TAG as CAIRN_NAME_TAG
from ...entities import Experiment, RecordBatch, Run, RunStatus
from ...errors import AlreadyExists, InvalidArgument, NotFound
from ...search.parser import ATTRIBUTES, TAGS, Clause, OrderKey
from ...store.base import ExperimentUpdates, LifecycleSearch, RunStateLookup
from ...store.validation import MAX_KEY, MAX_TAG_VALUE, check_experiment_name
from ...store.wire import INT64_MAX, INT64_MIN, from_results
from ..auth import Principal
from ..context import ServerContext
from ..routes._common import apply_batches
from . import _filters
from ._common import (
    ARTIFACT_URI_TAG, HIDDEN_TAG_PREFIX, LOCATION_TAG, PARENT_TAG, RUN_NAME_TAG, Params,
    append_to_uri, bad_value, experiment_json, experiment_location, invalid, metric_json, missing,
    mlflow_json, not_positive, run_info_json, run_json,
)

DEFAULT_EXPERIMENT_ID = "0"  # what the client uses when no experiment was set
DEFAULT_EXPERIMENT_NAME = "Default"
MAX_METRICS, MAX_PARAMS, MAX_TAGS, MAX_ENTITIES = 1000, 100, 100, 1000
MAX_SEARCH_RESULTS = 50_000
MAX_BULK_RUNS, MAX_BULK_RESULTS = 100, 2500
LOG_MODEL_TAG = "mlflow.log-model.history"
NEVER_STALE = INT64_MAX  # the heartbeat of runs the mlflow client creates
_VIEW_TYPES = {"ACTIVE_ONLY": "active", "DELETED_ONLY": "deleted", "ALL": None}
_STATUSES = {"RUNNING": RunStatus.RUNNING, "SCHEDULED": RunStatus.RUNNING,
             "FINISHED": RunStatus.FINISHED, "FAILED": RunStatus.FAILED,
             "KILLED": RunStatus.KILLED}
# MLflow's system tags that Cairn keeps as run attributes (search and sort use those).
_TAG_ATTRIBUTES = {RUN_NAME_TAG: "run_name", PARENT_TAG: "parent_id", "mlflow.user": "user"}


# -- plumbing ------------------------------------------------------------------------

def write(c: ServerContext, p: Principal, known: dict[str, str] | None = None,
          **fields: Any) -> None:
    """Apply one record batch for a run, as Cairn's own run routes do.  ``known``: the
    run's experiment, when the caller read it already (the batch's role check needs it)."""
    with c.writers.next(fields["run_id"], clock.new_server_writer_id) as (writer_id, seq):
        batch = RecordBatch(writer_id=writer_id, seq=seq, time=clock.now_ms(), **fields)
        err = from_results(apply_batches(c, p, [batch], mlflow=True, known=known))
    if err is not None:
        raise err


def write_run(c: ServerContext, p: Principal, run_id: str, **fields: Any) -> None:
    """:func:`write` to an existing, active run, with MLflow's answers for an unknown
    and a deleted one.  One query of the run's state comes first; the role check uses it."""
    exp = active_run(c, p, run_id)
    try:
        write(c, p, known={run_id: exp}, run_id=run_id, **fields)
    except NotFound:
        raise NotFound(f"Run with id={run_id} not found") from None
    metrics = fields.get("metrics") or {}
    c.audit(p, "run.log", f"runs/{run_id}", None,
            {"params": dict(fields.get("params") or {}), "tags": dict(fields.get("tags") or {}),
             "points": sum(len(s[0]) for s in metrics.values()), "via": "mlflow"})


def _sql_store(c: ServerContext, capability: type) -> Any:
    """The store, when it has ``capability`` (those this module uses need an SQL index)."""
    if not isinstance(c.store, capability):
        raise InvalidArgument(f"this operation needs a database-backed store (a store directory "
                              f"or a database URL), not {c.store.uri}")
    return c.store


def get_run(c: ServerContext, p: Principal, run_id: str, role: str | None = None) -> Run:
    """The run, if ``p`` holds ``role`` (default: the route's, from the permissions table)
    on its experiment."""
    try:
        run = c.store.get_run(run_id)
    except NotFound:
        raise NotFound(f"Run with id={run_id} not found") from None
    c.guard.need(p, "experiment", run.experiment_id, role)
    return run


def check_active(run_id: str, lifecycle: str) -> None:
    """MLflow refuses every change to a deleted run but its restore (and delete)."""
    if lifecycle != "active":
        raise invalid(f"The run {run_id} must be in the 'active' state. Current state is "
                      f"{lifecycle}.")


def active_run(c: ServerContext, p: Principal, run_id: str, role: str | None = None) -> str:
    """The experiment of a run that ``p`` may change (``role``: as in :func:`get_run`):
    404 for none, 403 without the role, MLflow's 400 for a deleted one.  One query of the
    run's state where the store has it, instead of reading the whole run."""
    state = (c.store.run_states([run_id]).get(run_id) if isinstance(c.store, RunStateLookup)
             else None)
    if state is None:  # a local store's run that only its journals hold yet, or none
        run = get_run(c, p, run_id, role)
        state = (run.experiment_id, run.lifecycle)
    else:
        c.guard.need(p, "experiment", state[0], role)
    check_active(run_id, state[1])
    return state[0]


def get_experiment(c: ServerContext, experiment_id: str) -> Experiment:
    try:
        return c.store.get_experiment(experiment_id)
    except NotFound:
        if experiment_id != DEFAULT_EXPERIMENT_ID:
            if not experiment_id.isdigit():  # MLflow's ids are integers: it says so first
                raise invalid(f"Invalid experiment ID '{experiment_id}'. Experiment ID must be "
                              "a valid integer.") from None
            raise NotFound(f"No Experiment with id={experiment_id} exists") from None
    # MLflow's default experiment: made on first use, with MLflow's id.
    try:
        return c.store.create_experiment(DEFAULT_EXPERIMENT_NAME,
                                         _location_tags(c, DEFAULT_EXPERIMENT_ID, ""),
                                         experiment_id=DEFAULT_EXPERIMENT_ID)
    except AlreadyExists:
        try:
            return c.store.get_experiment(DEFAULT_EXPERIMENT_ID)
        except NotFound:
            raise NotFound(f"No Experiment with id={experiment_id} exists (an experiment named "
                           f"{DEFAULT_EXPERIMENT_NAME!r} with another id exists)") from None


# -- experiments ---------------------------------------------------------------------

def _update_experiment(c: ServerContext, p: Principal, exp: Experiment, action: str,
                       **changes: Any) -> Experiment:
    """Change an experiment's name, lifecycle or tags in the index (and a local store's
    experiment file, which ``cairn reindex`` rebuilds experiments from)."""
    new = dataclasses.replace(exp, **changes)
    new = _sql_store(c, ExperimentUpdates).update_experiment(exp, new.name, new.lifecycle,
                                                             new.tags)
    c.audit(p, action, f"experiments/{exp.id}",
            {"name": exp.name, "lifecycle": exp.lifecycle, "tags": dict(exp.tags)},
            {"name": new.name, "lifecycle": new.lifecycle, "tags": dict(new.tags)})
    return new


MAX_LOCATION = 2048  # MLflow's MLFLOW_ARTIFACT_LOCATION_MAX_LENGTH


def check_location(location: str) -> str:
    """An ``artifact_location`` MLflow's server accepts, a relative path made absolute against
    the server's working directory as it does; refused with its words otherwise."""
    parsed = urlparse(location)
    if parsed.fragment or parsed.params:
        raise invalid("'artifact_location' URL can't include fragments or params.")
    if ".." in _decoded(parsed.query):
        raise invalid("Invalid query string")
    if location.startswith("runs:"):
        raise invalid(f"Artifact location cannot be a runs:/ URI. Given: '{location}'")
    if not parsed.scheme and not os.path.isabs(location):
        location = os.path.abspath(location)
    if len(location) > MAX_LOCATION:
        raise invalid("Invalid artifact path length. The length of the artifact path cannot be "
                      f"greater than {MAX_LOCATION} characters. To configure this limit, please "
                      "set the MLFLOW_ARTIFACT_LOCATION_MAX_LENGTH environment variable.")
    return location


def _decoded(text: str) -> str:
    for _ in range(10):  # %2E%2E is a ".." too, however often it was escaped
        again = unquote(text)
        if again == text:
            break
        text = again
    return text


def _location_tags(c: ServerContext, experiment_id: str, location: str) -> dict[str, str]:
    """The hidden tag holding a new experiment's artifact location: the one given, else the
    server's ``--default-artifact-root`` plus its id; none for Cairn's proxy (the default)."""
    root = c.settings.default_artifact_root
    if not location and root:
        location = append_to_uri(root, experiment_id)
    if not location or location == f"mlflow-artifacts:/{experiment_id}":
        return {}
    return {LOCATION_TAG: location}


def _check_experiment_tags(tags: dict[str, str]) -> None:
    for key in tags:
        _check_tag_key(key)


def create_experiment(c: ServerContext, p: Principal, r: Params) -> dict:
    name = r.text("name", required=True)
    location = r.text("artifact_location") or ""
    tags = dict(r.key_values("tags"))
    check_experiment_name(name)
    _check_experiment_tags(tags)
    if location:
        location = check_location(location)
    experiment_id = clock.new_experiment_id()
    try:
        exp = c.store.create_experiment(name, {**tags, **_location_tags(c, experiment_id,
                                                                         location)},
                                        experiment_id=experiment_id)
    except AlreadyExists:
        raise AlreadyExists(f"Experiment(name={name}) already exists.") from None
    if c.settings.auth and not p.is_admin:
        c.auth_db.grant(p.user, "experiment", exp.id, "admin", granted_by=p.user)
        c.guard.forget()
    c.audit(p, "experiment.create", f"experiments/{exp.id}", None,
            {"name": exp.name, "tags": tags, "artifact_location": experiment_location(exp),
             "via": "mlflow"})
    return {"experiment_id": exp.id}


def _readable_experiment(c: ServerContext, p: Principal, experiment_id: str) -> Experiment:
    exp = get_experiment(c, experiment_id)
    c.guard.need(p, "experiment", exp.id)
    return exp


def experiment_get(c: ServerContext, p: Principal, r: Params) -> dict:
    exp = _readable_experiment(c, p, r.text("experiment_id", required=True))
    return {"experiment": experiment_json(exp)}


def experiment_by_name(c: ServerContext, p: Principal, r: Params) -> dict:
    name = r.text("experiment_name", required=True)
    exp = c.store.get_experiment_by_name(name)
    if exp is None and name == DEFAULT_EXPERIMENT_NAME:
        exp = get_experiment(c, DEFAULT_EXPERIMENT_ID)
    if exp is None:
        raise NotFound(f"Could not find experiment with name '{name}'")
    c.guard.need(p, "experiment", exp.id)
    return {"experiment": experiment_json(exp)}


_EXP_ATTRIBUTES = {"name": "name", "creation_time": "creation_time",
                   "last_update_time": "last_update_time", "experiment_id": "experiment_id"}


def _experiment_value(e: Experiment, key: str) -> Any:
    return {"name": e.name, "experiment_id": e.id, "creation_time": e.created_at,
            "last_update_time": e.created_at}[key]


def search_experiments(c: ServerContext, p: Principal, r: Params) -> dict:
    view = _VIEW_TYPES.get(r.text("view_type") or "ACTIVE_ONLY", ...)
    if view is ...:
        raise invalid(f"Invalid value {r.text('view_type')!r} for parameter 'view_type'")
    max_results = r.integer("max_results", 1000)
    if max_results < 1:
        raise not_positive("max_results", max_results)
    if max_results > MAX_SEARCH_RESULTS:
        raise invalid(f"Invalid value {max_results} for parameter 'max_results' supplied. It "
                      f"must be at most {MAX_SEARCH_RESULTS}")
    clauses = _filters.parse(r.text("filter"), _EXP_ATTRIBUTES)

    def value(e: Experiment, cl: _filters.Clause) -> Any:
        if cl.entity == "tag":
            return e.tags.get(cl.key)
        if cl.entity != "attribute":
            raise invalid(f"Invalid entity type '{cl.entity}' in an experiment filter")
        return _experiment_value(e, cl.key)

    test = _filters.matcher(clauses, value)
    exps = c.store.list_experiments()
    # MLflow's default experiment exists from the start: made here on first use (unless an
    # experiment holds its name under another id: that one is listed as it is).
    if all(e.id != DEFAULT_EXPERIMENT_ID and e.name != DEFAULT_EXPERIMENT_NAME for e in exps):
        try:
            exps = [*exps, get_experiment(c, DEFAULT_EXPERIMENT_ID)]
        except NotFound:
            pass  # one named "Default" was made meanwhile; the next search lists it
    exps = [e for e in exps
            if (view is None or e.lifecycle == view) and test(e)]
    if not c.guard.sees_all(p, "experiment"):
        ok = set(c.guard.visible(p, "experiment", [e.id for e in exps]))
        exps = [e for e in exps if e.id in ok]
    order = _filters.parse_order(r.texts("order_by"), _EXP_ATTRIBUTES)
    order += [("creation_time", False), ("experiment_id", True)]
    exps = _filters.sort(exps, order, _experiment_value)
    offset = search.decode_page_token(r.text("page_token"))
    page = exps[offset:offset + max_results]
    out: dict[str, Any] = {"experiments": [experiment_json(e) for e in page]}
    if offset + max_results < len(exps):
        out["next_page_token"] = search.encode_page_token(offset + max_results)
    return out


def _editable_experiment(c: ServerContext, p: Principal, r: Params) -> Experiment:
    exp = get_experiment(c, r.text("experiment_id", required=True))
    c.guard.need(p, "experiment", exp.id)  # editor for tags; admin to rename or delete
    return exp


def update_experiment(c: ServerContext, p: Principal, r: Params) -> dict:
    exp = _editable_experiment(c, p, r)
    new_name = r.text("new_name", required=True)
    check_experiment_name(new_name)
    _update_experiment(c, p, exp, "experiment.rename", name=new_name)
    return {}


def _in_state(exp: Experiment, lifecycle: str) -> Experiment:
    """``exp`` if it is ``lifecycle``: mlflow server looks an experiment up among the active
    ones to delete it and among the deleted ones to restore it, and answers as for none."""
    if exp.lifecycle != lifecycle:
        raise NotFound(f"No Experiment with id={exp.id} exists")
    return exp


def _check_active(exp: Experiment) -> None:
    """MLflow's refusal to change a deleted experiment's tags; here it also keeps the time
    it went to the trash (its tag cairn.deleted_at, what purging by age reads) as it was."""
    if exp.lifecycle != "active":
        raise invalid(f"The experiment {exp.id} must be in the 'active' state. Current state "
                      f"is {exp.lifecycle}.")


def delete_experiment(c: ServerContext, p: Principal, r: Params) -> dict:
    exp = _in_state(_editable_experiment(c, p, r), "active")
    _update_experiment(c, p, exp, "experiment.delete", lifecycle="deleted",
                       tags=_trash_tags(exp, "deleted", p))
    return {}


def restore_experiment(c: ServerContext, p: Principal, r: Params) -> dict:
    exp = _in_state(_editable_experiment(c, p, r), "deleted")
    _update_experiment(c, p, exp, "experiment.restore", lifecycle="active",
                       tags=_trash_tags(exp, "active", p))
    return {}


def _trash_tags(exp: Experiment, lifecycle: str, p: Principal) -> dict[str, str]:
    """The experiment's tags with when and by whom it went to the trash (what purging by
    age reads), as Cairn's own delete records them."""
    from ...lifecycle.trash import deleted_tags

    if exp.lifecycle == lifecycle:
        return dict(exp.tags)
    return deleted_tags(dict(exp.tags), lifecycle, p.user, clock.now_ms())


def set_experiment_tag(c: ServerContext, p: Principal, r: Params) -> dict:
    exp = _editable_experiment(c, p, r)
    key = r.text("key", required=True)
    value = r.text("value", default="", limit=5000)
    _check_tag_key(key)
    _check_active(exp)
    _update_experiment(c, p, exp, "experiment.set_tag", tags={**exp.tags, key: value})
    return {}


def delete_experiment_tag(c: ServerContext, p: Principal, r: Params) -> dict:
    exp = _editable_experiment(c, p, r)
    _check_active(exp)
    key = r.text("key", required=True)
    if key not in exp.tags or key.startswith(HIDDEN_TAG_PREFIX):
        raise NotFound(f"No tag with name: {key} in experiment with id {exp.id}")
    _update_experiment(c, p, exp, "experiment.delete_tag",
                       tags={k: v for k, v in exp.tags.items() if k != key})
    return {}


# -- runs ----------------------------------------------------------------------------

def _check_tag_key(key: str) -> None:
    if key.startswith(HIDDEN_TAG_PREFIX):
        raise invalid(f"Tag key '{key}' is reserved: Cairn keeps MLflow-only data under "
                      f"'{HIDDEN_TAG_PREFIX}'")


def create_run(c: ServerContext, p: Principal, r: Params) -> dict:
    from ...names import random_name

    exp = get_experiment(c, r.text("experiment_id") or DEFAULT_EXPERIMENT_ID)
    c.guard.need(p, "experiment", exp.id)
    if exp.lifecycle != "active":
        raise invalid(f"The experiment {exp.id} must be in the 'active' state. Current state "
                      f"is {exp.lifecycle}.")
    tags = dict(r.key_values("tags"))
    for key in tags:
        _check_tag_key(key)
    run_id = clock.new_run_id()
    name = r.text("run_name") or tags.get(RUN_NAME_TAG) or random_name(run_id)
    parent = tags.pop(PARENT_TAG, None) or None
    if parent is not None:
        try:
            get_run(c, p, parent, "viewer")
        except NotFound:
            pass  # as on MLflow, a parent that does not exist (yet, or any more) is kept
    tags.pop(RUN_NAME_TAG, None)  # the run's name is an attribute; the tag is derived from it
    if LOCATION_TAG in exp.tags:  # MLflow's client writes this run's files there itself
        tags[ARTIFACT_URI_TAG] = append_to_uri(exp.tags[LOCATION_TAG], run_id, "artifacts")
    user = r.text("user_id") or tags.get("mlflow.user") or p.user
    start = r.integer("start_time") or clock.now_ms()
    create = {"experiment_id": exp.id, "experiment_name": exp.name,
              "experiment_created_at": exp.created_at, "name": name, "parent_id": parent,
              "user": user, "start_time": start,
              # MLflow's client sends no heartbeats: its runs stay RUNNING until it ends
              # them, as on MLflow, instead of reading as KILLED after
              # CAIRN_HEARTBEAT_TIMEOUT without a write (each write keeps the later one).
              "heartbeat": NEVER_STALE}
    write(c, p, run_id=run_id, create=create, tags=tags)
    c.audit(p, "run.create", f"runs/{run_id}", None,
            {"experiment_id": exp.id, "name": name, "tags": tags, "via": "mlflow"})
    # The new run is exactly what the batch says: answer without reading it back.
    return {"run": run_json(Run(id=run_id, name=name, experiment_id=exp.id, experiment=exp.name,
                                status=RunStatus.RUNNING, start_time=start, end_time=None,
                                user=user, parent_id=parent, tags=tags,
                                heartbeat=NEVER_STALE))}


def get_run_route(c: ServerContext, p: Principal, r: Params) -> dict:
    return {"run": run_json(get_run(c, p, r.run_id()))}


def rename_run(c: ServerContext, p: Principal, run: Run, name: str) -> None:
    """A new name, journalled as Cairn's clients rename (the reserved tag
    ``cairn.run.name``), so it survives ``cairn reindex`` and reads the same everywhere;
    MLflow's tag of an older rename goes."""
    if len(name) > 500:
        raise invalid(f"Run name is {len(name)} characters; the limit is 500")
    if not name.strip():
        raise invalid("Run name must not be empty")
    old = (RUN_NAME_TAG,) if RUN_NAME_TAG in run.tags else ()
    write(c, p, run_id=run.id, tags={CAIRN_NAME_TAG: name}, deleted_tags=old)
    c.audit(p, "run.rename", f"runs/{run.id}", run.name, name)


def update_run(c: ServerContext, p: Principal, r: Params) -> dict:
    run = get_run(c, p, r.run_id())
    check_active(run.id, run.lifecycle)
    name = r.text("run_name")
    reread = False
    if name and name != run.name:
        rename_run(c, p, run, name)
        reread = True
    status_text = r.text("status")
    if status_text:
        status = _STATUSES.get(status_text)
        if status is None:
            raise invalid(f"Invalid value {status_text!r} for parameter 'status'")
        end = r.integer("end_time") if status.terminal else None
        if status is run.status and run.end_time is not None:
            pass  # the status it has (what the client sends with a new name): no change
        elif status.terminal or run.status is not RunStatus.RUNNING:
            end_time = end or clock.now_ms()
            write(c, p, run_id=run.id, status=status, end_time=end_time)
            c.audit(p, "run.end", f"runs/{run.id}", {"status": run.status.value},
                    {"status": status.value, "via": "mlflow"})
            if status.terminal:  # what the index now holds: that status, that end
                run = dataclasses.replace(run, status=status, end_time=end_time)
            else:  # a presumed-dead run revived: its heartbeat decides what it reads as
                reread = True
    return {"run_info": run_info_json(c.store.get_run(run.id) if reread else run)}


def _set_lifecycle(c: ServerContext, p: Principal, r: Params, lifecycle: str) -> dict:
    run = get_run(c, p, r.run_id())
    # Journalled (the reserved tag), as Cairn's clients delete: it survives `cairn reindex`.
    write(c, p, run_id=run.id, tags={RUN_LIFECYCLE_TAG: lifecycle})
    c.audit(p, "run.delete" if lifecycle == "deleted" else "run.restore", f"runs/{run.id}",
            {"lifecycle": run.lifecycle}, {"lifecycle": lifecycle})
    return {}


def delete_run(c: ServerContext, p: Principal, r: Params) -> dict:
    return _set_lifecycle(c, p, r, "deleted")


def restore_run(c: ServerContext, p: Principal, r: Params) -> dict:
    return _set_lifecycle(c, p, r, "active")


def set_tag(c: ServerContext, p: Principal, r: Params) -> dict:
    run = get_run(c, p, r.run_id())
    check_active(run.id, run.lifecycle)
    key = _key(r, "'key'")
    value = r.text("value", default="")
    _check_tag_key(key)
    if key == RUN_NAME_TAG:
        if value != run.name:
            rename_run(c, p, run, value)
        return {}
    write(c, p, run_id=run.id, tags={key: value})
    c.audit(p, "run.set_tag", f"runs/{run.id}/tags/{key}", run.tags.get(key), value)
    return {}


def delete_tag(c: ServerContext, p: Principal, r: Params) -> dict:
    run = get_run(c, p, r.run_id())
    key = r.text("key", required=True)
    check_active(run.id, run.lifecycle)  # MLflow's answer, checked before the tag
    if key not in run.tags or key.startswith(HIDDEN_TAG_PREFIX):
        raise NotFound(f"No tag with name: {key} in run with id {run.id}")
    write(c, p, run_id=run.id, deleted_tags=(key,))
    c.audit(p, "run.delete_tag", f"runs/{run.id}/tags/{key}", run.tags.get(key), None)
    return {}


_MLFLOW_NAME = re.compile(r"^[/\w.\- :]*$")  # the characters MLflow allows in a key


def _key(r: Params, what: str) -> str:
    """A request's ``key``, with MLflow's words for one over its length limit and for one
    that leaves its run's directory (which Cairn refuses too)."""
    key = r.text("key", required=True) or ""
    if len(key) > MAX_KEY:
        raise invalid(f"{what} exceeds the maximum length of {MAX_KEY} characters")
    if (key.startswith("/") or ".." in key.split("/")) and _MLFLOW_NAME.match(key):
        raise invalid(f"Invalid value {mlflow_json(key)} for parameter 'key' supplied: Names may "
                      "be treated as files in certain cases, and must not resolve to other names "
                      f"when treated as such. This name would resolve to "
                      f"{posixpath.normpath(key)!r}")
    return key


def log_param(c: ServerContext, p: Principal, r: Params) -> dict:
    key = _key(r, "'Param key'")
    value = r.text("value", default="")
    write_run(c, p, r.run_id(), params={key: value})
    return {}


def _metric_point(m: Any, default_ts: int) -> tuple[str, int, int, float]:
    if type(m) is dict:  # what the client sends, checked without the general parser
        key, value, ts, step = m.get("key"), m.get("value"), m.get("timestamp"), m.get("step", 0)
        if (type(key) is str and key and type(value) is float and type(ts) is int
                and type(step) is int and INT64_MIN <= ts <= INT64_MAX
                and INT64_MIN <= step <= INT64_MAX):
            return key, step, ts, value
    if not isinstance(m, dict):
        raise invalid(f"Invalid value {m!r} for parameter 'metrics': each metric is an object")
    item = Params(m)
    key = item.text("key", required=True)
    value = item.number("value", required=True)
    ts = item.integer("timestamp")
    return key, item.integer("step", 0), default_ts if ts is None else ts, value


def _series(points: list[tuple[str, int, int, float]]) -> dict[str, tuple[list, list, list]]:
    series: dict[str, tuple[list, list, list]] = {}
    for key, step, ts, value in points:
        s = series.setdefault(key, ([], [], []))
        s[0].append(step)
        s[1].append(ts)
        s[2].append(value)
    return series


def log_metric(c: ServerContext, p: Principal, r: Params) -> dict:
    point = _metric_point({k: r.data.get(k) for k in ("key", "value", "timestamp", "step")},
                          clock.now_ms())
    run_id = r.run_id()
    models = []
    if not r.has("model_id"):
        write_run(c, p, run_id, metrics=_series([point]))
        return {}
    # The point is also that logged model's metric, as on MLflow.
    from .logged_models import changing, model_points, record_points

    with changing(c, [r.data.get("model_id")]):
        models = model_points(c, p, run_id, [r.data], [point])
        write_run(c, p, run_id, metrics=_series([point]))
        record_points(c, p, models)
    return {}


def log_batch(c: ServerContext, p: Principal, r: Params) -> dict:
    metrics, params, tags = r.items("metrics"), r.key_values("params"), r.key_values("tags")
    for what, items, limit in (("metrics", metrics, MAX_METRICS), ("params", params, MAX_PARAMS),
                               ("tags", tags, MAX_TAGS)):
        if len(items) > limit:
            raise invalid(f"A batch logging request can contain at most {limit} {what}. Got "
                          f"{len(items)} {what}. Please split up {what} across multiple "
                          "requests and try again.")
    total = len(metrics) + len(params) + len(tags)
    if total > MAX_ENTITIES:
        raise invalid(f"A batch logging request can contain at most {MAX_ENTITIES} metrics, "
                      f"params, and tags in total. Got {total} in total.")
    run_id = r.run_id()
    param_map: dict[str, str] = {}
    for k, v in params:
        if param_map.get(k, v) != v:
            raise invalid(f"Duplicate parameter keys have been submitted: {k!r} with the values "
                          f"{param_map[k]!r} and {v!r}")
        param_map[k] = v
    tag_map = dict(tags)
    for key in tag_map:
        _check_tag_key(key)
    new_name = tag_map.pop(RUN_NAME_TAG, None)
    t = clock.now_ms()
    points = [_metric_point(m, t) for m in metrics]
    series = _series(points)
    model_ids = [m.get("model_id") for m in metrics if type(m) is dict and m.get("model_id")]
    from .logged_models import changing, model_points, record_points

    with changing(c, model_ids):  # none held when no metric names a model
        models = model_points(c, p, run_id, metrics, points) if model_ids else []
        if series or param_map or tag_map:
            write_run(c, p, run_id, metrics=series, params=param_map, tags=tag_map)
        else:  # nothing to write: MLflow still answers for an unknown or deleted run
            active_run(c, p, run_id)
        record_points(c, p, models)
    if new_name is not None:
        run = get_run(c, p, run_id)
        if new_name != run.name:
            rename_run(c, p, run, new_name)
    return {}


def log_inputs(c: ServerContext, p: Principal, r: Params) -> dict:
    """Data sets (and models) a run used: kept as one hidden tag, returned in run.inputs."""
    from ._common import INPUTS_TAG

    run = get_run(c, p, r.run_id())
    check_active(run.id, run.lifecycle)
    old = json.loads(run.tags.get(INPUTS_TAG) or "{}")
    datasets = old.get("dataset_inputs", [])
    for d in r.items("datasets"):
        if not isinstance(d, dict) or not isinstance(d.get("dataset"), dict):
            raise invalid(f"Invalid value {d!r} for parameter 'datasets'")
        ds = d["dataset"]
        key = (ds.get("name"), ds.get("digest"))
        datasets = [x for x in datasets
                    if (x["dataset"].get("name"), x["dataset"].get("digest")) != key]
        datasets.append({"tags": d.get("tags", []), "dataset": ds})
    models = old.get("model_inputs", [])
    for m in r.items("models"):
        if not isinstance(m, dict) or not isinstance(m.get("model_id"), str):
            raise invalid(f"Invalid value {m!r} for parameter 'models'")
        if all(x["model_id"] != m["model_id"] for x in models):
            models.append({"model_id": m["model_id"]})
    value = {"dataset_inputs": datasets, "model_inputs": models}
    text = json.dumps(value, separators=(",", ":"))
    if len(text) > MAX_TAG_VALUE:  # the schema and profile are what grows: drop them, keep identity
        for x in datasets:
            x["dataset"] = {k: v for k, v in x["dataset"].items() if k not in ("schema", "profile")}
        text = json.dumps(value, separators=(",", ":"))
        if len(text) > MAX_TAG_VALUE:
            raise invalid("Too many data set inputs for one run (their description exceeds "
                          "8000 characters)")
    write(c, p, run_id=run.id, tags={INPUTS_TAG: text})
    return {}


def log_model(c: ServerContext, p: Principal, r: Params) -> dict:
    """``runs/log-model``: MLflow's legacy record of a model logged in a run, kept as MLflow
    keeps it, in the tag ``mlflow.log-model.history`` (a JSON list; oldest dropped first
    when it outgrows a tag)."""
    run = get_run(c, p, r.run_id())
    check_active(run.id, run.lifecycle)
    text = r.text("model_json", required=True)
    try:
        model = json.loads(text)
    except ValueError:
        raise invalid("Invalid value for parameter 'model_json': not JSON") from None
    history = json.loads(run.tags.get(LOG_MODEL_TAG) or "[]") + [model]
    value = json.dumps(history)
    while len(value) > MAX_TAG_VALUE and len(history) > 1:
        history.pop(0)
        value = json.dumps(history)
    if len(value) > MAX_TAG_VALUE:
        raise invalid("The model description exceeds the 8000 characters of a tag")
    write(c, p, run_id=run.id, tags={LOG_MODEL_TAG: value})
    return {}


# -- search --------------------------------------------------------------------------

def _to_cairn(clause: Clause) -> Clause:
    if clause.entity == TAGS and clause.key in _TAG_ATTRIBUTES:
        return Clause(ATTRIBUTES, _TAG_ATTRIBUTES[clause.key], clause.op, clause.value)
    return clause


def _order_to_cairn(k: OrderKey) -> OrderKey:
    if k.entity == TAGS and k.key in _TAG_ATTRIBUTES:
        return OrderKey(ATTRIBUTES, _TAG_ATTRIBUTES[k.key], k.ascending)
    return k


def search_runs(c: ServerContext, p: Principal, r: Params) -> dict:
    ids = r.texts("experiment_ids")
    view_text = r.text("run_view_type") or "ACTIVE_ONLY"
    if view_text not in _VIEW_TYPES:
        raise invalid(f"Invalid value {view_text!r} for parameter 'run_view_type'")
    lifecycle = _VIEW_TYPES[view_text]
    max_results = r.integer("max_results", 1000)
    if max_results < 1:
        raise not_positive("max_results", max_results)
    if max_results > MAX_SEARCH_RESULTS:  # MLflow's words here are its type error's
        raise bad_value("max_results", max_results)
    flt = tuple(_to_cairn(cl) for cl in search.parse_filter(r.text("filter") or ""))
    order = tuple(_order_to_cairn(k) for k in search.parse_order_by(r.texts("order_by")))
    offset = search.decode_page_token(r.text("page_token"))
    if c.guard.enabled and not c.guard.sees_all(p, "experiment"):
        ids = [i for i in ids if i in set(c.guard.visible(p, "experiment", ids))]
    if not ids:
        return {}
    runs, more = _search(c, ids, flt, order, offset, max_results, lifecycle)
    out: dict[str, Any] = {"runs": [run_json(run) for run in runs]}
    if more:
        out["next_page_token"] = search.encode_page_token(offset + max_results)
    return out


def _search(c: ServerContext, ids: list[str], flt: tuple, order: tuple, offset: int,
            limit: int, lifecycle: str | None) -> tuple[list[Run], bool]:
    """One page of runs; through the store's own (cached) search for active runs."""
    if lifecycle == "active":
        runs, token = c.store.search_runs(ids, search.format_filter(flt),
                                          [str(k) for k in order], limit,
                                          search.encode_page_token(offset) if offset else None)
        return runs, token is not None
    return _sql_store(c, LifecycleSearch).search_runs_page(ids, flt, order, offset, limit,
                                                            lifecycle)


# -- metric history ------------------------------------------------------------------

def get_history(c: ServerContext, p: Principal, r: Params) -> dict:
    run = get_run(c, p, r.run_id())
    key = r.text("metric_key", required=True)
    max_results = r.integer("max_results")
    offset = search.decode_page_token(r.text("page_token"))
    h = c.store.get_metric_history(run.id, key)
    end = len(h) if max_results is None else min(len(h), offset + max(1, max_results))
    steps, times, values = (a[offset:end].tolist() for a in (h.steps, h.timestamps, h.values))
    out: dict[str, Any] = {"metrics": [metric_json(key, v, s, t)
                                       for s, t, v in zip(steps, times, values)]}
    if end < len(h):
        out["next_page_token"] = search.encode_page_token(end)
    return out


def get_history_bulk_interval(c: ServerContext, p: Principal, r: Params) -> dict:
    """Up to ``max_results`` points per run, evenly spread over the step range (both ends
    kept): what the MLflow UI draws its charts from."""
    run_ids = r.texts("run_ids")
    if not run_ids:
        raise missing("run_ids")
    if len(run_ids) > MAX_BULK_RUNS:
        raise invalid(f"GetMetricHistoryBulkInterval request must specify at most "
                      f"{MAX_BULK_RUNS} run_ids. Received {len(run_ids)} run_ids.")
    key = r.text("metric_key", required=True)
    max_results = r.integer("max_results", MAX_BULK_RESULTS)
    if not 1 <= max_results <= MAX_BULK_RESULTS:
        raise invalid(f"max_results must be between 1 and {MAX_BULK_RESULTS}. See the API docs "
                      "for more information about request parameters.")
    start, end = r.integer("start_step"), r.integer("end_step")
    if (start is None) != (end is None):
        raise invalid("If either start step or end step are specified, both must be specified.")
    if start is not None and start > end:
        raise invalid(f"end_step must be greater than start_step. Found start_step={start} and "
                      f"end_step={end}.")
    out = []
    for rid in run_ids:
        try:  # mlflow server answers a run that does not exist with no points, not a 404
            get_run(c, p, rid)
        except NotFound:
            continue
        h = c.store.get_metric_history(rid, key)
        keep = np.ones(len(h), dtype=bool)
        if start is not None:
            keep = (h.steps >= start) & (h.steps <= end)
        steps, times, values = h.steps[keep], h.timestamps[keep], h.values[keep]
        unique = np.unique(steps)
        if len(unique) > max_results:
            picked = unique[np.unique(np.linspace(0, len(unique) - 1, max_results).round()
                                      .astype(np.int64))]
            sel = np.isin(steps, picked)
            steps, times, values = steps[sel], times[sel], values[sel]
        for s, t, v in zip(steps.tolist(), times.tolist(), values.tolist()):
            out.append({**metric_json(key, v, s, t), "run_id": rid})
    return {"metrics": out} if out else {}  # mlflow server's proto answer: {} when empty


ROUTES = [
    ("POST", "/experiments/create", create_experiment),
    ("GET", "/experiments/get", experiment_get),
    ("GET", "/experiments/get-by-name", experiment_by_name),
    ("POST", "/experiments/search", search_experiments),
    ("GET", "/experiments/search", search_experiments),
    ("POST", "/experiments/update", update_experiment),
    ("POST", "/experiments/delete", delete_experiment),
    ("POST", "/experiments/restore", restore_experiment),
    ("POST", "/experiments/set-experiment-tag", set_experiment_tag),
    ("POST", "/experiments/delete-experiment-tag", delete_experiment_tag),
    ("POST", "/runs/create", create_run),
    ("GET", "/runs/get", get_run_route),
    ("POST", "/runs/update", update_run),
    ("POST", "/runs/delete", delete_run),
    ("POST", "/runs/restore", restore_run),
    ("POST", "/runs/set-tag", set_tag),
    ("POST", "/runs/delete-tag", delete_tag),
    ("POST", "/runs/log-parameter", log_param),
    ("POST", "/runs/log-metric", log_metric),
    ("POST", "/runs/log-batch", log_batch),
    ("POST", "/runs/log-inputs", log_inputs),
    ("POST", "/runs/log-model", log_model),
    ("POST", "/runs/search", search_runs),
    ("GET", "/metrics/get-history", get_history),
    ("GET", "/metrics/get-history-bulk-interval", get_history_bulk_interval),
]
