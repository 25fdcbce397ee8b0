"""Experiments' artifact locations, ``cairn server``'s MLflow artifact options, and the
wording of validation errors, each checked against what ``mlflow server`` 3.17.2 (SQLite
backend) answered to the same requests (issue #16), on a local store and on PostgreSQL.

What ``mlflow server`` answered (``--serve-artifacts``, its default, no root given):

- ``experiments/create`` keeps ``artifact_location`` as given (``/abs/path``, ``file:///x``,
  ``s3://b/p``, ``mlflow-artifacts:/x``); a relative path becomes absolute against the
  server's working directory; omitted, ``null`` or ``""``: ``mlflow-artifacts:/<id>``.  A run
  made in it reports ``<artifact_location>/<run_id>/artifacts``.
- A non-string ``artifact_location`` (``9.0``, ``9``, ``["a"]``, ``{"a": 1}``, ``true``) is
  400 ``INVALID_PARAMETER_VALUE`` "Invalid value 9.0 for parameter 'artifact_location'
  supplied:  Hint: Value was of type 'float'. ..." (the value as JSON, two spaces).
- With ``--default-artifact-root /R``: Default is ``/R/0`` and a new experiment ``/R/<id>``;
  with ``--no-serve-artifacts`` and no root, ``<cwd>/mlruns/<id>``.
- For a run whose artifact URI is a local path, the client writes the files there itself;
  ``artifacts/list`` on mlflow server lists that directory (it is on the server's disk).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

mlflow = pytest.importorskip("mlflow")
httpx = pytest.importorskip("httpx")
from mlflow import MlflowClient  # noqa: E402

API = "/api/2.0/mlflow"
BACKENDS = ["local", pytest.param("postgres", marks=pytest.mark.postgres)]
SEE_DOCS = "See the API docs for more information about request parameters."


def _serve(backend, getfixture, tmp_path, settings=None):
    """(store, ThreadedServer) of a new, empty store of ``backend``."""
    from serving import ThreadedServer

    from cairn.server.app import create_app
    from cairn.store.local import LocalStore

    if backend == "local":
        store = LocalStore(tmp_path / "store")
        return store, ThreadedServer(create_app(store, settings=settings))
    from pg_fixtures import create_schema

    from cairn.cas import ObjectStore
    from cairn.store.sql.store import SqlStore

    store = SqlStore(create_schema(getfixture("pg_database")),
                     ObjectStore.local(tmp_path / "objects"))
    return store, ThreadedServer(create_app(store, settings=settings))


def _client_env(monkeypatch, url: str) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")


@pytest.fixture(scope="module", params=BACKENDS)
def served(request, tmp_path_factory):
    """The URL of a Cairn server with default settings (shared by the module), per backend."""
    store, server = _serve(request.param, request.getfixturevalue,
                           tmp_path_factory.mktemp("served"))
    with server as url:
        yield url
    store.close()


@pytest.fixture
def base(served, monkeypatch):
    _client_env(monkeypatch, served)
    return served


@pytest.fixture(params=BACKENDS)
def rooted(request, monkeypatch, tmp_path):
    """(url, root): a Cairn server started with ``--default-artifact-root <root>``."""
    from cairn.server.config import ServerSettings, artifact_root

    root = str(tmp_path / "art")
    store, server = _serve(request.param, request.getfixturevalue, tmp_path,
                           ServerSettings(default_artifact_root=artifact_root(root)))
    with server as url:
        _client_env(monkeypatch, url)
        yield url, root
    store.close()


def _post(url: str, route: str, body: dict) -> httpx.Response:
    return httpx.post(f"{url}{API}/{route}", json=body, timeout=30)


def _get(url: str, route: str, params: dict) -> httpx.Response:
    return httpx.get(f"{url}{API}/{route}", params=params, timeout=30)


def _name() -> str:
    return f"exp-{uuid.uuid4().hex[:8]}"


def _create(url: str, **fields) -> str:
    r = _post(url, "experiments/create", {"name": _name(), **fields})
    assert r.status_code == 200, r.text
    return r.json()["experiment_id"]


def _location(url: str, experiment_id: str) -> str:
    r = _get(url, "experiments/get", {"experiment_id": experiment_id})
    assert r.status_code == 200, r.text
    return r.json()["experiment"]["artifact_location"]


def _run_uri(url: str, experiment_id: str) -> tuple[str, str]:
    """(run id, artifact_uri) of a new run, checked the same in every answer that shows it."""
    r = _post(url, "runs/create", {"experiment_id": experiment_id})
    assert r.status_code == 200, r.text
    info = r.json()["run"]["info"]
    run_id, uri = info["run_id"], info["artifact_uri"]
    got = _get(url, "runs/get", {"run_id": run_id}).json()["run"]
    assert got["info"]["artifact_uri"] == uri
    assert all(not t["key"].startswith("cairn.") for t in got["data"]["tags"])
    found = _post(url, "runs/search", {"experiment_ids": [experiment_id]}).json()["runs"]
    assert [x["info"]["artifact_uri"] for x in found if x["info"]["run_id"] == run_id] == [uri]
    return run_id, uri


# -- artifact_location, as given at creation ---------------------------------------------

@pytest.mark.parametrize("given", ["/abs/custom", "file:///x", "s3://b/p", "mlflow-artifacts:/x",
                                   "gs://bucket/a/b/"])
def test_a_given_artifact_location_is_kept(base, given):
    # mlflow server: experiments/get answers it as given; a run's artifact_uri is
    # <artifact_location>/<run_id>/artifacts.
    eid = _create(base, artifact_location=given)
    assert _location(base, eid) == given
    run_id, uri = _run_uri(base, eid)
    assert uri == f"{given.rstrip('/')}/{run_id}/artifacts"
    exp = MlflowClient(base).get_experiment(eid)
    assert exp.artifact_location == given
    assert all(not k.startswith("cairn.") for k in exp.tags)


def test_a_relative_artifact_location_is_made_absolute(base):
    # mlflow server: "rel/path" -> "<the server's working directory>/rel/path".
    eid = _create(base, artifact_location="rel/path")
    assert _location(base, eid) == os.path.join(os.getcwd(), "rel/path")


@pytest.mark.parametrize("given", ["<omitted>", None, ""])
def test_no_artifact_location_is_the_proxy(base, given):
    # mlflow server (--serve-artifacts): mlflow-artifacts:/<id>, runs under it.
    fields = {} if given == "<omitted>" else {"artifact_location": given}
    eid = _create(base, **fields)
    assert _location(base, eid) == f"mlflow-artifacts:/{eid}"
    run_id, uri = _run_uri(base, eid)
    assert uri == f"mlflow-artifacts:/{eid}/{run_id}/artifacts"
    assert _location(base, "0") == "mlflow-artifacts:/0"


@pytest.mark.parametrize("value, shown, kind", [
    (9.0, "9.0", "float"), (9, "9", "int"), (["a"], '["a"]', "list"),
    ({"a": 1}, '{"a":1}', "dict"), (True, "true", "bool"),
])
def test_a_non_string_artifact_location_is_refused(base, value, shown, kind):
    r = _post(base, "experiments/create", {"name": _name(), "artifact_location": value})
    assert r.status_code == 400
    assert r.json() == {"error_code": "INVALID_PARAMETER_VALUE",
                        "message": f"Invalid value {shown} for parameter 'artifact_location' "
                                   f"supplied:  Hint: Value was of type '{kind}'. {SEE_DOCS}",
                        "sqlstate": "KAM00", "error_class": "INVALID_PARAMETER_VALUE"}


@pytest.mark.parametrize("given, message", [
    ("runs:/abc", "Artifact location cannot be a runs:/ URI. Given: 'runs:/abc'"),
    ("s3://b/p#frag", "'artifact_location' URL can't include fragments or params."),
    ("s3://b/p?x=../y", "Invalid query string"),
    ("/" + "a" * 2100, "Invalid artifact path length. The length of the artifact path cannot "
                       "be greater than 2048 characters. To configure this limit, please set "
                       "the MLFLOW_ARTIFACT_LOCATION_MAX_LENGTH environment variable."),
])
def test_an_invalid_artifact_location_is_refused(base, given, message):
    r = _post(base, "experiments/create", {"name": _name(), "artifact_location": given})
    assert (r.status_code, r.json()) == (400, {"error_code": "INVALID_PARAMETER_VALUE",
                                               "message": message, "sqlstate": "KAM00",
                                               "error_class": "INVALID_PARAMETER_VALUE"})


def test_the_client_writes_to_a_local_location_itself(base, tmp_path):
    # mlflow server: the file lands in <location>/<run>/artifacts/; the client lists and
    # downloads it from there.  Cairn's own listing (artifacts/list, like `cairn artifacts`)
    # holds only what is in Cairn's object store: nothing for such a run (mlflow server
    # lists the directory on its own disk instead).
    client = MlflowClient(base)
    loc = str(tmp_path / "elsewhere")
    eid = client.create_experiment(_name(), artifact_location=loc)
    run = client.create_run(eid)
    run_id = run.info.run_id
    assert run.info.artifact_uri == f"{loc}/{run_id}/artifacts"
    client.log_text(run_id, "hello", "d/x.txt")
    assert (tmp_path / "elsewhere" / run_id / "artifacts" / "d" / "x.txt").read_text() == "hello"
    assert [f.path for f in client.list_artifacts(run_id, "d")] == ["d/x.txt"]
    r = _get(base, "artifacts/list", {"run_id": run_id})
    assert r.status_code == 200
    assert r.json().get("files", []) == []
    assert r.json()["root_uri"] == f"{loc}/{run_id}/artifacts"


def test_another_proxied_location(base, tmp_path):
    # mlflow server --serve-artifacts, location mlflow-artifacts:/x: the run's artifact_uri is
    # mlflow-artifacts:/x/<run>/artifacts; the client uploads through the proxy (stored at
    # x/<run>/artifacts/... under its artifacts destination), lists and downloads it back.
    client = MlflowClient(base)
    where = f"mlflow-artifacts:/{uuid.uuid4().hex[:8]}"
    run = client.create_run(client.create_experiment(_name(), artifact_location=where))
    run_id = run.info.run_id
    assert run.info.artifact_uri == f"{where}/{run_id}/artifacts"
    client.log_text(run_id, "hi", "d/a.txt")
    assert [f.path for f in client.list_artifacts(run_id, "d")] == ["d/a.txt"]
    assert Path(client.download_artifacts(run_id, "d/a.txt", str(tmp_path))).read_text() == "hi"
    # mlflow server's artifacts/list of that run lists what is at its location.
    r = _get(base, "artifacts/list", {"run_id": run_id})
    assert r.json() == {"root_uri": f"{where}/{run_id}/artifacts",
                        "files": [{"path": "d", "is_dir": True}]}


def test_hidden_location_tags_cannot_be_set_by_a_client(base):
    eid = _create(base, artifact_location="s3://b/p")
    r = _post(base, "experiments/set-experiment-tag",
              {"experiment_id": eid, "key": "cairn.mlflow.artifact_location", "value": "/x"})
    assert r.status_code == 400
    r = _post(base, "experiments/delete-experiment-tag",
              {"experiment_id": eid, "key": "cairn.mlflow.artifact_location"})
    assert r.status_code == 404
    assert _location(base, eid) == "s3://b/p"


# -- --default-artifact-root, --serve-artifacts ------------------------------------------

def test_default_artifact_root(rooted):
    # mlflow server --default-artifact-root /R: Default is /R/0, a new experiment /R/<id>,
    # one given a location keeps it; runs are <location>/<run>/artifacts.
    url, root = rooted
    assert _location(url, "0") == f"{root}/0"
    eid = _create(url)
    assert _location(url, eid) == f"{root}/{eid}"
    run_id, uri = _run_uri(url, eid)
    assert uri == f"{root}/{eid}/{run_id}/artifacts"
    other = _create(url, artifact_location="s3://b/p")
    assert _location(url, other) == "s3://b/p"
    MlflowClient(url).log_text(run_id, "hi", "a.txt")
    assert Path(root, eid, run_id, "artifacts", "a.txt").read_text() == "hi"


def test_artifact_root_resolution(tmp_path, monkeypatch):
    from cairn.server.config import artifact_root

    monkeypatch.chdir(tmp_path)
    assert artifact_root(None) is None  # --serve-artifacts: the proxy
    assert artifact_root("mlflow-artifacts:/") is None
    assert artifact_root(None, serve_artifacts=False) == str(tmp_path / "mlruns")
    assert artifact_root("rel") == str(tmp_path / "rel")
    assert artifact_root("s3://b/p", serve_artifacts=False) == "s3://b/p"


def test_cairn_server_takes_mlflows_artifact_options(tmp_path, monkeypatch):
    from click.testing import CliRunner

    import cairn.server.serve as serve
    from cairn.cli.main import cli

    seen = []
    monkeypatch.setattr(serve, "prepare", lambda cfg: None)
    monkeypatch.setattr(serve, "run", lambda cfg, **kw: seen.append(cfg))
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    args = ["--store", str(tmp_path / "s"), "server"]
    for extra, root, objects in [
        ([], None, None),
        (["--default-artifact-root", "s3://b/r"], "s3://b/r", None),
        (["--no-serve-artifacts"], str(tmp_path / "mlruns"), None),
        (["--serve-artifacts", "--artifacts-destination", str(tmp_path / "o")], None,
         str(tmp_path / "o")),
    ]:
        result = runner.invoke(cli, args + extra)
        assert result.exit_code == 0, result.output
        assert seen[-1].settings["default_artifact_root"] == root
        assert seen[-1].objects == objects
    result = runner.invoke(cli, args + ["--objects", "a", "--artifacts-destination", "b"])
    assert result.exit_code != 0


# -- error wording: (request, mlflow server's answer) ------------------------------------

def _type_error(name: str, shown: str, kind: str) -> str:
    return (f"Invalid value {shown} for parameter '{name}' supplied:  Hint: Value was of type "
            f"'{kind}'. {SEE_DOCS}")


def _missing(name: str) -> str:
    return f"Missing value for required parameter '{name}'. {SEE_DOCS}"


def _resolves(key: str, norm: str) -> str:
    return (f"Invalid value \"{key}\" for parameter 'key' supplied: Names may be treated as files "
            "in certain cases, and must not resolve to other names when treated as such. This "
            f"name would resolve to '{norm}'")


# (method, route, body with EXP/RUN standing for a real experiment and run, status, message)
# error_code is INVALID_PARAMETER_VALUE for a 400, RESOURCE_DOES_NOT_EXIST for a 404.
ANSWERS = [
    ("POST", "experiments/create", {}, 400, _missing("name")),
    ("POST", "experiments/create", {"name": ""}, 400, _missing("name")),
    ("POST", "experiments/create", {"name": 5}, 400, _type_error("name", "5", "int")),
    ("POST", "experiments/create", {"name": "NEW", "tags": "x"}, 400,
     _type_error("tags", '"x"', "str")),
    ("GET", "experiments/get", {}, 400, _missing("experiment_id")),
    ("GET", "experiments/get", {"experiment_id": "12345"}, 404,
     "No Experiment with id=12345 exists"),
    ("GET", "experiments/get", {"experiment_id": "abc"}, 400,
     "Invalid experiment ID 'abc'. Experiment ID must be a valid integer."),
    ("GET", "experiments/get-by-name", {}, 400, _missing("experiment_name")),
    ("POST", "experiments/search", {"max_results": 0}, 400,
     "Invalid value 0 for parameter 'max_results' supplied. It must be a positive integer"),
    ("POST", "experiments/search", {"max_results": -1}, 400,
     "Invalid value -1 for parameter 'max_results' supplied. It must be a positive integer"),
    ("POST", "experiments/search", {"max_results": 50001}, 400,
     "Invalid value 50001 for parameter 'max_results' supplied. It must be at most 50000"),
    ("POST", "experiments/search", {"max_results": "abc"}, 400,
     _type_error("max_results", '"abc"', "str")),
    ("POST", "experiments/update", {"experiment_id": "EXP"}, 400, _missing("new_name")),
    ("POST", "experiments/update", {"new_name": "x"}, 400, _missing("experiment_id")),
    ("POST", "experiments/set-experiment-tag", {"experiment_id": "EXP", "value": "v"}, 400,
     _missing("key")),
    ("POST", "runs/create", {"experiment_id": 123}, 400,
     _type_error("experiment_id", "123", "int")),
    ("POST", "runs/create", {"experiment_id": "EXP", "start_time": "abc"}, 400,
     _type_error("start_time", '"abc"', "str")),
    ("GET", "runs/get", {}, 400, _missing("run_id")),
    ("GET", "runs/get", {"run_id": "nope"}, 404, "Run with id=nope not found"),
    ("POST", "runs/update", {}, 400, _missing("run_id")),
    ("POST", "runs/delete", {}, 400, _missing("run_id")),
    ("POST", "runs/delete", {"run_id": "nope"}, 404, "Run with id=nope not found"),
    ("POST", "runs/set-tag", {"run_id": "RUN", "value": "v"}, 400, _missing("key")),
    ("POST", "runs/set-tag", {"run_id": "RUN", "key": "k" * 251, "value": "v"}, 400,
     "'key' exceeds the maximum length of 250 characters"),
    ("POST", "runs/set-tag", {"run_id": "RUN", "key": "k", "value": 5}, 400,
     _type_error("value", "5", "int")),
    ("POST", "runs/set-tag", {"run_id": "RUN", "key": "../x", "value": "v"}, 400,
     _resolves("../x", "../x")),
    ("POST", "runs/set-tag", {"run_id": "RUN", "key": "a/../b", "value": "v"}, 400,
     _resolves("a/../b", "b")),
    ("POST", "runs/log-parameter", {"run_id": "RUN", "key": "/abs", "value": "v"}, 400,
     _resolves("/abs", "/abs")),
    ("POST", "runs/delete-tag", {"run_id": "RUN"}, 400, _missing("key")),
    ("POST", "runs/delete-tag", {"run_id": "RUN", "key": "absent"}, 404,
     "No tag with name: absent in run with id RUN"),
    ("POST", "runs/log-parameter", {"run_id": "RUN", "value": "v"}, 400, _missing("key")),
    ("POST", "runs/log-parameter", {"run_id": "RUN", "key": "k" * 251, "value": "v"}, 400,
     "'Param key' exceeds the maximum length of 250 characters"),
    ("POST", "runs/log-parameter", {"run_id": "RUN", "key": "num", "value": 5}, 400,
     _type_error("value", "5", "int")),
    ("POST", "runs/log-parameter", {"key": "k", "value": "v"}, 400, _missing("run_id")),
    ("POST", "runs/log-parameter", {"run_id": "nope", "key": "k", "value": "v"}, 404,
     "Run with id=nope not found"),
    ("POST", "runs/log-metric", {"run_id": "RUN", "key": "m", "value": "abc", "timestamp": 1},
     400, _type_error("value", '"abc"', "str")),
    ("POST", "runs/log-metric", {"run_id": "RUN", "key": "m", "timestamp": 1}, 400,
     _missing("value")),
    ("POST", "runs/log-metric", {"run_id": "RUN", "value": 1.0, "timestamp": 1}, 400,
     _missing("key")),
    ("POST", "runs/log-metric", {"run_id": "RUN", "key": "m", "value": 1.0, "timestamp": "x"},
     400, _type_error("timestamp", '"x"', "str")),
    ("POST", "runs/search", {"max_results": 0}, 400,
     "Invalid value 0 for parameter 'max_results' supplied. It must be a positive integer"),
    ("POST", "runs/search", {"max_results": 50001}, 400,
     _type_error("max_results", "50001", "int")),
    ("POST", "runs/search", {"experiment_ids": "EXP"}, 400,
     _type_error("experiment_ids", '"EXP"', "str")),
    ("GET", "metrics/get-history", {"run_id": "RUN"}, 400, _missing("metric_key")),
    ("GET", "metrics/get-history", {"metric_key": "m"}, 400, _missing("run_id")),
]


@pytest.fixture
def ids(base):
    """(url, experiment id, run id) on each backend."""
    eid = _create(base)
    run = _post(base, "runs/create", {"experiment_id": eid}).json()["run"]["info"]["run_id"]
    return base, eid, run


def _fill(value, eid: str, run_id: str):
    if isinstance(value, dict):
        return {k: _fill(v, eid, run_id) for k, v in value.items()}
    if isinstance(value, str):
        return {"EXP": eid, "RUN": run_id, "NEW": _name()}.get(value, value)
    return value


@pytest.mark.parametrize("method, route, body, status, message", ANSWERS,
                         ids=[f"{a[1]}-{i}" for i, a in enumerate(ANSWERS)])
def test_errors_are_worded_as_on_mlflow(ids, method, route, body, status, message):
    url, eid, run_id = ids
    body = _fill(body, eid, run_id)
    r = (_post(url, route, body) if method == "POST" else _get(url, route, body))
    code, error_class = (("INVALID_PARAMETER_VALUE", "INVALID_PARAMETER_VALUE") if status == 400
                         else ("RESOURCE_DOES_NOT_EXIST", "RESOURCE_NOT_FOUND"))
    expected = message.replace("RUN", run_id).replace('"EXP"', f'"{eid}"')
    assert (r.status_code, r.json()) == (status, {"error_code": code, "message": expected,
                                                  "sqlstate": "KAM00",
                                                  "error_class": error_class})
