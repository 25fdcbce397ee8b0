"""Drop-in answers of the tracking API, each checked against what ``mlflow server``
(3.17, SQLite backend) answered to the same requests (issue #16), on a local store and on
PostgreSQL.

- ``experiments/search`` on a fresh server lists ``Default`` (id "0").
- ``update_run(run_id, name=...)`` on a FINISHED run (the client sends ``status:
  FINISHED`` again) is 200.
- ``runs/create`` with an ``mlflow.parentRunId`` tag naming no run is 200; the tag is kept.
- ``runs/delete-tag`` on a deleted run: 400 INVALID_PARAMETER_VALUE, "The run <id> must be
  in the 'active' state. Current state is deleted."
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
