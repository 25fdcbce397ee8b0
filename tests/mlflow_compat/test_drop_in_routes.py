"""Routes a drop-in for ``mlflow server`` answers as it does, on a local store and on
PostgreSQL.  Each expectation is what mlflow server 3.17.2 (``mlflow server
--backend-store-uri sqlite:///…``) answered to the same request:

- a path that escapes (``..``, absolute, ``%2E%2E``) on any artifact route: 400
  ``{"error_code": "INVALID_PARAMETER_VALUE", "message": "Invalid path", …}``, before the run
  is looked up (``artifacts/list?run_id=x&path=../x`` is a 400, not a 404);
- an unknown route under ``/api/`` or ``/ajax-api/``: 404 (MLflow's body is Flask's HTML
  page; Cairn's is its JSON ``ENDPOINT_NOT_FOUND``, which the client reads as well, and
  never the web UI's page);
- ``GET /version``: 200, ``text/html; charset=utf-8``, body ``3.17.2``.
"""

from __future__ import annotations

import httpx
import pytest

INVALID_PATH = {"error_code": "INVALID_PARAMETER_VALUE", "message": "Invalid path",
                "sqlstate": "KAM00", "error_class": "INVALID_PARAMETER_VALUE"}


@pytest.fixture(params=["local", pytest.param("postgres", marks=pytest.mark.postgres)])
def http(request):
    name = "server" if request.param == "local" else "pg_server"
    url = request.getfixturevalue(name)[0]
    with httpx.Client(base_url=url, timeout=30) as client:
        yield client


@pytest.fixture
def run_path(http):
    """``<experiment>/<run>/artifacts`` of a run holding ``a/b.txt``."""
    import uuid

    exp = http.post("/api/2.0/mlflow/experiments/create",
                    json={"name": f"drop-in-{uuid.uuid4().hex[:8]}"}).json()["experiment_id"]
    run = http.post("/api/2.0/mlflow/runs/create", json={"experiment_id": exp}).json()["run"]
    path = f"{exp}/{run['info']['run_id']}/artifacts"
    put = http.put(f"/api/2.0/mlflow-artifacts/artifacts/{path}/a/b.txt", content=b"hi")
    assert put.status_code == 200, put.text
    return path, run["info"]["run_id"]


def invalid(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert {k: body[k] for k in INVALID_PATH} == INVALID_PATH


@pytest.mark.parametrize("prefix", ["/api/2.0/mlflow-artifacts", "/ajax-api/2.0/mlflow-artifacts"])
@pytest.mark.parametrize("bad", ["../x", "a/../x", "/etc", "%2E%2E/x"])
def test_artifact_list_refuses_path_escapes(http, prefix, bad):
    invalid(http.get(f"{prefix}/artifacts", params={"path": bad}))


def test_every_artifact_route_refuses_path_escapes(http, run_path):
    path, run_id = run_path
    files = "/api/2.0/mlflow-artifacts/artifacts"
    ok = http.get(files, params={"path": f"{path}/a"})
    assert ok.status_code == 200 and ok.json()["files"][0]["path"] == "b.txt"
    invalid(http.get(files, params={"path": f"{path}/../../x"}))
    escape = f"{files}/{path}/a/%2E%2E/%2E%2E/%2E%2E/x"  # kept encoded: httpx would fold '..'
    for method in ("GET", "PUT", "DELETE"):
        invalid(http.request(method, httpx.URL(http.base_url.join(escape)), content=b"x"))
    for prefix in ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow"):
        invalid(http.get(f"{prefix}/artifacts/list", params={"run_id": "x", "path": "../x"}))
        invalid(http.get(f"{prefix}/artifacts/list", params={"run_id": run_id, "path": "a/../.."}))
        listed = http.get(f"{prefix}/artifacts/list", params={"run_id": run_id, "path": "a"})
        assert [f["path"] for f in listed.json()["files"]] == ["a/b.txt"]


@pytest.mark.parametrize("method,path", [
    ("GET", "/api/2.0/mlflow/nope"),
    ("POST", "/api/2.0/mlflow/runs/nope"),
    ("GET", "/ajax-api/2.0/mlflow/nope"),
    ("GET", "/api/2.0/mlflow-artifacts/nope"),
    ("GET", "/api/v1/nope"),
    ("GET", "/api/nope"),
])
def test_unknown_api_routes_are_json_404(http, method, path):
    r = http.request(method, path, json={} if method == "POST" else None)
    assert r.status_code == 404, r.text
    assert r.headers["content-type"].startswith("application/json"), r.text[:200]
    assert r.json()["error_code"] == "ENDPOINT_NOT_FOUND"


def test_version_answers_as_mlflow_server(http):
    r = http.get("/version")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.text == "3.17.2"


def test_history_bulk_interval_answers_as_mlflow_server(http, run_path):
    # mlflow server 3.17.2: no points is {}; a run that does not exist has no points (no 404);
    # max_results out of range names the API docs.
    _, run_id = run_path
    route = "/api/2.0/mlflow/metrics/get-history-bulk-interval"
    assert http.get(route, params={"run_ids": run_id, "metric_key": "x"}).json() == {}
    assert http.get(route, params={"run_ids": "deadbeef", "metric_key": "x"}).json() == {}
    r = http.post("/api/2.0/mlflow/runs/log-metric", json={
        "run_id": run_id, "key": "x", "value": 1, "timestamp": 5, "step": 0})
    assert r.status_code == 200, r.text
    got = http.get(route, params={"run_ids": [run_id, "nope"], "metric_key": "x"})
    assert got.json() == {"metrics": [{"key": "x", "value": 1.0, "timestamp": 5, "step": 0,
                                       "run_id": run_id}]}
    r = http.get(route, params={"run_ids": run_id, "metric_key": "x", "max_results": 0})
    assert r.status_code == 400
    assert r.json()["message"] == ("max_results must be between 1 and 2500. See the API docs "
                                   "for more information about request parameters.")
