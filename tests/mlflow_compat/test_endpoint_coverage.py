"""Every route of Cairn's MLflow REST API is exercised through the real mlflow client.

``COVERAGE`` maps each route the server mounts (method, path as the client sends it) to
the pinned client's call that reaches it; ``test_every_route_is_in_the_coverage_map``
fails when a route is added to the server without an entry here (or an entry outlives
its route, or names a call the installed client lacks), so the map stays complete.
Most routes are covered by the other modules of tests/mlflow_compat; this module adds
end-to-end tests for those that were not:

* the client calls no test made (``delete_experiment_tag``, the logged-model
  params/tag/delete calls, the registry's rename and delete calls, the artifact
  repository's delete), and
* routes the client has no public method for (``NO_PUBLIC_CALL``: the MLflow UI's GET
  variants and listings, the bulk metric history).  Those go through the client's own
  transport, ``mlflow.utils.rest_utils.call_endpoint``, with the client's request and
  response protos, so the server is checked against what the client would send and parse.
"""

from __future__ import annotations

import importlib

import pytest

mlflow = pytest.importorskip("mlflow")
from mlflow.exceptions import MlflowException  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    "ignore::FutureWarning",  # stages and get_latest_versions are deprecated in MLflow
    "ignore::DeprecationWarning",
)

API = "/api/2.0/mlflow"
FILES = "/api/2.0/mlflow-artifacts"
CLIENT = "mlflow.MlflowClient."
TRANSPORT = "mlflow.utils.rest_utils.call_endpoint"

# (method, path) -> the pinned client's call that reaches the route.
COVERAGE: dict[tuple[str, str], str] = {
    ("POST", API + "/experiments/create"): CLIENT + "create_experiment",
    ("GET", API + "/experiments/get"): CLIENT + "get_experiment",
    ("GET", API + "/experiments/get-by-name"): CLIENT + "get_experiment_by_name",
    ("POST", API + "/experiments/search"): CLIENT + "search_experiments",
    ("GET", API + "/experiments/search"): TRANSPORT,
    ("POST", API + "/experiments/update"): CLIENT + "rename_experiment",
    ("POST", API + "/experiments/delete"): CLIENT + "delete_experiment",
    ("POST", API + "/experiments/restore"): CLIENT + "restore_experiment",
    ("POST", API + "/experiments/set-experiment-tag"): CLIENT + "set_experiment_tag",
    ("POST", API + "/experiments/delete-experiment-tag"): CLIENT + "delete_experiment_tag",
    ("POST", API + "/runs/create"): CLIENT + "create_run",
    ("GET", API + "/runs/get"): CLIENT + "get_run",
    ("POST", API + "/runs/update"): CLIENT + "update_run",
    ("POST", API + "/runs/delete"): CLIENT + "delete_run",
    ("POST", API + "/runs/restore"): CLIENT + "restore_run",
    ("POST", API + "/runs/set-tag"): CLIENT + "set_tag",
    ("POST", API + "/runs/delete-tag"): CLIENT + "delete_tag",
    ("POST", API + "/runs/log-parameter"): CLIENT + "log_param",
    ("POST", API + "/runs/log-metric"): CLIENT + "log_metric",
    ("POST", API + "/runs/log-batch"): CLIENT + "log_batch",
    ("POST", API + "/runs/log-inputs"): CLIENT + "log_inputs",
    ("POST", API + "/runs/log-model"):
        "mlflow.store.tracking.rest_store.RestStore.record_logged_model",
    ("POST", API + "/runs/search"): CLIENT + "search_runs",
    ("GET", API + "/metrics/get-history"): CLIENT + "get_metric_history",
    ("GET", API + "/metrics/get-history-bulk-interval"): TRANSPORT,
    ("POST", API + "/logged-models"): CLIENT + "create_logged_model",
    ("POST", API + "/logged-models/search"): CLIENT + "search_logged_models",
    ("GET", API + "/logged-models/{model_id}"): CLIENT + "get_logged_model",
    ("PATCH", API + "/logged-models/{model_id}"): CLIENT + "finalize_logged_model",
    ("DELETE", API + "/logged-models/{model_id}"): CLIENT + "delete_logged_model",
    ("PATCH", API + "/logged-models/{model_id}/tags"): CLIENT + "set_logged_model_tags",
    ("DELETE", API + "/logged-models/{model_id}/tags/{tag_key:path}"):
        CLIENT + "delete_logged_model_tag",
    ("POST", API + "/logged-models/{model_id}/params"): CLIENT + "log_model_params",
    ("GET", API + "/logged-models/{model_id}/artifacts/directories"): TRANSPORT,
    ("POST", API + "/runs/outputs"): CLIENT + "log_outputs",
    ("POST", API + "/registered-models/create"): CLIENT + "create_registered_model",
    ("GET", API + "/registered-models/get"): CLIENT + "get_registered_model",
    ("PATCH", API + "/registered-models/update"): CLIENT + "update_registered_model",
    ("POST", API + "/registered-models/rename"): CLIENT + "rename_registered_model",
    ("DELETE", API + "/registered-models/delete"): CLIENT + "delete_registered_model",
    ("GET", API + "/registered-models/search"): CLIENT + "search_registered_models",
    ("POST", API + "/registered-models/set-tag"): CLIENT + "set_registered_model_tag",
    ("DELETE", API + "/registered-models/delete-tag"): CLIENT + "delete_registered_model_tag",
    ("POST", API + "/registered-models/get-latest-versions"): CLIENT + "get_latest_versions",
    ("GET", API + "/registered-models/get-latest-versions"): TRANSPORT,
    ("POST", API + "/registered-models/alias"): CLIENT + "set_registered_model_alias",
    ("DELETE", API + "/registered-models/alias"): CLIENT + "delete_registered_model_alias",
    ("GET", API + "/registered-models/alias"): CLIENT + "get_model_version_by_alias",
    ("POST", API + "/model-versions/create"): CLIENT + "create_model_version",
    ("GET", API + "/model-versions/get"): CLIENT + "get_model_version",
    ("PATCH", API + "/model-versions/update"): CLIENT + "update_model_version",
    ("DELETE", API + "/model-versions/delete"): CLIENT + "delete_model_version",
    ("GET", API + "/model-versions/search"): CLIENT + "search_model_versions",
    ("GET", API + "/model-versions/get-download-uri"):
        CLIENT + "get_model_version_download_uri",
    ("POST", API + "/model-versions/transition-stage"):
        CLIENT + "transition_model_version_stage",
    ("POST", API + "/model-versions/set-tag"): CLIENT + "set_model_version_tag",
    ("DELETE", API + "/model-versions/delete-tag"): CLIENT + "delete_model_version_tag",
    ("GET", API + "/artifacts/list"): TRANSPORT,
    ("GET", FILES + "/artifacts"): CLIENT + "list_artifacts",
    ("GET", FILES + "/artifacts/{path:path}"): CLIENT + "download_artifacts",
    ("PUT", FILES + "/artifacts/{path:path}"): CLIENT + "log_artifact",
    ("DELETE", FILES + "/artifacts/{path:path}"):
        "mlflow.store.artifact.runs_artifact_repo.RunsArtifactRepository.delete_artifacts",
    ("GET", "/api/3.0/mlflow/server-info"): "mlflow.utils.server_info.fetch_server_info",
}

# Routes the pinned client has no public method for, and why; covered here through its
# transport (TRANSPORT above).
NO_PUBLIC_CALL = {
    ("GET", API + "/experiments/search"):
        "the client sends POST, the first endpoint of SearchExperiments; GET is the UI's",
    ("GET", API + "/metrics/get-history-bulk-interval"):
        "no client method; the MLflow UI's chart data",
    ("GET", API + "/logged-models/{model_id}/artifacts/directories"):
        "only the Databricks artifact repository calls it; the UI's model file browser",
    ("GET", API + "/registered-models/get-latest-versions"):
        "the client tries POST first and falls back to GET only on ENDPOINT_NOT_FOUND",
    ("GET", API + "/artifacts/list"):
        "the client lists a run's files through the mlflow-artifacts proxy, not ListArtifacts",
}


# Routes mlflow server serves under the UI's prefix only (as ``/api/…`` here): its web UI
# calls them, the client has none; tests/mlflow_compat/test_drop_in_artifacts.py covers them.
AJAX_ONLY = {
    ("POST", API + "/upload-artifact"),
    ("GET", API + "/logged-models/{model_id}/artifacts/files"),
    ("GET", API + "/metrics/get-history-bulk"),
    ("POST", API + "/experiments/search-datasets"),
}


def _resolve(dotted: str):
    """The object a dotted name names: the longest importable module, then attributes."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def _mounted_routes(app) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """((method, path) under /api, the same under /ajax-api) of the MLflow routes ``app``
    serves, read from its router: what is mounted, not what the modules list."""
    from starlette.routing import Mount

    api, ajax = set(), set()
    for route in app.router.routes:
        path = getattr(route, "path", "")
        if "mlflow" not in path:
            continue
        if isinstance(route, Mount):
            found = {(m, path + sub.path) for sub in route.routes
                     for m in sub.methods if m != "HEAD"}
        else:
            found = {(m, path) for m in route.methods if m != "HEAD"}
        if path.startswith("/ajax-api/"):
            ajax |= {(m, "/api/" + p[len("/ajax-api/"):]) for m, p in found}
        else:
            api |= found
    return api, ajax


def test_every_route_is_in_the_coverage_map(tmp_path):
    from cairn.server.app import create_app
    from cairn.server.mlflow import artifacts, logged_models, registry, tracking
    from cairn.store.local import LocalStore

    store = LocalStore(tmp_path / "store")
    try:
        api, ajax = _mounted_routes(create_app(store))
    finally:
        store.close()
    listed = {(m, API + p) for mod in (tracking, logged_models, registry)
              for m, p, _ in mod.ROUTES}
    listed |= {(m, API + p) for m, p, _ in artifacts.API_ROUTES}
    listed |= {(m, FILES + p) for m, p, _ in artifacts.ROUTES}
    assert listed <= api  # every listed route is mounted
    # the UI's prefix: the same, and those mlflow server serves there only
    assert api - ajax == {("GET", "/api/3.0/mlflow/server-info")}
    assert ajax - api == AJAX_ONLY
    missing = sorted(api - set(COVERAGE))
    assert not missing, f"routes with no client call in COVERAGE (add a test with it): {missing}"
    stale = sorted(set(COVERAGE) - api)
    assert not stale, f"COVERAGE names routes the server no longer has: {stale}"
    assert set(NO_PUBLIC_CALL) == {r for r, call in COVERAGE.items() if call == TRANSPORT}
    for route, call in COVERAGE.items():
        try:
            found = _resolve(call)
        except (ImportError, AttributeError):
            found = None
        assert callable(found), f"{route}: {call} is not in the installed mlflow"


# -- routes of the client's public API that no other test reached ---------------------------

def test_delete_experiment_tag(client):
    exp = client.create_experiment("coverage-exp-tags")
    client.set_experiment_tag(exp, "keep", "1")
    client.set_experiment_tag(exp, "drop", "2")
    client.delete_experiment_tag(exp, "drop")
    assert client.get_experiment(exp).tags == {"keep": "1"}
    with pytest.raises(MlflowException) as e:
        client.delete_experiment_tag(exp, "drop")
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as e:
        client.delete_experiment_tag("987654321", "keep")
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    mlflow.set_experiment(experiment_id=exp)  # the fluent form acts on the active experiment
    mlflow.delete_experiment_tag("keep")
    assert client.get_experiment(exp).tags == {}


def test_logged_model_params_tags_and_delete(client):
    exp = client.create_experiment("coverage-logged-models")
    run = client.create_run(exp).info.run_id
    model = client.create_logged_model(exp, name="net", source_run_id=run,
                                       params={"lr": "0.1"}, tags={"stage": "dev"})
    other = client.create_logged_model(exp, name="other", source_run_id=run)
    mid = model.model_id

    client.log_model_params(mid, {"depth": "3", "act": "relu"})
    mlflow.log_model_params({"width": "64"}, model_id=mid)
    got = client.get_logged_model(mid)
    assert got.params == {"lr": "0.1", "depth": "3", "act": "relu", "width": "64"}

    client.set_logged_model_tags(mid, {"owner": "ana", "team/area": "vision"})
    client.delete_logged_model_tag(mid, "stage")
    client.delete_logged_model_tag(mid, "team/area")  # a key with a slash: the path's tail
    assert client.get_logged_model(mid).tags == {"owner": "ana"}
    with pytest.raises(MlflowException) as e:
        client.delete_logged_model_tag(mid, "stage")
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    mlflow.delete_logged_model_tag(mid, "owner")
    assert client.get_logged_model(mid).tags == {}

    found = client.search_logged_models([exp], filter_string="params.depth = '3'")
    assert [m.model_id for m in found] == [mid]
    client.delete_logged_model(mid)
    with pytest.raises(MlflowException) as e:
        client.get_logged_model(mid)
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    # `mlflow gc` still finds a deleted model's files: its store asks with allow_deleted.
    kept = client._tracking_client.store.get_logged_model(mid, allow_deleted=True)
    assert (kept.model_id, kept.name, kept.params["depth"]) == (mid, "net", "3")
    assert [m.model_id for m in client.search_logged_models([exp])] == [other.model_id]
    assert client.get_logged_model(other.model_id).name == "other"
    client.delete_logged_model(mid)  # a second delete is 200, as on mlflow server
    with pytest.raises(MlflowException) as e:
        client.log_model_params(mid, {"x": "1"})  # the client looks the model up first
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"
    assert e.value.__cause__.error_code == "RESOURCE_DOES_NOT_EXIST"


def _registered_version(client, name: str) -> tuple[str, str]:
    """(run id, version) of a fresh registered model's version 1, from a run's files."""
    exp = client.create_experiment(f"coverage-{name}")
    run = client.create_run(exp).info.run_id
    client.log_text(run, "flavors: {}\n", "model/MLmodel")
    client.create_registered_model(name)
    mv = client.create_model_version(name, f"runs:/{run}/model", run_id=run)
    return run, mv.version


def test_registry_renames_and_deletes(client):
    """Rename and delete answer as on mlflow server; a version with an alias (or in
    Production) is kept, with INVALID_STATE (tests/mlflow_compat/test_drop_in_registry.py
    has the details)."""
    run, version = _registered_version(client, "coverage-lifecycle")
    client.set_registered_model_alias("coverage-lifecycle", "champion", version)
    with pytest.raises(MlflowException) as e:
        client.delete_model_version("coverage-lifecycle", version)
    assert e.value.error_code == "INVALID_STATE" and "alias 'champion'" in e.value.message
    client.rename_registered_model("coverage-lifecycle", "coverage-renamed")
    mv = client.get_model_version_by_alias("coverage-renamed", "champion")
    assert (mv.name, mv.version, mv.run_id) == ("coverage-renamed", "1", run)
    with pytest.raises(MlflowException) as e:
        client.get_registered_model("coverage-lifecycle")
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    client.delete_registered_model_alias("coverage-renamed", "champion")
    client.delete_model_version("coverage-renamed", version)
    client.delete_registered_model("coverage-renamed")
    with pytest.raises(MlflowException) as e:
        client.get_registered_model("coverage-renamed")
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_artifact_repository_delete_is_refused(client, tmp_path):
    import requests
    from mlflow.store.artifact.runs_artifact_repo import RunsArtifactRepository

    run = client.create_run(client.create_experiment("coverage-artifact-delete")).info.run_id
    client.log_text(run, "kept", "notes/a.txt")
    repo = RunsArtifactRepository(f"runs:/{run}")
    with pytest.raises(requests.HTTPError) as e:  # the repository raises the HTTP error
        repo.delete_artifacts("notes/a.txt")
    assert e.value.response.status_code == 400
    body = e.value.response.json()
    assert body["error_code"] == "INVALID_PARAMETER_VALUE" and "immutable" in body["message"]
    assert mlflow.artifacts.load_text(f"runs:/{run}/notes/a.txt") == "kept"
    assert [f.path for f in client.list_artifacts(run, "notes")] == ["notes/a.txt"]


# -- routes the client has no public method for: through its transport -----------------------

def _call(url: str, method: str, path: str, request, response):
    from mlflow.utils.proto_json_utils import message_to_json
    from mlflow.utils.rest_utils import MlflowHostCreds, call_endpoint

    return call_endpoint(MlflowHostCreds(url), path, method, message_to_json(request), response)


def test_get_variants_and_listings_through_the_client_transport(url, client):
    from mlflow.entities import Metric
    from mlflow.protos.model_registry_pb2 import GetLatestVersions
    from mlflow.protos.service_pb2 import (GetMetricHistoryBulkInterval, ListArtifacts,
                                           ListLoggedModelArtifacts, SearchExperiments)

    exp = client.create_experiment("coverage-transport")
    client.set_experiment_tag(exp, "kind", "transport")
    got = _call(url, "GET", API + "/experiments/search",
                SearchExperiments(filter="tags.kind = 'transport'", max_results=10),
                SearchExperiments.Response())
    assert [e.experiment_id for e in got.experiments] == [exp]

    runs = [client.create_run(exp).info.run_id for _ in range(2)]
    for i, rid in enumerate(runs):
        client.log_batch(rid, metrics=[Metric("loss", float(s * (i + 1)), 1000 + s, s)
                                       for s in range(50)])
    got = _call(url, "GET", API + "/metrics/get-history-bulk-interval",
                GetMetricHistoryBulkInterval(run_ids=runs, metric_key="loss", start_step=10,
                                             end_step=40, max_results=4),
                GetMetricHistoryBulkInterval.Response())
    by_run: dict[str, list[tuple[int, float]]] = {}
    for m in got.metrics:
        by_run.setdefault(m.run_id, []).append((m.step, m.value))
    assert by_run == {runs[0]: [(10, 10.0), (20, 20.0), (30, 30.0), (40, 40.0)],
                      runs[1]: [(10, 20.0), (20, 40.0), (30, 60.0), (40, 80.0)]}
    with pytest.raises(MlflowException) as e:
        _call(url, "GET", API + "/metrics/get-history-bulk-interval",
              GetMetricHistoryBulkInterval(run_ids=runs, metric_key="loss", start_step=40,
                                           end_step=10), GetMetricHistoryBulkInterval.Response())
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"

    rid = runs[0]
    client.log_text(rid, "abc", "dir/a.txt")
    client.log_text(rid, "z", "top.txt")
    got = _call(url, "GET", API + "/artifacts/list", ListArtifacts(run_id=rid),
                ListArtifacts.Response())
    assert got.root_uri == client.get_run(rid).info.artifact_uri
    assert [(f.path, f.is_dir) for f in got.files] == [("dir", True), ("top.txt", False)]
    got = _call(url, "GET", API + "/artifacts/list", ListArtifacts(run_id=rid, path="dir"),
                ListArtifacts.Response())
    assert [(f.path, f.file_size) for f in got.files] == [("dir/a.txt", 3)]

    model = client.create_logged_model(exp, name="files", source_run_id=rid)
    client.log_text(rid, "flavors: {}\n", "files/MLmodel")  # the model's directory
    client.log_text(rid, "w", "files/data/w.bin")
    got = _call(url, "GET", API + f"/logged-models/{model.model_id}/artifacts/directories",
                ListLoggedModelArtifacts(), ListLoggedModelArtifacts.Response())
    assert got.root_uri == client.get_logged_model(model.model_id).artifact_location
    assert [(f.path, f.is_dir) for f in got.files] == [("MLmodel", False), ("data", True)]
    got = _call(url, "GET", API + f"/logged-models/{model.model_id}/artifacts/directories",
                ListLoggedModelArtifacts(artifact_directory_path="data"),
                ListLoggedModelArtifacts.Response())
    assert [f.path for f in got.files] == ["data/w.bin"]

    _registered_version(client, "coverage-latest")
    client.transition_model_version_stage("coverage-latest", "1", "Staging")
    got = _call(url, "GET", API + "/registered-models/get-latest-versions",
                GetLatestVersions(name="coverage-latest", stages=["Staging"]),
                GetLatestVersions.Response())
    assert [(v.version, v.current_stage) for v in got.model_versions] == [("1", "Staging")]
    got = _call(url, "GET", API + "/registered-models/get-latest-versions",
                GetLatestVersions(name="coverage-latest", stages=["Production"]),
                GetLatestVersions.Response())
    assert list(got.model_versions) == []
