"""The artifact proxy's free paths and the MLflow UI's artifact, bulk-history and data set
routes, on a local store and on PostgreSQL, each answer checked against what ``mlflow
server`` 3.17.2 (``--backend-store-uri sqlite:///… --artifacts-destination … --serve-artifacts``)
answered to the same request (issue #16):

- ``PUT /api/2.0/mlflow-artifacts/artifacts/<any path>``: 200, and GET and list answer it
  back (a second PUT replaces the file); a missing file is 404 RESOURCE_DOES_NOT_EXIST
  "No such artifact: '<path>'"; a directory is 400 ``{"detail": "Artifact path refers to a
  directory, not a file: '<path>'"}``; a PUT ending in ``/`` is 400 ``{"detail": "Artifact
  path must include a filename (cannot end with '/')."}``; listing a file or nothing: ``{}``.
- Downloads: MLflow's MIME types (``text/plain`` for .txt, .json, .yaml, .csv, MLmodel, …;
  ``text/html`` for .html; ``application/octet-stream`` for no extension and MLproject),
  never with a charset, ``attachment; filename=…`` quoted as werkzeug quotes, ``nosniff``.
- ``GET /get-artifact?path=&run_uuid=``: the file, ``cache-control: no-cache``; no ``path``:
  400 with Flask's HTML page; no run: 404 "Run with id=None not found"; a directory (or
  ``path=``): 400 INVALID_PARAMETER_VALUE "Artifact path refers to a directory, not a file:
  '<experiment>/<run>/artifacts/<path>'"; a missing file: 404 "No such artifact: '…'".
- ``POST /ajax-api/2.0/mlflow/upload-artifact?run_uuid=&path=``: 200, ``application/json``,
  empty body; checks run_uuid, path, "Invalid path", size (10 MB), data, then the run.
- ``GET /ajax-api/2.0/mlflow/logged-models/<id>/artifacts/files?artifact_file_path=``: the
  file; without the parameter 400 BAD_REQUEST.
- ``GET /ajax-api/2.0/mlflow/metrics/get-history-bulk?run_id=…&metric_key=``: points by run
  id then (timestamp, step, value), unknown runs skipped, ``max_results`` cut.
- ``POST /ajax-api/2.0/mlflow/experiments/search-datasets``: ``dataset_summaries``, ``{}``
  when none; 400s for no ids, over 20 ids, a Content-Type other than JSON.
- The four ajax routes are 404 under ``/api/2.0/mlflow``.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

mlflow = pytest.importorskip("mlflow")
httpx = pytest.importorskip("httpx")
from mlflow import MlflowClient  # noqa: E402

BACKENDS = ["local", pytest.param("postgres", marks=pytest.mark.postgres)]
FILES = "/api/2.0/mlflow-artifacts/artifacts"
AJAX = "/ajax-api/2.0/mlflow"


@pytest.fixture(params=BACKENDS)
def base(request, monkeypatch):
    """The URL of a Cairn server (shared by the module) on each backend, the mlflow client
    pointed at it."""
    if request.param == "local":
        yield request.getfixturevalue("url")
        return
    url = request.getfixturevalue("pg_server")[0]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    mlflow.set_tracking_uri(url)
    yield url
    mlflow.set_tracking_uri(None)


@pytest.fixture
def http(base):
    with httpx.Client(base_url=base, timeout=30) as client:
        yield client


def _uid() -> str:
    return uuid.uuid4().hex[:8]


def _error(r: httpx.Response, status: int, code: str, message: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert (body["error_code"], body["message"]) == (code, message)


def _detail(r: httpx.Response, message: str) -> None:
    assert r.status_code == 400, r.text
    assert r.json() == {"detail": message}


def _run(base: str) -> tuple[MlflowClient, str, str]:
    client = MlflowClient(base)
    exp = client.create_experiment(f"drop-in-art-{_uid()}")
    return client, exp, client.create_run(exp).info.run_id


# -- free paths of the artifact proxy -----------------------------------------------------

def test_any_path_is_stored_listed_and_downloaded(http):
    top = f"free-{_uid()}"
    assert http.put(f"{FILES}/{top}/dir/x.txt", content=b"hello").status_code == 200
    assert http.put(f"{FILES}/{top}/b.bin", content=b"\x00\x01").status_code == 200
    got = http.get(f"{FILES}/{top}/dir/x.txt")
    assert (got.status_code, got.content) == (200, b"hello")
    assert got.headers["content-type"] == "text/plain"
    assert got.headers["content-disposition"] == "attachment; filename=x.txt"
    assert got.headers["x-content-type-options"] == "nosniff"
    assert http.get(f"{FILES}/{top}/b.bin").headers["content-type"] == "application/octet-stream"
    assert http.get(FILES, params={"path": top}).json() == {"files": [
        {"path": "b.bin", "is_dir": False, "file_size": 2}, {"path": "dir", "is_dir": True}]}
    assert http.get(FILES, params={"path": f"{top}/dir"}).json() == {"files": [
        {"path": "x.txt", "is_dir": False, "file_size": 5}]}
    assert {"path": top, "is_dir": True} in http.get(FILES).json()["files"]
    assert http.get(FILES, params={"path": f"{top}/dir/x.txt"}).json() == {}  # a file
    assert http.get(FILES, params={"path": f"{top}/nope"}).json() == {}
    # a second PUT replaces the file
    assert http.put(f"{FILES}/{top}/dir/x.txt", content=b"two2").status_code == 200
    assert http.get(f"{FILES}/{top}/dir/x.txt").content == b"two2"


def test_free_path_errors(http):
    top = f"free-{_uid()}"
    http.put(f"{FILES}/{top}/dir/x.txt", content=b"x")
    _error(http.get(f"{FILES}/{top}/nope.txt"), 404, "RESOURCE_DOES_NOT_EXIST",
           f"No such artifact: '{top}/nope.txt'")
    _detail(http.get(f"{FILES}/{top}/dir"),
            f"Artifact path refers to a directory, not a file: '{top}/dir'")
    _detail(http.put(f"{FILES}/{top}/dir/", content=b"x"),
            "Artifact path must include a filename (cannot end with '/').")


def test_run_shaped_path_of_no_run_is_stored(http):
    # mlflow server keeps it like any path; it is no run's, so it lands in the free area
    path = f"1/{uuid.uuid4().hex}/artifacts/k.txt"
    assert http.put(f"{FILES}/{path}", content=b"kk").status_code == 200
    assert http.get(f"{FILES}/{path}").content == b"kk"
    assert http.get(FILES, params={"path": path.rsplit("/", 1)[0]}).json() == {
        "files": [{"path": "k.txt", "is_dir": False, "file_size": 2}]}


def test_the_client_logs_and_reads_a_free_location(base, tmp_path):
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    (tmp_path / "up").mkdir()
    (tmp_path / "up" / "conf.yaml").write_text("a: 1")
    repo = get_artifact_repository(f"mlflow-artifacts:/free-{_uid()}/models")
    repo.log_artifacts(str(tmp_path / "up"), "m")
    assert [(f.path, f.is_dir) for f in repo.list_artifacts()] == [("m", True)]
    assert [(f.path, f.file_size) for f in repo.list_artifacts("m")] == [("m/conf.yaml", 4)]
    (tmp_path / "down").mkdir()
    out = repo.download_artifacts("m/conf.yaml", str(tmp_path / "down"))
    assert Path(out).read_text() == "a: 1"


# What mlflow server sent as Content-Type for each name.
MIME = {
    "a.txt": "text/plain", "a.json": "text/plain", "a.yaml": "text/plain", "a.yml": "text/plain",
    "a.csv": "text/plain", "a.tsv": "text/plain", "a.py": "text/plain", "a.md": "text/plain",
    "a.log": "text/plain", "a.xml": "text/plain", "a.js": "text/plain", "a.ipynb": "text/plain",
    "a.TXT": "text/plain", "MLmodel": "text/plain", "x.MLmodel": "text/plain",
    "MLproject": "application/octet-stream", "noext": "application/octet-stream",
    "a.html": "text/html", "a.htm": "text/html", "a.png": "image/png", "a.jpg": "image/jpeg",
    "a.svg": "image/svg+xml", "a.pdf": "application/pdf", "a.zip": "application/zip",
    "a.pkl": "application/octet-stream", "a.parquet": "application/octet-stream",
    "a.gz": "application/octet-stream", "a.tar.gz": "application/x-tar",
    "a.npy": "application/octet-stream", "a.mlmodel": "application/octet-stream",
}
# What mlflow server sent as Content-Disposition for each name.
DISPOSITION = {
    "a b.txt": 'attachment; filename="a b.txt"',
    'q"x.txt': 'attachment; filename="q\\"x.txt"',
    "é.txt": "attachment; filename=e.txt; filename*=UTF-8''%C3%A9.txt",
    "日本語": "attachment; filename=download; filename*=UTF-8''%E6%97%A5%E6%9C%AC%E8%AA%9E",
    "a;b.csv": 'attachment; filename="a;b.csv"',
    "x(1).png": 'attachment; filename="x(1).png"',
}


def test_downloads_carry_mlflow_types_and_names(http):
    top = f"mime-{_uid()}"
    for name in [*MIME, *DISPOSITION]:
        assert http.put(f"{FILES}/{top}/{name}", content=b"data").status_code == 200
    for name, expected in MIME.items():
        got = http.get(f"{FILES}/{top}/{name}")
        assert got.headers["content-type"] == expected, name
    for name, expected in DISPOSITION.items():
        assert http.get(f"{FILES}/{top}/{name}").headers["content-disposition"] == expected


def test_run_artifacts_keep_their_place(base, http, tmp_path):
    client, exp, run_id = _run(base)
    (tmp_path / "m.json").write_text("{}")
    client.log_artifact(run_id, str(tmp_path / "m.json"), "d")
    got = http.get(f"{FILES}/{exp}/{run_id}/artifacts/d/m.json")
    assert (got.content, got.headers["content-type"]) == (b"{}", "text/plain")
    _error(http.get(f"{FILES}/{exp}/{run_id}/artifacts/d/nope"), 404, "RESOURCE_DOES_NOT_EXIST",
           f"No such artifact: '{exp}/{run_id}/artifacts/d/nope'")
    _detail(http.get(f"{FILES}/{exp}/{run_id}/artifacts/d"),
            f"Artifact path refers to a directory, not a file: '{exp}/{run_id}/artifacts/d'")
    assert [f.path for f in client.list_artifacts(run_id, "d")] == ["d/m.json"]


# -- GET /get-artifact ----------------------------------------------------------------------

def test_get_artifact(base, http, tmp_path):
    client, exp, run_id = _run(base)
    (tmp_path / "a.txt").write_text("hello")
    client.log_artifact(run_id, str(tmp_path / "a.txt"))
    client.log_artifact(run_id, str(tmp_path / "a.txt"), "sub")
    for key in ("run_uuid", "run_id"):
        got = http.get("/get-artifact", params={"path": "sub/a.txt", key: run_id})
        assert (got.status_code, got.content) == (200, b"hello")
        assert got.headers["content-type"] == "text/plain"
        assert got.headers["content-disposition"] == "attachment; filename=a.txt"
        assert got.headers["cache-control"] == "no-cache"
    root = f"{exp}/{run_id}/artifacts"
    bad = http.get("/get-artifact", params={"run_uuid": run_id})
    assert (bad.status_code, bad.headers["content-type"]) == (400, "text/html; charset=utf-8")
    assert "<title>400 Bad Request</title>" in bad.text
    _error(http.get("/get-artifact", params={"path": "a.txt"}), 404, "RESOURCE_DOES_NOT_EXIST",
           "Run with id=None not found")
    _error(http.get("/get-artifact", params={"path": "a.txt", "run_uuid": "0" * 32}), 404,
           "RESOURCE_DOES_NOT_EXIST", f"Run with id={'0' * 32} not found")
    _error(http.get("/get-artifact", params={"path": "../x", "run_uuid": run_id}), 400,
           "INVALID_PARAMETER_VALUE", "Invalid path")
    _error(http.get("/get-artifact", params={"path": "sub", "run_uuid": run_id}), 400,
           "INVALID_PARAMETER_VALUE", f"Artifact path refers to a directory, not a file: "
                                      f"'{root}/sub'")
    _error(http.get("/get-artifact", params={"path": "", "run_uuid": run_id}), 400,
           "INVALID_PARAMETER_VALUE", f"Artifact path refers to a directory, not a file: "
                                      f"'{root}/'")
    _error(http.get("/get-artifact", params={"path": "nope.txt", "run_uuid": run_id}), 404,
           "RESOURCE_DOES_NOT_EXIST", f"No such artifact: '{root}/nope.txt'")
    assert http.post("/get-artifact", params={"path": "a.txt", "run_uuid": run_id}
                     ).status_code == 405


# -- POST /ajax-api/2.0/mlflow/upload-artifact ----------------------------------------------

def test_upload_artifact(base, http):
    client, _, run_id = _run(base)
    up = f"{AJAX}/upload-artifact"
    r = http.post(up, params={"run_uuid": run_id, "path": "up/x.json"}, content=b'{"a":1}')
    assert (r.status_code, r.headers["content-type"], r.content) == (200, "application/json",
                                                                      b"")
    assert [(f.path, f.file_size) for f in client.list_artifacts(run_id, "up")] == [
        ("up/x.json", 7)]
    assert http.get("/get-artifact", params={"path": "up/x.json", "run_uuid": run_id}
                    ).content == b'{"a":1}'
    bad = "INVALID_PARAMETER_VALUE"
    _error(http.post(up, params={"path": "x"}, content=b"x"), 400, bad,
           "Request must specify run_uuid.")
    _error(http.post(up, params={"run_id": run_id, "path": "x"}, content=b"x"), 400, bad,
           "Request must specify run_uuid.")
    _error(http.post(up, params={"run_uuid": run_id}, content=b"x"), 400, bad,
           "Request must specify path.")
    _error(http.post(up, params={"run_uuid": run_id, "path": "../x"}, content=b"x"), 400, bad,
           "Invalid path")
    _error(http.post(up, params={"run_uuid": run_id, "path": "x"}), 400, bad,
           "Request must specify data.")
    _error(http.post(up, params={"run_uuid": run_id, "path": "f"}, data={"a": "b"}), 400, bad,
           "Request must specify data.")
    _error(http.post(up, params={"run_uuid": run_id, "path": "big"},
                     content=b"x" * (10 * 1024 * 1024 + 1)), 400, bad,
           "Artifact size is too large. Max size is 10MB.")
    _error(http.post(up, params={"run_uuid": "0" * 32, "path": "x"}, content=b"x"), 404,
           "RESOURCE_DOES_NOT_EXIST", f"Run with id={'0' * 32} not found")


# -- a logged model's file -----------------------------------------------------------------

def test_logged_model_file(base, http, tmp_path):
    client, exp, run_id = _run(base)
    (tmp_path / "MLmodel").write_text("flavors: {}")
    (tmp_path / "a.txt").write_text("hello")
    model = client.create_logged_model(exp, source_run_id=run_id, name="lm")
    client.log_model_artifacts(model.model_id, str(tmp_path))
    files = f"{AJAX}/logged-models/{model.model_id}/artifacts/files"
    got = http.get(files, params={"artifact_file_path": "MLmodel"})
    assert (got.status_code, got.content) == (200, b"flavors: {}")
    assert got.headers["content-type"] == "text/plain"
    assert got.headers["content-disposition"] == "attachment; filename=MLmodel"
    root = model.artifact_location.split(":/", 1)[1]
    _error(http.get(files, params={"artifact_file_path": "nope"}), 404,
           "RESOURCE_DOES_NOT_EXIST", f"No such artifact: '{root}/nope'")
    _error(http.get(files), 400, "BAD_REQUEST",
           'Request must include the "artifact_file_path" query parameter.')
    _error(http.get(files, params={"artifact_file_path": "../x"}), 400,
           "INVALID_PARAMETER_VALUE", "Invalid path")
    _error(http.get(f"{AJAX}/logged-models/m-0000/artifacts/files",
                    params={"artifact_file_path": "a.txt"}), 404, "RESOURCE_DOES_NOT_EXIST",
           "Logged model with ID 'm-0000' not found.")


# -- metrics/get-history-bulk -------------------------------------------------------------

def test_get_history_bulk(base, http):
    client, exp, run_a = _run(base)
    run_b = client.create_run(exp).info.run_id
    for s in range(5):
        client.log_metric(run_a, "m", s * 1.5, step=s, timestamp=1000 + s)
    client.log_metric(run_b, "m", 7.0, step=0, timestamp=500)
    bulk = f"{AJAX}/metrics/get-history-bulk"

    def points(*extra):
        r = http.get(bulk, params=[("run_id", run_a), ("run_id", run_b), ("metric_key", "m"),
                                   *extra])
        assert r.status_code == 200, r.text
        return [(m["run_id"], m["step"], m["timestamp"], m["value"]) for m in r.json()["metrics"]]

    expected = sorted([(run_a, s, 1000 + s, s * 1.5) for s in range(5)]
                      + [(run_b, 0, 500, 7.0)])
    assert points() == expected
    assert points(("max_results", "3")) == expected[:3]
    assert points(("max_results", "0")) == []
    assert points(("max_results", "-1")) == expected[:-1]  # SQLite's LIMIT -1, then [:-1]
    ghost = http.get(bulk, params={"run_id": "0" * 32, "metric_key": "m"})
    assert ghost.json() == {"metrics": []}
    assert http.get(bulk, params={"run_id": run_a, "metric_key": "zz"}).json() == {"metrics": []}
    bad = "INVALID_PARAMETER_VALUE"
    _error(http.get(bulk, params={"metric_key": "m"}), 400, bad,
           "GetMetricHistoryBulk request must specify at least one run_id.")
    _error(http.get(bulk, params={"run_ids": run_a, "metric_key": "m"}), 400, bad,
           "GetMetricHistoryBulk request must specify at least one run_id.")
    _error(http.get(bulk, params={"run_id": run_a}), 400, bad,
           "GetMetricHistoryBulk request must specify a metric_key.")
    _error(http.get(bulk, params=[("run_id", run_a)] * 101 + [("metric_key", "m")]), 400, bad,
           "GetMetricHistoryBulk request cannot specify more than 100 run_ids. Received 101 "
           "run_ids.")


# -- experiments/search-datasets ------------------------------------------------------------

def test_search_datasets(base, http):
    from mlflow.entities import Dataset, DatasetInput, InputTag

    client, exp, run_id = _run(base)
    search = f"{AJAX}/experiments/search-datasets"
    assert http.post(search, json={"experiment_ids": [exp]}).json() == {}
    train = DatasetInput(Dataset("dsname", "2981c147", "local", "{}"),
                         [InputTag("mlflow.data.context", "training")])
    other = DatasetInput(Dataset("other", "c247459b", "local", "{}"), [])
    client.log_inputs(run_id, [train, other])
    r = http.post(search, json={"experiment_ids": [exp]})
    assert r.status_code == 200
    assert sorted(r.json()["dataset_summaries"], key=lambda s: s["name"]) == [
        {"experiment_id": exp, "name": "dsname", "digest": "2981c147", "context": "training"},
        {"experiment_id": exp, "name": "other", "digest": "c247459b"}]
    assert http.post(search, json={"experiment_ids": ["999999"]}).json() == {}
    bad = "INVALID_PARAMETER_VALUE"
    _error(http.post(search, json={}), 400, bad,
           "SearchDatasets request must specify at least one experiment_id.")
    _error(http.post(search, json={"experiment_ids": "x"}), 400, bad,
           "SearchDatasets request must specify at least one experiment_id.")
    _error(http.post(search, json={"experiment_ids": [exp] * 21}), 400, bad,
           "SearchDatasets request cannot specify more than 20 experiment_ids. Received 21 "
           "experiment_ids.")
    _error(http.post(search, content=b'{"experiment_ids": ["1"]}',
                     headers={"content-type": "text/plain"}), 400, bad,
           "Bad Request. Content-Type must be one of ['application/json'].")


@pytest.mark.parametrize("method,path", [
    ("POST", "/upload-artifact"), ("GET", "/logged-models/m-x/artifacts/files"),
    ("GET", "/metrics/get-history-bulk"), ("POST", "/experiments/search-datasets"),
])
def test_ajax_routes_are_not_under_the_rest_prefix(http, method, path):
    # mlflow server: 404 under /api/2.0/mlflow; 405 for another method under /ajax-api
    assert http.request(method, f"/api/2.0/mlflow{path}").status_code == 404
    other = "GET" if method == "POST" else "POST"
    assert http.request(other, f"{AJAX}{path}").status_code == 405


# -- permissions of free paths (auth on) ----------------------------------------------------

@pytest.fixture(params=BACKENDS)
def authed(request, tmp_path):
    """(TestClient with auth on, experiment id, {role: token}) on each backend."""
    from fastapi.testclient import TestClient

    from cairn.server import ServerSettings, create_app

    if request.param == "local":
        from cairn.store.local import LocalStore

        store = LocalStore(tmp_path / "store")
    else:
        from pg_fixtures import create_schema

        from cairn.cas import ObjectStore
        from cairn.store.sql.store import SqlStore

        store = SqlStore(create_schema(request.getfixturevalue("pg_database")),
                         ObjectStore.local(tmp_path / "objects"))
    admin = "cairn_drop-in-artifacts-admin-token-0001"
    app = create_app(store, settings=ServerSettings(auth=True, bootstrap_token=admin,
                                                    bootstrap_user="root", audit=False))
    try:
        with TestClient(app) as client:
            app.state.cairn.start()
            root = {"authorization": f"Bearer {admin}"}
            exp = client.post("/api/2.0/mlflow/experiments/create", headers=root,
                              json={"name": "E"}).json()["experiment_id"]
            db = app.state.cairn.auth_db
            tokens = {"root": admin}
            for role in ("nobody", "viewer", "editor"):
                db.create_user(role, created_by="test")
                tokens[role] = db.create_token(role, "t")[1]
                if role != "nobody":
                    db.grant(role, "experiment", exp, role, granted_by="test")
            yield client, exp, tokens
    finally:
        store.close()


def test_free_paths_need_the_role_on_their_experiment_or_somewhere(authed):
    client, exp, tokens = authed

    def call(method, path, who, **kw):
        return client.request(method, path, headers={"authorization": f"Bearer {tokens[who]}"},
                              **kw).status_code

    for top in (f"{exp}/models/m-1", "server-wide"):
        path = f"{FILES}/{top}/f.txt"
        assert call("PUT", path, "nobody", content=b"x") == 403
        assert call("PUT", path, "viewer", content=b"x") == 403
        assert call("PUT", path, "editor", content=b"x") == 200
        assert call("GET", path, "nobody") == 403
        assert call("GET", path, "viewer") == 200
        assert call("GET", FILES, "nobody", params={"path": top}) == 403
        assert call("GET", FILES, "viewer", params={"path": top}) == 200
    assert client.get(f"{FILES}/server-wide/f.txt").status_code == 401


def test_concurrent_puts_of_one_free_path_all_succeed(base):
    # mlflow server answers each PUT 200 and keeps the last; on PostgreSQL two of Cairn's
    # writers once both passed the checks and the second failed on the key (a 400 naming
    # the database's duplicate key).  A file and a directory of one name racing: one wins.
    import threading

    top = f"race-{_uid()}"
    same_path: list[httpx.Response] = []
    clashing: list[httpx.Response] = []

    def put(i: int) -> None:
        with httpx.Client(base_url=base, timeout=30) as h:
            for j in range(8):
                same_path.append(h.put(f"{FILES}/{top}/x.txt", content=f"{i}-{j}".encode()))
                clashing.append(h.put(f"{FILES}/{top}/{'d' if i % 2 else 'd/f'}",
                                      content=b"z"))

    threads = [threading.Thread(target=put, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in same_path] == [200] * len(same_path), \
        [r.text for r in same_path if r.status_code != 200][:3]
    assert {r.status_code for r in clashing} <= {200, 400} and \
        any(r.status_code == 200 for r in clashing)
    assert not [r.text for r in same_path + clashing if "duplicate key" in r.text]
    with httpx.Client(base_url=base, timeout=30) as h:
        last = h.get(f"{FILES}/{top}/x.txt")
        assert last.status_code == 200 and last.text.endswith("-7")
        d_file = h.get(f"{FILES}/{top}/d").status_code == 200
        d_dir = bool(h.get(FILES, params={"path": f"{top}/d"}).json().get("files"))
    assert d_file != d_dir  # "d" is a file or a directory, never both


def test_a_free_directory_is_written_only_by_the_user_who_made_it(authed):
    """An editor somewhere may upload to a new server-wide directory, and then owns it:
    another editor cannot replace or add files under it (an admin can), and reading stays
    open to every role holder."""
    client, exp, tokens = authed
    db = client.app.state.cairn.auth_db
    db.create_user("editor2", created_by="test")
    tokens["editor2"] = db.create_token("editor2", "t")[1]
    db.grant("editor2", "experiment", exp, "editor", granted_by="test")

    def call(method, path, who, **kw):
        return client.request(method, path, headers={"authorization": f"Bearer {tokens[who]}"},
                              **kw)

    mine = f"{FILES}/alice-space/model.bin"
    assert call("PUT", mine, "editor", content=b"original").status_code == 200
    refused = call("PUT", mine, "editor2", content=b"replaced")
    assert refused.status_code == 403 and "another user's" in refused.json()["message"]
    assert call("PUT", f"{FILES}/alice-space/extra.txt", "editor2", content=b"x").status_code == 403
    assert call("GET", mine, "editor2").content == b"original"  # nothing changed
    assert call("GET", FILES, "viewer", params={"path": "alice-space"}).json()["files"] == [
        {"path": "model.bin", "is_dir": False, "file_size": 8}]
    assert call("PUT", mine, "editor", content=b"second").status_code == 200  # the owner may
    assert call("PUT", mine, "root", content=b"by admin").status_code == 200  # and an admin
    assert call("GET", mine, "viewer").content == b"by admin"
    # Another user's own new directory is theirs; an experiment's path stays its role's.
    assert call("PUT", f"{FILES}/bob-space/f", "editor2", content=b"b").status_code == 200
    assert call("PUT", f"{FILES}/{exp}/models/m-9/f", "editor2", content=b"e").status_code == 200
    assert call("PUT", f"{FILES}/{exp}/models/m-9/f", "editor", content=b"e2").status_code == 200
