"""Drop-in answers of the tracking API, each checked against what ``mlflow server``
(3.17, SQLite backend) answered to the same requests (issue #16), on a local store and on
PostgreSQL.

- ``experiments/search`` on a fresh server lists ``Default`` (id "0").
- ``update_run(run_id, name=...)`` on a FINISHED run (the client sends ``status:
  FINISHED`` again) is 200.
- ``runs/create`` with an ``mlflow.parentRunId`` tag naming no run is 200; the tag is kept.
- ``runs/delete-tag`` on a deleted run: 400 INVALID_PARAMETER_VALUE, "The run <id> must be
  in the 'active' state. Current state is deleted."
- Every other change to a deleted run (log-metric, log-parameter, set-tag, log-batch, even an
  empty one, update, log-inputs, outputs, log-model): the same 400, and nothing is written;
  delete and restore stay 200.
- Error bodies carry ``sqlstate`` and ``error_class`` after ``error_code`` and ``message``.
"""

from __future__ import annotations

import pytest
from serving import serve_postgres

mlflow = pytest.importorskip("mlflow")
httpx = pytest.importorskip("httpx")
from mlflow import MlflowClient  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

API = "/api/2.0/mlflow"
BACKENDS = ["local", pytest.param("postgres", marks=pytest.mark.postgres)]


def _client_env(monkeypatch, url: str) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")


@pytest.fixture(params=BACKENDS)
def base(request, monkeypatch):
    """The URL of a Cairn server (shared by the module) on each backend."""
    if request.param == "local":
        return request.getfixturevalue("url")
    url = request.getfixturevalue("pg_server")[0]
    _client_env(monkeypatch, url)
    return url


@pytest.fixture(params=BACKENDS)
def fresh(request, monkeypatch, tmp_path):
    """The URL of a Cairn server on a new, empty store of each backend."""
    from serving import ThreadedServer

    from cairn.server.app import create_app
    from cairn.store.local import LocalStore

    if request.param == "local":
        store = LocalStore(tmp_path / "store")
        server = ThreadedServer(create_app(store))
    else:
        store, server = serve_postgres(request.getfixturevalue("pg_database"),
                                        tmp_path / "objects")
    with server as url:
        _client_env(monkeypatch, url)
        yield url
    store.close()


def _post(url: str, route: str, body: dict) -> httpx.Response:
    return httpx.post(f"{url}{API}/{route}", json=body, timeout=30)


def test_search_experiments_on_a_fresh_server_lists_default(fresh):
    # mlflow server: {"experiments": [{"experiment_id": "0", "name": "Default",
    # "lifecycle_stage": "active", ...}]} for GET and POST alike.
    r = httpx.get(f"{fresh}{API}/experiments/search", params={"max_results": 10}, timeout=30)
    assert r.status_code == 200
    assert [(e["experiment_id"], e["name"], e["lifecycle_stage"])
            for e in r.json()["experiments"]] == [("0", "Default", "active")]
    exps = MlflowClient(fresh).search_experiments()
    assert [(e.experiment_id, e.name) for e in exps] == [("0", "Default")]
    assert MlflowClient(fresh).get_experiment("0").name == "Default"


def test_update_run_name_of_a_finished_run(base):
    client = MlflowClient(base)
    exp = client.create_experiment(f"drop-in-update-{base.rsplit(':', 1)[1]}")
    run = client.create_run(exp, run_name="before")
    client.set_terminated(run.info.run_id, "FINISHED", end_time=1000)
    # The client sends status FINISHED again: mlflow server answers 200, renamed.
    client.update_run(run.info.run_id, name="after")
    info = client.get_run(run.info.run_id).info
    assert (info.run_name, info.status, info.end_time) == ("after", "FINISHED", 1000)
    client.update_run(run.info.run_id, status="FINISHED", name="again")
    info = client.get_run(run.info.run_id).info
    assert (info.run_name, info.status, info.end_time) == ("again", "FINISHED", 1000)


def test_create_run_with_an_unknown_parent(base):
    client = MlflowClient(base)
    missing = "0123456789abcdef0123456789abcdef"
    # mlflow server: 200, and the run keeps the tag.
    run = client.create_run("0", tags={"mlflow.parentRunId": missing})
    assert run.data.tags["mlflow.parentRunId"] == missing
    got = client.get_run(run.info.run_id)
    assert got.data.tags["mlflow.parentRunId"] == missing
    assert got.info.status == "RUNNING"


def test_delete_tag_on_a_deleted_run(base):
    client = MlflowClient(base)
    run = client.create_run("0")
    run_id = run.info.run_id
    client.set_tag(run_id, "k", "v")
    client.delete_run(run_id)
    expected = (f"The run {run_id} must be in the 'active' state. Current state is deleted.")
    for key in ("k", "absent"):  # mlflow server checks the state before the tag
        r = _post(base, "runs/delete-tag", {"run_id": run_id, "key": key})
        assert r.status_code == 400
        assert r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert r.json()["message"] == expected
    with pytest.raises(MlflowException) as e:
        client.delete_tag(run_id, "k")
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"
    assert e.value.message == f"INVALID_PARAMETER_VALUE: {expected}"  # the client prefixes it
    client.restore_run(run_id)
    assert client.get_run(run_id).data.tags["k"] == "v"


def _deleted_run(client) -> str:
    run_id = client.create_run("0").info.run_id
    client.log_param(run_id, "kept", "1")
    client.delete_run(run_id)
    return run_id


def _refused(run_id: str, e) -> None:
    expected = f"The run {run_id} must be in the 'active' state. Current state is deleted."
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"
    # The client prefixes the code, and adds a hint of its own to log_param's.
    assert e.value.message.startswith(f"INVALID_PARAMETER_VALUE: {expected}")


def test_every_change_to_a_deleted_run_is_refused_and_nothing_is_written(base):
    from mlflow.entities import Dataset, DatasetInput, Metric, Param, RunTag

    client = MlflowClient(base)
    run_id = _deleted_run(client)
    changes = [
        lambda: client.log_metric(run_id, "m", 1.0),
        lambda: client.log_param(run_id, "p", "1"),
        lambda: client.set_tag(run_id, "t", "1"),
        lambda: client.set_tag(run_id, "mlflow.runName", "renamed"),
        lambda: client.log_batch(run_id, metrics=[Metric("m", 1.0, 1, 0)]),
        lambda: client.log_batch(run_id, params=[Param("p", "1")]),
        lambda: client.log_batch(run_id, tags=[RunTag("t", "1")]),
        lambda: client.log_batch(run_id, tags=[RunTag("mlflow.runName", "renamed")]),
        lambda: client.set_terminated(run_id, "FINISHED"),
        lambda: client.update_run(run_id, name="renamed"),
        lambda: client.log_inputs(run_id, [DatasetInput(Dataset("d", "x", "local", "{}"))]),
    ]
    for change in changes:
        with pytest.raises(MlflowException) as e:
            change()
        _refused(run_id, e)
    # Routes without a client method (or whose method sends more than this request).
    expected = f"The run {run_id} must be in the 'active' state. Current state is deleted."
    for route, body in [
        ("runs/log-batch", {"run_id": run_id}),
        ("runs/outputs", {"run_id": run_id, "models": [{"model_id": "m-0123"}]}),
        ("runs/log-model", {"run_id": run_id, "model_json": '{"artifact_path": "m"}'}),
    ]:
        r = _post(base, route, body)
        assert (r.status_code, r.json()) == (400, {
            "error_code": "INVALID_PARAMETER_VALUE", "message": expected,
            "sqlstate": "KAM00", "error_class": "INVALID_PARAMETER_VALUE"}), route
    # Deleting again is no change, as on mlflow server; a restore brings back the run as
    # it was before it was deleted, with none of the refused changes.
    client.delete_run(run_id)
    client.restore_run(run_id)
    run = client.get_run(run_id)
    assert run.data.params == {"kept": "1"}
    assert run.data.metrics == {}
    assert "t" not in run.data.tags
    assert run.info.run_name != "renamed"
    assert run.info.status == "RUNNING"
    assert run.inputs.dataset_inputs == []
    client.log_metric(run_id, "m", 2.0)  # active again: writable
    assert client.get_run(run_id).data.metrics == {"m": 2.0}


def test_an_empty_log_batch_answers_for_its_run(base):
    # mlflow server reads the run before it writes anything: an unknown one is a 404 even
    # when the batch holds nothing (Cairn answered 200).
    missing = "0123456789abcdef0123456789abcdef"
    r = _post(base, "runs/log-batch", {"run_id": missing})
    assert (r.status_code, r.json()["error_code"], r.json()["message"]) == (
        404, "RESOURCE_DOES_NOT_EXIST", f"Run with id={missing} not found")
    run_id = MlflowClient(base).create_run("0").info.run_id
    assert _post(base, "runs/log-batch", {"run_id": run_id}).status_code == 200


def test_error_bodies_carry_mlflow_s_sqlstate_and_error_class(base):
    # What mlflow server 3.17.2 answered, byte for byte but for spacing.
    r = httpx.get(f"{base}{API}/runs/get", params={"run_id": "nope"}, timeout=30)
    assert r.status_code == 404
    assert list(r.json().items()) == [
        ("error_code", "RESOURCE_DOES_NOT_EXIST"), ("message", "Run with id=nope not found"),
        ("sqlstate", "KAM00"), ("error_class", "RESOURCE_NOT_FOUND")]
    r = httpx.get(f"{base}{API}/experiments/get", params={"experiment_id": "12345"}, timeout=30)
    assert r.json() == {"error_code": "RESOURCE_DOES_NOT_EXIST",
                        "message": "No Experiment with id=12345 exists",
                        "sqlstate": "KAM00", "error_class": "RESOURCE_NOT_FOUND"}
    r = _post(base, "runs/search", {"experiment_ids": ["0"], "filter": "metrics.m >"})
    assert (r.status_code, r.json()["sqlstate"], r.json()["error_class"]) == (
        400, "KAM00", "INVALID_PARAMETER_VALUE")
    name = f"dup-{base.rsplit(':', 1)[1]}"
    _post(base, "experiments/create", {"name": name})
    r = _post(base, "experiments/create", {"name": name})
    assert (r.status_code, r.json()["error_code"], r.json()["sqlstate"],
            r.json()["error_class"]) == (400, "RESOURCE_ALREADY_EXISTS", "KAM00",
                                         "RESOURCE_ALREADY_EXISTS")
    # The client keeps them on its exception; without them it made up others (KAMC2,
    # CP_RESOURCE_NOT_FOUND) that code telling errors apart would have seen.
    with pytest.raises(MlflowException) as e:
        MlflowClient(base).get_run("nope")
    assert (e.value.sqlstate, e.value.error_class) == ("KAM00", "RESOURCE_NOT_FOUND")
