"""What every MLflow route shares: request parsing, MLflow-shaped errors, entity JSON.

MLflow's client reads an error's ``error_code`` from the JSON body and retries 5xx
answers for minutes, so every user error here is a 4xx whose code is a name from
MLflow's ``ErrorCode`` enum (see :data:`MLFLOW_STATUS`).
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

import orjson

from ...entities import Experiment, Run
from ...errors import (
    AlreadyExists, CairnError, Conflict, InvalidArgument, MissingDependency, NotFound,
    PermissionDenied, Unauthenticated,
)
from ...store.wire import INT64_MAX, INT64_MIN, jfloat, pfloat
from ..routes._common import MLFLOW_TAG_PREFIX

# Cairn error class -> (MLflow error_code, HTTP status).  MLflow answers an existing
# resource with 400 (its client swallows that code on registered-models/create), and a
# state conflict must not be a 5xx (retried for minutes), so it is a 400 too.
MLFLOW_STATUS: tuple[tuple[type[CairnError], str, int], ...] = (
    (NotFound, "RESOURCE_DOES_NOT_EXIST", 404),
    (AlreadyExists, "RESOURCE_ALREADY_EXISTS", 400),
    (InvalidArgument, "INVALID_PARAMETER_VALUE", 400),
    (Conflict, "INVALID_STATE", 400),
    (PermissionDenied, "PERMISSION_DENIED", 403),
    (Unauthenticated, "UNAUTHENTICATED", 401),
    (MissingDependency, "NOT_IMPLEMENTED", 501),
)

# Hidden run tags that hold what only MLflow has (logged models, dataset inputs): the
# MLflow API never lists them among a run's tags; Cairn shows them like any tag.
HIDDEN_TAG_PREFIX = MLFLOW_TAG_PREFIX  # only admins may write them through the native API
RUN_NAME_TAG = "mlflow.runName"
PARENT_TAG = "mlflow.parentRunId"
USER_TAG = "mlflow.user"
INPUTS_TAG = HIDDEN_TAG_PREFIX + "inputs"  # {"dataset_inputs": [...], "model_inputs": [...]}
OUTPUTS_TAG = HIDDEN_TAG_PREFIX + "outputs"  # [{"model_id", "step"}]
# An experiment's artifact location other than Cairn's proxy (an experiment tag), and a
# run's artifact URI made from it (a run tag): MLflow's client writes those files itself.
LOCATION_TAG = HIDDEN_TAG_PREFIX + "artifact_location"
ARTIFACT_URI_TAG = HIDDEN_TAG_PREFIX + "artifact_uri"


class MlflowError(CairnError):
    """An error with an exact MLflow code and status (e.g. a missing alias: 400)."""

    def __init__(self, code: str, status: int, message: str) -> None:
        super().__init__(message)
        self.error_code = code
        self.http_status = status


# error_code -> (sqlstate, error_class) as mlflow server 3.17.2 adds them to an error's
# body: seen in its answers for RESOURCE_DOES_NOT_EXIST, INVALID_PARAMETER_VALUE and
# RESOURCE_ALREADY_EXISTS; the others are what its MlflowException derives for that code
# (the server sends that exception's fields).  Its client keeps them on the exception it
# raises (``e.sqlstate``, ``e.error_class``) and, when a body has none, derives other ones
# (``KAMC2``, ``CP_RESOURCE_NOT_FOUND``, ...), so code that tells errors apart by them
# would see Cairn's differ.  Codes for which MlflowException derives none get neither field.
ERROR_CLASSES: dict[str, tuple[str, str]] = {
    "INVALID_PARAMETER_VALUE": ("KAM00", "INVALID_PARAMETER_VALUE"),
    "BAD_REQUEST": ("KAM00", "INVALID_PARAMETER_VALUE"),
    "RESOURCE_DOES_NOT_EXIST": ("KAM00", "RESOURCE_NOT_FOUND"),
    "ENDPOINT_NOT_FOUND": ("KAM00", "RESOURCE_NOT_FOUND"),
    "RESOURCE_ALREADY_EXISTS": ("KAM00", "RESOURCE_ALREADY_EXISTS"),
    "PERMISSION_DENIED": ("KAM00", "PERMISSION_DENIED"),
    "INVALID_STATE": ("XXM00", "CLIENT_INTERNAL_ERROR"),
    "INTERNAL_ERROR": ("XXM00", "CLIENT_INTERNAL_ERROR"),
    "TEMPORARILY_UNAVAILABLE": ("XXM00", "CLIENT_INTERNAL_ERROR"),
}


def error_json(code: str, message: str) -> dict[str, Any]:
    """An MLflow error body: ``error_code``, ``message``, then ``sqlstate`` and
    ``error_class`` where mlflow server sends them for that code."""
    body: dict[str, Any] = {"error_code": code, "message": message}
    classes = ERROR_CLASSES.get(code)
    if classes is not None:
        body["sqlstate"], body["error_class"] = classes
    return body


def mlflow_error(exc: CairnError) -> tuple[dict[str, Any], int]:
    """The JSON body and HTTP status MLflow's client expects for ``exc``."""
    code, status = exc.error_code, exc.http_status
    if not isinstance(exc, MlflowError):
        for cls, c, s in MLFLOW_STATUS:
            if isinstance(exc, cls):
                code, status = c, s
                break
    return error_json(code, exc.message), status


def invalid(message: str) -> InvalidArgument:
    return InvalidArgument(message)


# -- request parsing ----------------------------------------------------------------

_TRUE, _FALSE = "true", "false"


class Params:
    """One request's fields: a JSON body's object, or a query string's repeated keys.

    A GET query string gives every value as text (and a repeated key as several), so
    the accessors convert: ``integer`` parses decimal text, ``boolean`` accepts
    true/false in any case, and ``items`` reads one occurrence as a one-item list.
    """

    def __init__(self, data: Mapping[str, Any], from_query: bool = False) -> None:
        self.data = data
        self.from_query = from_query

    @classmethod
    def from_query_items(cls, items: Iterable[tuple[str, str]]) -> "Params":
        data: dict[str, list[str]] = {}
        for k, v in items:
            data.setdefault(k, []).append(v)
        return cls(data, from_query=True)

    def _raw(self, name: str) -> Any:
        value = self.data.get(name)
        if self.from_query and isinstance(value, list):
            return value[-1] if value else None
        return value

    def has(self, name: str) -> bool:
        return self._raw(name) is not None

    def text(self, name: str, required: bool = False, default: str | None = None,
             limit: int | None = None) -> str | None:
        value = self._raw(name)
        if value is None or (required and value == ""):
            if required:
                raise missing(name)
            return default
        if not isinstance(value, str):
            raise bad_value(name, value)
        if "\x00" in value:
            raise invalid(f"Invalid value for parameter '{name}': it contains a NUL character")
        if limit is not None and len(value) > limit:
            raise invalid(f"Invalid value for parameter '{name}': {len(value)} characters, "
                          f"the limit is {limit}")
        return value

    def integer(self, name: str, default: int | None = None, required: bool = False) -> int | None:
        value = self._raw(name)
        if value is None:
            if required:
                raise missing(name)
            return default
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise bad_value(name, value) from None
        if type(value) is float and value.is_integer():
            value = int(value)
        if type(value) is not int or not INT64_MIN <= value <= INT64_MAX:
            raise bad_value(name, value)
        return value

    def number(self, name: str, required: bool = False) -> float | None:
        value = self._raw(name)
        if value is None:
            if required:
                raise missing(name)
            return None
        return to_float(value, name)

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self._raw(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in (_TRUE, _FALSE):
            return value.lower() == _TRUE
        raise bad_value(name, value)

    def items(self, name: str) -> list[Any]:
        value = self.data.get(name)
        if value is None:
            return []
        if not isinstance(value, list):
            if self.from_query:
                return [value]
            raise bad_value(name, value)
        return value

    def texts(self, name: str) -> list[str]:
        out = self.items(name)
        for v in out:
            if not isinstance(v, str):
                raise bad_value(name, v)
        return out

    def run_id(self, required: bool = True) -> str:
        """``run_id``, or the legacy ``run_uuid`` the client also sends."""
        rid = self.text("run_id") or self.text("run_uuid")
        if not rid and required:
            raise missing("run_id")
        return rid or ""

    def key_values(self, name: str) -> list[tuple[str, str]]:
        """A repeated ``{key, value}`` field (tags, params)."""
        out = []
        for item in self.items(name):
            if not isinstance(item, Mapping) or not isinstance(item.get("key"), str):
                raise invalid(f"Invalid value {item!r} for parameter '{name}': each item needs "
                              "a string 'key' and 'value'")
            value = item.get("value", "")
            if not isinstance(value, str):
                raise bad_value(f"{name}.value", value)
            out.append((item["key"], value))
        return out


def missing(name: str) -> InvalidArgument:
    return invalid(f"Missing value for required parameter '{name}'. See the API docs for more "
                   "information about request parameters.")


def bad_value(name: str, value: Any) -> InvalidArgument:
    """MLflow's type error, word for word (the value as its ``json.dumps`` writes it, and its
    two spaces before "Hint"): clients and scripts match on it."""
    return invalid(f"Invalid value {mlflow_json(value)} for parameter '{name}' supplied:  Hint: "
                   f"Value was of type '{type(value).__name__}'. See the API docs for more "
                   "information about request parameters.")


def mlflow_json(value: Any) -> str:
    """A value as MLflow's error messages quote it."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def not_positive(name: str, value: int) -> InvalidArgument:
    """MLflow's answer to a ``max_results`` under 1."""
    return invalid(f"Invalid value {value} for parameter '{name}' supplied. It must be a "
                   "positive integer")


def to_float(value: Any, what: str) -> float:
    """A double as protobuf JSON writes it: a number, or "NaN" / "Infinity" / "-Infinity"."""
    if isinstance(value, str):
        try:
            return pfloat(value, what)
        except InvalidArgument:
            try:  # a query string carries numbers as text
                return float(value)
            except ValueError:
                raise bad_value(what, value) from None
    try:
        return pfloat(value, what)
    except InvalidArgument:
        raise bad_value(what, value) from None


def dumps(payload: Any) -> bytes:
    """JSON with int64 as numbers; floats must already be finite or "NaN"/"Infinity".

    orjson first (a page of runs encodes several times faster).  It writes a NaN or an
    infinity as ``null``, so an answer with ``null`` in it, and one orjson cannot encode
    (an integer beyond 64 bits, a key that is not a string), goes through the json
    module, which refuses raw non-finite floats.
    """
    try:
        out = orjson.dumps(payload)
    except TypeError:
        out = None
    if out is None or b"null" in out:
        return json.dumps(payload, allow_nan=False, separators=(",", ":")).encode()
    return out


# -- entities -----------------------------------------------------------------------

def kv(mapping: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in mapping.items()]


def experiment_location(e: Experiment) -> str:
    """Where MLflow's client puts the experiment's runs' artifacts: the location given when
    it was made through MLflow (or the server's ``--default-artifact-root``), else Cairn's
    proxy into its object store."""
    return e.tags.get(LOCATION_TAG) or f"mlflow-artifacts:/{e.id}"


def experiment_json(e: Experiment) -> dict[str, Any]:
    return {
        "experiment_id": e.id, "name": e.name, "artifact_location": experiment_location(e),
        "lifecycle_stage": e.lifecycle, "last_update_time": e.created_at,
        "creation_time": e.created_at, "tags": kv(visible_tags(e.tags)),
    }


def visible_tags(tags: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in tags.items() if not k.startswith(HIDDEN_TAG_PREFIX)}


def append_to_uri(uri: str, *parts: str) -> str:
    """``uri`` with ``parts`` added to its path, as MLflow's ``append_to_uri_path`` does
    (a query string stays at the end)."""
    base, sep, query = uri.partition("?")
    return base + ("" if base.endswith("/") else "/") + "/".join(parts) + sep + query


def artifact_uri(run: Run) -> str:
    """Fixed when the run was made, as on MLflow: under its experiment's location then
    (a hidden tag), or Cairn's proxy for a run whose files go into Cairn's object store."""
    return (run.tags.get(ARTIFACT_URI_TAG)
            or f"mlflow-artifacts:/{run.experiment_id}/{run.id}/artifacts")


def run_name(run: Run) -> str:
    """A rename through MLflow moves the name in the index and journals MLflow's tag; the
    tag survives ``cairn reindex`` of a local store, the index column does not."""
    return run.tags.get(RUN_NAME_TAG) or run.name


def run_info_json(run: Run) -> dict[str, Any]:
    info = {
        "run_id": run.id, "run_uuid": run.id, "run_name": run_name(run),
        "experiment_id": run.experiment_id, "user_id": run.user, "status": run.status.value,
        "start_time": run.start_time, "artifact_uri": artifact_uri(run),
        "lifecycle_stage": run.lifecycle,
    }
    if run.end_time is not None:
        info["end_time"] = run.end_time
    return info


def run_tags(run: Run) -> dict[str, str]:
    """The run's tags as MLflow shows them: hidden ones out, name/parent/user tags in."""
    tags = visible_tags(run.tags)
    tags[RUN_NAME_TAG] = run_name(run)
    if run.parent_id and PARENT_TAG not in tags:
        tags[PARENT_TAG] = run.parent_id
    if run.user and USER_TAG not in tags:
        tags[USER_TAG] = run.user
    return tags


def run_json(run: Run) -> dict[str, Any]:
    metrics = []
    summaries = run.metric_summaries
    # An indexed run's summaries tell a key's (step, timestamp) without building the whole
    # summary: most of the cost of a page of search results otherwise.
    position = getattr(summaries, "position", None)
    for key, value in run.metrics.items():
        if position is not None:
            step, ts = position(key) or (0, 0)
        else:
            m = summaries.get(key)
            step, ts = (m.step, m.timestamp) if m else (0, 0)
        metrics.append({"key": key, "value": jfloat(float(value)), "timestamp": ts, "step": step})
    out: dict[str, Any] = {
        "info": run_info_json(run),
        "data": {"metrics": metrics, "params": kv(run.params), "tags": kv(run_tags(run))},
    }
    inputs = run.tags.get(INPUTS_TAG)
    outputs = run.tags.get(OUTPUTS_TAG)
    out["inputs"] = json.loads(inputs) if inputs else {}
    if outputs:
        out["outputs"] = {"model_outputs": json.loads(outputs)}
    return out



def metric_json(key: str, value: float, step: int, timestamp: int) -> dict[str, Any]:
    return {"key": key, "value": jfloat(value), "timestamp": timestamp, "step": step}
