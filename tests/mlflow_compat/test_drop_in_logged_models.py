"""Drop-in answers of MLflow 3's logged-model routes (``/logged-models``), each checked
against what ``mlflow server`` 3.17.2 (SQLite backend) answered to the same requests
(issue #16), on a local store and on PostgreSQL.

What mlflow server answered:

- ``POST /logged-models`` with a ``source_run_id`` naming no run: 200, the model reports
  that ``source_run_id`` as given.  Without a name (or with ``""``): a random name of the
  form ``adjective-noun-N`` (e.g. ``unequaled-shrimp-685``), a new one per model.  Without
  ``experiment_id``: 400 INVALID_PARAMETER_VALUE "Missing value for required parameter
  'experiment_id'. ...".  A name holding any of ``/ : . % " '``: 400
  INVALID_PARAMETER_VALUE "Invalid model name ('a/b') provided. Model name must be a
  non-empty string and cannot contain the following characters: ('/', ':', '.', '%', '"',
  "'")".  In a deleted experiment: 400 INVALID_PARAMETER_VALUE "The experiment <id> must be
  in the 'active' state. Current state is deleted.".  A tag or param key given twice: 400
  BAD_REQUEST (its message is the database's unique-key error).
- Bodies leave out empty lists and unset fields: a new model's ``data`` is ``{}``, no
  ``tags``, no ``status_message``; ``model_type`` is ``""``.
- ``log_metric(..., model_id=m)`` and log-batch metrics carrying ``model_id``: 200; the
  point is in the run's metrics and in the model's ``data.metrics`` (every point, with
  ``model_id``, ``run_id`` and ``dataset_name``/``dataset_digest`` when given; the same
  point twice is listed once).  A metric naming an unknown model: 400 BAD_REQUEST, and
  the run does not get the point.  ``metrics.acc > 0.6`` and ``metrics.acc < 0.6`` both
  find a model with points 0.5 and 0.7 (any point counts); ordering by ``metrics.acc``
  uses the latest point (of the order item's ``dataset_name`` when given).  Logging
  metrics, tags or params leaves ``last_updated_timestamp_ms`` as it was; finalize moves it.
- ``PATCH /logged-models/<id>`` takes ``status`` as a name or a number (3:
  LOGGED_MODEL_UPLOAD_FAILED) and LOGGED_MODEL_STATUS_UNSPECIFIED.
- ``PATCH .../tags`` answers ``{}``.  ``DELETE .../tags/<key>`` of a missing key: 404
  RESOURCE_DOES_NOT_EXIST "No tag with key 'nope' found for model with ID '<id>'.".
- ``POST .../params`` with a key the model has (same value or not): 400 BAD_REQUEST.
- A deleted model still takes a second delete, finalize, tags, tag deletes and params
  (200 each); only get (without ``allow_deleted``) and search hide it.
- ``POST /logged-models/search``: ``max_results`` 0 is the default (100); an unknown
  experiment gives ``{}``; ``order_by`` field ``bogus``: 400 INVALID_PARAMETER_VALUE
  "Invalid order by field name: bogus"; ``params.x``: "Invalid order by field name:
  params.x. Only metrics are supported."; a ``datasets`` item without ``dataset_name``:
  400 INVALID_PARAMETER_VALUE "`dataset_name` in the `datasets` clause must be specified.".
"""

from __future__ import annotations

import re
import time

import pytest

mlflow = pytest.importorskip("mlflow")
httpx = pytest.importorskip("httpx")
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Metric  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

API = "/api/2.0/mlflow"
BACKENDS = ["local", pytest.param("postgres", marks=pytest.mark.postgres)]
MISSING_RUN = "0123456789abcdef0123456789abcdef"
MISSING_MODEL = "m-0123456789abcdef0123456789abcdef"
BAD_CHARS = "('/', ':', '.', '%', '\"', \"'\")"


@pytest.fixture(params=BACKENDS)
def base(request, monkeypatch):
    """The URL of a Cairn server (shared by the module) on each backend."""
    if request.param == "local":
        return request.getfixturevalue("url")
    url = request.getfixturevalue("pg_server")[0]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    mlflow.set_tracking_uri(url)
    return url


def _call(base: str, method: str, route: str, body: dict | None = None,
          params: dict | None = None) -> httpx.Response:
    return httpx.request(method, f"{base}{API}/{route}", json=body, params=params, timeout=30)


def _error(r: httpx.Response, status: int, code: str, message: str | None = None) -> None:
    assert r.status_code == status, r.text
    assert r.json()["error_code"] == code
    if message is not None:
        assert r.json()["message"] == message


def _experiment(base: str, what: str) -> str:
    return MlflowClient(base).create_experiment(f"lm-{what}-{base.rsplit(':', 1)[1]}-"
                                                f"{time.time_ns()}")


def test_create_with_an_unknown_source_run(base):
    client = MlflowClient(base)
    exp = _experiment(base, "unknown-source")
    model = client.create_logged_model(exp, name="net", source_run_id=MISSING_RUN)
    assert (model.source_run_id, model.experiment_id) == (MISSING_RUN, exp)
    got = client.get_logged_model(model.model_id)
    assert (got.source_run_id, got.experiment_id, got.name) == (MISSING_RUN, exp, "net")
    found = client.search_logged_models([exp], filter_string=f"source_run_id = '{MISSING_RUN}'")
    assert [m.model_id for m in found] == [model.model_id]
    # A source run of another experiment is kept as given too; the model is in `exp`.
    other = client.create_run(_experiment(base, "other")).info.run_id
    second = client.create_logged_model(exp, name="net", source_run_id=other)
    assert (second.source_run_id, second.experiment_id) == (other, exp)
    # Cairn's mapping (not an MLflow answer): the files of each live with a finished run
    # of its own in the model's experiment.
    for m in (model, second):
        run = client.get_run(m.artifact_location.split("/")[2])
        assert (run.info.experiment_id, run.info.status) == (exp, "FINISHED")


def test_unnamed_models_get_distinct_random_names(base):
    client = MlflowClient(base)
    exp = _experiment(base, "unnamed")
    run = client.create_run(exp).info.run_id
    models = [client.create_logged_model(exp, source_run_id=run) for _ in range(3)]
    r = _call(base, "POST", "logged-models", {"experiment_id": exp, "name": "",
                                              "source_run_id": run})
    assert r.status_code == 200
    names = [m.name for m in models] + [r.json()["model"]["info"]["name"]]
    assert len(set(names)) == 4
    for name in names:
        assert re.fullmatch(r"[a-z]+-[a-z]+-\d{1,3}", name), name
    assert len({m.artifact_location for m in models}) == 3


def test_create_checks_as_mlflow_does(base):
    exp = _experiment(base, "create-checks")
    r = _call(base, "POST", "logged-models", {"name": "x"})
    _error(r, 400, "INVALID_PARAMETER_VALUE",
           "Missing value for required parameter 'experiment_id'. See the API docs for more "
           "information about request parameters.")
    for name in ("a/b", "a.b", "a:b", "a%b", "a'b", 'a"b'):
        r = _call(base, "POST", "logged-models", {"experiment_id": exp, "name": name})
        _error(r, 400, "INVALID_PARAMETER_VALUE",
               f"Invalid model name ({name!r}) provided. Model name must be a non-empty string "
               f"and cannot contain the following characters: {BAD_CHARS}")
    for field in ("tags", "params"):
        r = _call(base, "POST", "logged-models", {
            "experiment_id": exp, field: [{"key": "k", "value": "1"}, {"key": "k", "value": "2"}]})
        _error(r, 400, "BAD_REQUEST")
    r = _call(base, "POST", "logged-models", {"experiment_id": exp, "name": "x y é"})
    assert r.status_code == 200
    body = r.json()["model"]
    # mlflow server leaves empty lists and unset fields out.
    assert body["data"] == {}
    assert body["info"]["model_type"] == ""
    assert "tags" not in body["info"] and "status_message" not in body["info"]
    assert body["info"]["creation_timestamp_ms"] == body["info"]["last_updated_timestamp_ms"]
    MlflowClient(base).delete_experiment(exp)
    r = _call(base, "POST", "logged-models", {"experiment_id": exp, "name": "x"})
    _error(r, 400, "INVALID_PARAMETER_VALUE",
           f"The experiment {exp} must be in the 'active' state. Current state is deleted.")


def test_metrics_logged_with_a_model_id(base):
    client = MlflowClient(base)
    exp = _experiment(base, "metrics")
    run = client.create_run(exp).info.run_id
    first = client.create_logged_model(exp, name="first", source_run_id=run)
    second = client.create_logged_model(exp, name="second", source_run_id=run)
    client.log_metric(run, "acc", 0.5, timestamp=1000, step=1, model_id=first.model_id)
    for _ in range(2):  # the same point twice is listed once
        client.log_metric(run, "acc", 0.7, timestamp=2000, step=2, model_id=first.model_id,
                          dataset_name="ds", dataset_digest="abc")
    client.log_batch(run, metrics=[
        Metric("loss", 0.1, 3000, 0, model_id=second.model_id),
        Metric("plain", 1.0, 3000, 0)])
    mlflow.log_metric("acc", 0.9, step=5, timestamp=4000, run_id=run,
                      model_id=second.model_id)

    got = client.get_logged_model(first.model_id)
    assert [(m.key, m.value, m.timestamp, m.step, m.dataset_name, m.dataset_digest, m.run_id,
             m.model_id) for m in got.metrics] == [
        ("acc", 0.5, 1000, 1, None, None, run, first.model_id),
        ("acc", 0.7, 2000, 2, "ds", "abc", run, first.model_id)]
    assert got.last_updated_timestamp == first.last_updated_timestamp  # metrics don't move it
    raw = _call(base, "GET", f"logged-models/{first.model_id}").json()["model"]["data"]
    assert raw["metrics"][0] == {"key": "acc", "value": 0.5, "timestamp": 1000, "step": 1,
                                 "model_id": first.model_id, "run_id": run}
    assert [(m.key, m.value) for m in client.get_logged_model(second.model_id).metrics] == [
        ("loss", 0.1), ("acc", 0.9)]
    # Still the run's metrics.
    assert client.get_run(run).data.metrics == {"acc": 0.9, "loss": 0.1, "plain": 1.0}

    def names(**kw):
        return [m.name for m in client.search_logged_models([exp], **kw)]

    assert names(filter_string="metrics.acc > 0.6") == ["second", "first"]
    assert names(filter_string="metrics.acc < 0.6") == ["first"]  # any point counts
    assert names(filter_string="metrics.loss >= 0.1") == ["second"]
    assert names(order_by=[{"field_name": "metrics.acc", "ascending": True}]) == [
        "first", "second"]  # the latest points: 0.7 and 0.9
    assert names(order_by=[{"field_name": "metrics.loss", "ascending": False}]) == [
        "second", "first"]  # a model without the metric comes last
    assert names(order_by=[{"field_name": "metrics.acc", "ascending": False}]) == [
        "second", "first"]
    assert names(order_by=[{"field_name": "metrics.acc", "ascending": False,
                            "dataset_name": "ds"}]) == ["first", "second"]  # 0.7 on ds


def test_a_metric_naming_an_unknown_model(base):
    client = MlflowClient(base)
    run = client.create_run(_experiment(base, "unknown-model")).info.run_id
    for model_id in (MISSING_MODEL, "nope"):
        r = _call(base, "POST", "runs/log-metric", {
            "run_id": run, "key": "acc", "value": 0.5, "timestamp": 1, "step": 0,
            "model_id": model_id})
        _error(r, 400, "BAD_REQUEST")
    with pytest.raises(MlflowException) as e:
        client.log_metric(run, "acc", 0.5, model_id=MISSING_MODEL)
    assert e.value.error_code == "BAD_REQUEST"
    assert "acc" not in client.get_run(run).data.metrics  # refused before the run got it
    r = _call(base, "POST", "runs/log-batch", {"run_id": run, "metrics": [
        {"key": "loss", "value": 0.1, "timestamp": 1, "step": 0, "model_id": MISSING_MODEL}]})
    _error(r, 400, "BAD_REQUEST")


def test_finalize_takes_status_names_and_numbers(base):
    client = MlflowClient(base)
    exp = _experiment(base, "finalize")
    model = client.create_logged_model(exp, name="m")
    route = f"logged-models/{model.model_id}"
    for status, expected in ((3, "LOGGED_MODEL_UPLOAD_FAILED"), (2, "LOGGED_MODEL_READY"),
                             ("LOGGED_MODEL_STATUS_UNSPECIFIED", "LOGGED_MODEL_STATUS_UNSPECIFIED"),
                             ("LOGGED_MODEL_READY", "LOGGED_MODEL_READY")):
        r = _call(base, "PATCH", route, {"model_id": model.model_id, "status": status})
        assert r.status_code == 200, r.text
        assert r.json()["model"]["info"]["status"] == expected
    r = _call(base, "PATCH", route, {"model_id": model.model_id})
    _error(r, 400, "INVALID_PARAMETER_VALUE",
           "Missing value for required parameter 'status'. See the API docs for more "
           "information about request parameters.")
    assert client.get_logged_model(model.model_id).last_updated_timestamp > \
        model.last_updated_timestamp


def test_tags_and_params_answers(base):
    client = MlflowClient(base)
    exp = _experiment(base, "tags-params")
    model = client.create_logged_model(exp, name="m", params={"p": "2"})
    mid = model.model_id
    r = _call(base, "PATCH", f"logged-models/{mid}/tags",
              {"tags": [{"key": "a", "value": "1"}, {"key": "a", "value": "2"}]})
    assert (r.status_code, r.json()) == (200, {})
    r = _call(base, "DELETE", f"logged-models/{mid}/tags/nope")
    _error(r, 404, "RESOURCE_DOES_NOT_EXIST",
           f"No tag with key 'nope' found for model with ID '{mid}'.")
    for value in ("2", "9"):  # a key the model has, with its value or another
        r = _call(base, "POST", f"logged-models/{mid}/params",
                  {"model_id": mid, "params": [{"key": "p", "value": value}]})
        _error(r, 400, "BAD_REQUEST")
    client.log_model_params(mid, {"q": "3"})
    got = client.get_logged_model(mid)
    assert (got.tags, got.params) == ({"a": "2"}, {"p": "2", "q": "3"})
    assert got.last_updated_timestamp == model.last_updated_timestamp


def test_a_deleted_model_still_takes_changes(base):
    client = MlflowClient(base)
    exp = _experiment(base, "deleted")
    mid = client.create_logged_model(exp, name="m", tags={"t": "1"}).model_id
    assert _call(base, "DELETE", f"logged-models/{mid}").status_code == 200
    for method, route, body in (
            ("DELETE", f"logged-models/{mid}", None),
            ("PATCH", f"logged-models/{mid}", {"model_id": mid, "status": "LOGGED_MODEL_READY"}),
            ("PATCH", f"logged-models/{mid}/tags", {"tags": [{"key": "c", "value": "d"}]}),
            ("DELETE", f"logged-models/{mid}/tags/t", None),
            ("POST", f"logged-models/{mid}/params",
             {"model_id": mid, "params": [{"key": "z", "value": "3"}]})):
        r = _call(base, method, route, body)
        assert r.status_code == 200, (method, route, r.text)
    _error(_call(base, "GET", f"logged-models/{mid}"), 404, "RESOURCE_DOES_NOT_EXIST",
           f"Logged model with ID '{mid}' not found.")
    got = _call(base, "GET", f"logged-models/{mid}", params={"allow_deleted": "true"})
    info = got.json()["model"]["info"]
    assert info["status"] == "LOGGED_MODEL_READY" and info["tags"] == [{"key": "c",
                                                                         "value": "d"}]
    assert got.json()["model"]["data"]["params"] == [{"key": "z", "value": "3"}]
    assert client.search_logged_models([exp]) == []
    _error(_call(base, "DELETE", f"logged-models/{MISSING_MODEL}"), 404,
           "RESOURCE_DOES_NOT_EXIST", f"Logged model with ID '{MISSING_MODEL}' not found.")


def test_search_answers(base):
    client = MlflowClient(base)
    exp = _experiment(base, "search")
    for name in ("a", "b"):
        client.create_logged_model(exp, name=name)
    r = _call(base, "POST", "logged-models/search", {"experiment_ids": [exp], "max_results": 0})
    assert [m["info"]["name"] for m in r.json()["models"]] == ["b", "a"]
    r = _call(base, "POST", "logged-models/search", {"experiment_ids": ["987654321"]})
    assert (r.status_code, r.json()) == (200, {})
    for field, message in (("bogus", "Invalid order by field name: bogus"),
                           ("params.x", "Invalid order by field name: params.x. Only metrics "
                                        "are supported.")):
        r = _call(base, "POST", "logged-models/search",
                  {"experiment_ids": [exp], "order_by": [{"field_name": field}]})
        _error(r, 400, "INVALID_PARAMETER_VALUE", message)
    r = _call(base, "POST", "logged-models/search",
              {"experiment_ids": [exp], "datasets": [{"dataset_digest": "d"}]})
    _error(r, 400, "INVALID_PARAMETER_VALUE",
           "`dataset_name` in the `datasets` clause must be specified.")
    r = _call(base, "POST", "logged-models/search",
              {"experiment_ids": [exp], "order_by": [{"field_name": "name", "ascending": False}],
               "filter": f"experiment_id = '{exp}'"})
    assert [m["info"]["name"] for m in r.json()["models"]] == ["b", "a"]


def test_a_model_keeps_the_latest_points_past_its_description_size(base):
    # Cairn's limit, not an MLflow answer: a model's description is one 8000-character
    # tag, so past it the older points of a series go first (mlflow server lists all).
    client = MlflowClient(base)
    exp = _experiment(base, "many-points")
    run = client.create_run(exp).info.run_id
    mid = client.create_logged_model(exp, name="m", source_run_id=run).model_id
    client.log_batch(run, metrics=[Metric("loss", 1 / (i + 1), 1000 + i, i, model_id=mid)
                                   for i in range(300)] + [Metric("acc", 0.5, 1, 0,
                                                                  model_id=mid)])
    got = client.get_logged_model(mid).metrics
    assert 1 < len(got) < 301
    assert (got[-1].key, got[-1].step) == ("acc", 0)
    assert max(m.step for m in got if m.key == "loss") == 299
    assert len(client.get_metric_history(run, "loss")) == 300  # the run keeps every point



def test_changes_at_once_to_one_model_lose_none(base):
    """Tags, params and metrics sent at the same moment by many clients all land (each
    change reads the model's description and writes it back: unserialised, one would
    overwrite another's)."""
    _changes_at_once(base, 36)


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_changes_at_once_through_several_workers_lose_none(backend, tmp_path, request):
    """The same through the two processes of ``--workers 2``: the model's lock is the
    store's (lock files of a local store, PostgreSQL's advisory locks), not a process's."""
    from serving import ProcessServer

    if backend == "local":
        args = ["--store", str(tmp_path / "store")]
    else:
        from pg_fixtures import create_schema

        args = ["--db", create_schema(request.getfixturevalue("pg_database")),
                "--objects", str(tmp_path / "objects")]
    with ProcessServer(*args, "--no-auth", "--workers", "2",
                       log=tmp_path / "server.log") as srv:
        _changes_at_once(srv.url, 90, threads=12)


def _changes_at_once(base: str, n: int, threads: int = 8) -> None:
    from concurrent.futures import ThreadPoolExecutor

    client = MlflowClient(base)
    exp = _experiment(base, "at-once")
    run = client.create_run(exp).info.run_id
    mid = client.create_logged_model(exp, name="m", source_run_id=run).model_id

    def change(i: int) -> None:
        if i % 3 == 0:
            r = _call(base, "PATCH", f"logged-models/{mid}/tags",
                      {"tags": [{"key": f"t{i}", "value": str(i)}]})
        elif i % 3 == 1:
            r = _call(base, "POST", f"logged-models/{mid}/params",
                      {"model_id": mid, "params": [{"key": f"p{i}", "value": str(i)}]})
        else:
            r = _call(base, "POST", "runs/log-metric", {
                "run_id": run, "key": f"m{i}", "value": i, "timestamp": 1, "step": 0,
                "model_id": mid})
        assert r.status_code == 200, r.text

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(change, range(n)))
    got = client.get_logged_model(mid)
    assert got.tags == {f"t{i}": str(i) for i in range(0, n, 3)}
    assert got.params == {f"p{i}": str(i) for i in range(1, n, 3)}
    assert sorted(m.key for m in got.metrics) == sorted(f"m{i}" for i in range(2, n, 3))
