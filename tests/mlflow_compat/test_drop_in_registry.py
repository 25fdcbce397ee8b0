"""Drop-in answers of the model registry, each checked against what ``mlflow server`` 3.17.2
(``mlflow server --backend-store-uri sqlite:///…``, proxied artifacts) answered to the same
requests (issue #16), on a local store and on PostgreSQL.

Sources of ``model-versions/create`` (mlflow server's checks, ``handlers._validate_source_run``):

- ``runs:/<id>/model`` with ``run_id=<id>``: 200 whether or not ``<id>`` is a run of this
  server (its ``run_id`` is kept); without ``run_id`` or with another: 400
  ``INVALID_PARAMETER_VALUE`` "Invalid model version source: '…'. The run_id request parameter
  must identify the resource that contains the source.";
- a run of this server whose files are not logged yet: 200;
- any other URI (``s3://…``), with or without ``run_id``: 200, and ``get-download-uri`` answers
  the source itself; ``..``, ``.``, a NUL or no path: 400 "… an absolute path must be provided
  without relative path references present. Please provide an absolute path.";
  ``http(s)://``, ``ftp://``… : 400 "'source' cannot use the 'http' scheme: …";
- a local path (plain or ``file://``): 400 "… To use a local path as a model version source,
  the run_id request parameter has to be specified and the local path has to be contained
  within the artifact directory of the run specified by the run_id.", unless it lies in the
  run's artifact directory (Cairn: a path ending ``<run id>/artifacts/…``);
- ``mlflow-artifacts:/…``: only inside the ``run_id``'s own artifacts;
- ``models:/<name>/<N>`` (or ``@alias``, ``/latest``): 200, recorded as ``models:/<name>/<N>``
  with that version's ``run_id``; an unknown model 404.

Deletes and renames:

- ``model-versions/delete``: 200 ``{}``; again: 404 ``RESOURCE_DOES_NOT_EXIST`` "Model Version
  (name=…, version=2) not found"; version ``x``: 400 "Parameter 'version' must be an integer,
  got 'x'."; the numbers of deleted versions are never given again;
- ``registered-models/delete``: 200, again 404 "Registered Model with name=… not found"; a
  model created again under that name numbers its versions from 1;
- ``registered-models/rename``: 200 with the model; onto an existing name 400
  ``RESOURCE_ALREADY_EXISTS`` "Registered Model (name=…) already exists."; ``a/b``: 400 "Invalid
  model name 'a/b'. Names cannot contain '/' or ':'."; onto itself: 200; afterwards the old
  name is 404 and ``models:/<new>/1`` loads.

Where Cairn differs on purpose: a version in Production (or in a Staging whose policy needs
approvals) or with an alias is not deleted (400 ``INVALID_STATE``; mlflow server deletes it);
a version whose files Cairn does not hold has none, and says where they are.
"""

from __future__ import annotations

import uuid

import pytest

mlflow = pytest.importorskip("mlflow")
httpx = pytest.importorskip("httpx")
from mlflow import MlflowClient  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # stages are deprecated

API = "/api/2.0/mlflow"
BACKENDS = ["local", pytest.param("postgres", marks=pytest.mark.postgres)]
NOT_ABSOLUTE = ("If supplying a source as an http, https, local file path, ftp, objectstore, or "
                "mlflow-artifacts uri, an absolute path must be provided without relative path "
                "references present. Please provide an absolute path.")
LOCAL = ("To use a local path as a model version source, the run_id request parameter has to "
         "be specified and the local path has to be contained within the artifact directory "
         "of the run specified by the run_id.")
MUST_CONTAIN = "The run_id request parameter must identify the resource that contains the source."


@pytest.fixture(params=BACKENDS)
def srv(request, monkeypatch):
    """(url, store) of a Cairn server (one per module) on each backend."""
    if request.param == "local":
        request.getfixturevalue("url")
        return request.getfixturevalue("server")
    url, store = request.getfixturevalue("pg_server")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    mlflow.set_tracking_uri(url)
    mlflow.set_registry_uri(url)
    return url, store


def _client(url: str) -> MlflowClient:
    return MlflowClient(url, registry_uri=url)  # not a registry URI another test set


def _registry(store, user: str = "admin"):
    from cairn.registry import Registry

    return Registry(store, user)


def _call(url: str, method: str, route: str, body: dict | None = None,
          params: dict | None = None) -> httpx.Response:
    return httpx.request(method, f"{url}{API}/{route}", json=body, params=params, timeout=30)


def _fails(response: httpx.Response, status: int, code: str, message: str | None = None) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error_code"] == code, body
    if message is not None:
        assert body["message"] == message
    return body["message"]


def _model(client: MlflowClient, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    return name


def _run_with_files(client: MlflowClient, path: str = "model") -> tuple[str, str]:
    """(experiment id, run id) of a run that logged ``<path>/MLmodel``."""
    exp = client.create_experiment(f"drop-in-registry-{uuid.uuid4().hex[:8]}")
    run = client.create_run(exp).info.run_id
    client.log_text(run, "flavors: {}\n", f"{path}/MLmodel")
    return exp, run


def _create(url: str, name: str, source: str, **fields) -> httpx.Response:
    return _call(url, "POST", "model-versions/create", {"name": name, "source": source, **fields})


# -- sources -------------------------------------------------------------------------
def test_a_run_of_another_server_is_kept_as_an_external_run(srv):
    url, store = srv
    client = _client(url)
    name = _model(client, "external")
    ext = uuid.uuid4().hex
    mv = client.create_model_version(name, f"runs:/{ext}/model", run_id=ext)
    assert (mv.version, mv.run_id, mv.source) == ("1", ext, f"runs:/{ext}/model")
    assert client.get_model_version_download_uri(name, "1") == f"runs:/{ext}/model"
    found = client.search_model_versions(f"run_id = '{ext}'")
    assert [(v.name, v.version) for v in found] == [(name, "1")]

    # Cairn: the link is kept, marked external; the version holds no files, and says so.
    from cairn.errors import NotFound
    from cairn.lineage import Lineage

    reg = _registry(store)
    cv = reg.get_model_version(name, "1.0.0")
    assert cv.source_run_id == ext
    assert cv.lineage["run"] == {"id": ext, "external": True}
    assert cv.lineage["source"] == {"uri": f"runs:/{ext}/model", "files": False}
    assert [e.path for e in store.objects.get_tree(cv.tree_oid)] == ["cairn-model.json"]
    assert [r.problems for r in reg.verify_model_versions(name)] == [()]
    with pytest.raises(NotFound, match="holds no files"):
        reg.load_model(f"{name}/1.0.0")
    graph = Lineage(store, "admin").graph(f"model:{name}@1.0.0")
    assert graph.nodes[f"run:{ext}"].attrs == {"missing": True}
    back = Lineage(store, "admin").graph(f"run:{ext}", "downstream")
    assert f"model:{name}@1.0.0" in back.nodes


def test_a_runs_source_needs_its_run_id(srv):
    url, _ = srv
    name = _model(_client(url), "runs-source")
    ext = uuid.uuid4().hex
    for fields in ({}, {"run_id": uuid.uuid4().hex}):
        _fails(_create(url, name, f"runs:/{ext}/model", **fields), 400, "INVALID_PARAMETER_VALUE",
               f"Invalid model version source: 'runs:/{ext}/model'. {MUST_CONTAIN}")
    _fails(_create(url, name, "runs://host/x", run_id="host"), 400, "INVALID_PARAMETER_VALUE")
    _fails(_create(url, name, f"runs:/{ext}/../x", run_id=ext), 400, "INVALID_PARAMETER_VALUE",
           f"Invalid model version source: 'runs:/{ext}/../x'. {NOT_ABSOLUTE}")
    _fails(_create(url, name, f"runs:/{ext}/model", run_id="a b"), 400, "INVALID_PARAMETER_VALUE")
    assert _client(url).search_model_versions(f"name = '{name}'") == []


def test_files_a_run_logs_later_are_found_through_the_download_uri(srv, tmp_path):
    url, store = srv
    client = _client(url)
    name = _model(client, "not-yet")
    exp = client.create_experiment(f"not-yet-{uuid.uuid4().hex[:8]}")
    run = client.create_run(exp).info.run_id
    mv = client.create_model_version(name, f"runs:/{run}/model", run_id=run)
    assert (mv.version, mv.run_id) == ("1", run)
    cv = _registry(store).get_model_version(name, "1.0.0")
    assert cv.source_run_id == run and "run" in cv.lineage and not cv.lineage["run"].get("external")
    assert cv.lineage["source"]["files"] is False
    assert client.get_model_version_download_uri(name, "1") == \
        f"mlflow-artifacts:/{exp}/{run}/artifacts/model"
    client.log_text(run, "flavors: {}\n", "model/MLmodel")  # as mlflow server, found then
    out = mlflow.artifacts.download_artifacts(f"models:/{name}/1", dst_path=str(tmp_path))
    assert (tmp_path / "MLmodel").read_text() == "flavors: {}\n" and out


def test_a_runs_files_are_registered_with_their_digests(srv):
    url, store = srv
    client = _client(url)
    name = _model(client, "with-files")
    exp, run = _run_with_files(client)
    for source in (f"runs:/{run}/model", f"mlflow-artifacts:/{exp}/{run}/artifacts/model"):
        mv = client.create_model_version(name, source, run_id=run)
        assert (mv.run_id, mv.source) == (run, source)
    reg = _registry(store)
    for cv in reg.list_model_versions(name):
        files = {e.path: e.size for e in store.objects.get_tree(cv.tree_oid)}
        assert files["model/MLmodel"] == len("flavors: {}\n")
        assert "source" not in cv.lineage
    assert all(not r.problems for r in reg.verify_model_versions(name))
    other = uuid.uuid4().hex
    for fields in ({}, {"run_id": other}):
        _fails(_create(url, name, f"mlflow-artifacts:/{exp}/{run}/artifacts/model", **fields),
               400, "INVALID_PARAMETER_VALUE")


def test_local_paths_stand_for_the_runs_artifacts_and_nothing_is_read_from_disk(srv, tmp_path):
    url, store = srv
    client = _client(url)
    name = _model(client, "local")
    exp, run = _run_with_files(client)
    # The same layout on the server's disk, with other bytes: never what gets registered.
    on_disk = tmp_path / exp / run / "artifacts" / "model"
    on_disk.mkdir(parents=True)
    (on_disk / "MLmodel").write_text("read from the server's disk\n")
    (on_disk / "secret.txt").write_text("a file the run never logged\n")
    for source in (str(on_disk), on_disk.as_uri()):
        r = _create(url, name, source, run_id=run)
        assert r.status_code == 200, r.text
        assert r.json()["model_version"]["source"] == source
    reg = _registry(store)
    for cv in reg.list_model_versions(name):
        tree = {e.path: e for e in store.objects.get_tree(cv.tree_oid)}
        assert set(tree) == {"model/MLmodel", "cairn-model.json"}
        assert store.objects.read_bytes(tree["model/MLmodel"]) == b"flavors: {}\n"
    assert _client(url).get_model_version_download_uri(name, "1") == \
        f"mlflow-artifacts:/{exp}/{run}/artifacts/model"

    secret = tmp_path / "secret.txt"
    secret.write_text("server secret\n")
    for source, fields, shown in (
            (str(secret), {"run_id": run}, str(secret)),
            (secret.as_uri(), {"run_id": run}, str(secret)),
            (str(secret), {}, str(secret)),
            ("/etc/passwd", {"run_id": run}, "/etc/passwd"),
            (f"{on_disk}/../../../../secret.txt", {"run_id": run}, str(secret))):
        _fails(_create(url, name, source, **fields), 400, "INVALID_PARAMETER_VALUE",
               f"Invalid model version source: '{shown}'. {LOCAL}")
    _fails(_create(url, name, str(on_disk), run_id=uuid.uuid4().hex), 400,
           "INVALID_PARAMETER_VALUE", f"Invalid model version source: '{on_disk}'. {MUST_CONTAIN}")
    _fails(_create(url, name, "file://elsewhere/x", run_id=run), 400, "INVALID_PARAMETER_VALUE")
    assert len(reg.list_model_versions(name)) == 2


def test_other_uris_are_recorded_as_their_source(srv):
    url, store = srv
    client = _client(url)
    name = _model(client, "uris")
    _, run = _run_with_files(client)
    ext = uuid.uuid4().hex
    for i, (source, run_id) in enumerate((("s3://bucket/models/a", None),
                                          ("s3://bucket/models/b", run),
                                          ("gs://bucket/c", ext),
                                          ("s3://bucket/a//b", None)), start=1):
        mv = client.create_model_version(name, source, run_id=run_id)
        assert (mv.version, mv.source, mv.run_id) == (str(i), source, run_id or "")
        assert client.get_model_version_download_uri(name, mv.version) == source
    cv = _registry(store).get_model_version(name, "1.0.1")
    assert cv.source_run_id == run and cv.lineage["source"] == {"uri": "s3://bucket/models/b",
                                                                 "files": False}
    for bad in ("s3://bucket", "s3://bucket/", "s3:bucket/x", "s3://b/a/./b", "s3://b/%2E%2E/x",
                "s3://b/x%00"):
        _fails(_create(url, name, bad), 400, "INVALID_PARAMETER_VALUE",
               f"Invalid model version source: '{bad}'. {NOT_ABSOLUTE}")
    for bad, scheme in (("https://example.com/m", "https"), ("ftp://host/m", "ftp"),
                        ("mlflow-artifacts://host/1/r/artifacts/m", "mlflow-artifacts")):
        message = _fails(_create(url, name, bad, run_id=run), 400, "INVALID_PARAMETER_VALUE")
        assert message.startswith(f"'source' cannot use the '{scheme}' scheme")
    _fails(_create(url, name, ""), 400, "INVALID_PARAMETER_VALUE")


def test_a_registered_version_as_source(srv):
    url, _ = srv
    client = _client(url)
    name = _model(client, "chain")
    _, run = _run_with_files(client)
    client.create_model_version(name, f"runs:/{run}/model", run_id=run)
    client.set_registered_model_alias(name, "champion", "1")
    for source, recorded in ((f"models:/{name}/1", f"models:/{name}/1"),
                             (f"models:/{name}@champion", f"models:/{name}/1"),
                             (f"models:/{name}/latest", f"models:/{name}/3")):
        mv = client.create_model_version(name, source)
        assert (mv.source, mv.run_id) == (recorded, run)
    _fails(_create(url, name, "models:/no-such-model/1"), 404, "RESOURCE_DOES_NOT_EXIST",
           "Registered Model with name=no-such-model not found")
    _fails(_create(url, name, f"models:/{name}/1", run_id=uuid.uuid4().hex), 400,
           "INVALID_PARAMETER_VALUE",
           f"Invalid model version source: 'models:/{name}/1'. The run_id and model_id request "
           "parameters must match the referenced model version.")
    _fails(_create(url, name, f"models:/{name}/x"), 400, "INVALID_PARAMETER_VALUE",
           "Invalid Model Version stage: x. Value must be one of None, Staging, Production, "
           "Archived.")
    _fails(_create(url, name, "models:/m-0123"), 400, "INVALID_PARAMETER_VALUE")


# -- deleting versions ----------------------------------------------------------------
def test_delete_a_version_as_mlflow_server(srv):
    url, store = srv
    client = _client(url)
    name = _model(client, "del")
    ext = uuid.uuid4().hex
    for _ in range(3):
        client.create_model_version(name, f"runs:/{ext}/model", run_id=ext)
    r = _call(url, "DELETE", "model-versions/delete", {"name": name, "version": "2"})
    assert (r.status_code, r.json()) == (200, {})
    for method, route in (("DELETE", "model-versions/delete"), ("GET", "model-versions/get")):
        body = {"name": name, "version": "2"}
        r = _call(url, method, route, body if method == "DELETE" else None,
                  body if method == "GET" else None)
        _fails(r, 404, "RESOURCE_DOES_NOT_EXIST",
               f"Model Version (name={name}, version=2) not found")
    assert [v.version for v in client.search_model_versions(f"name = '{name}'")] == ["3", "1"]
    client.delete_model_version(name, "3")  # the latest: its number is not given again
    assert client.create_model_version(name, f"runs:/{ext}/model", run_id=ext).version == "4"
    assert [v.version for v in client.get_latest_versions(name)] == ["4"]
    client.delete_model_version(name, "1")
    client.delete_model_version(name, "4")
    assert client.create_model_version(name, f"runs:/{ext}/model", run_id=ext).version == "5"
    _fails(_call(url, "DELETE", "model-versions/delete", {"name": name, "version": "x"}), 400,
           "INVALID_PARAMETER_VALUE", "Parameter 'version' must be an integer, got 'x'.")
    _fails(_call(url, "DELETE", "model-versions/delete", {"name": name}), 400,
           "INVALID_PARAMETER_VALUE")
    _fails(_call(url, "DELETE", "model-versions/delete", {"name": "no-such", "version": "1"}),
           404, "RESOURCE_DOES_NOT_EXIST", "Model Version (name=no-such, version=1) not found")
    # Audited, with what was deleted; the chain still verifies.
    reg = _registry(store)
    events = reg.audit_log(target=f"model:{name}/1.0.1", action="model_version.delete")
    assert len(events) == 1 and events[0].before["source_run"] == ext
    assert reg.verify_audit_log().ok


def test_a_version_in_use_is_kept(srv):
    url, store = srv
    client = _client(url)
    name = _model(client, "in-use")
    ext = uuid.uuid4().hex
    for _ in range(4):
        client.create_model_version(name, f"runs:/{ext}/model", run_id=ext)
    client.set_registered_model_alias(name, "champion", "1")
    client.transition_model_version_stage(name, "2", "Production")
    client.transition_model_version_stage(name, "3", "Staging")
    _registry(store).set_stage_policy(name, "staging", approvals=1)
    for version, why in (("1", "alias 'champion' points at it"), ("2", "it is in Production"),
                         ("3", "it is in Staging, whose policy needs approvals")):
        with pytest.raises(MlflowException) as e:
            client.delete_model_version(name, version)
        assert e.value.error_code == "INVALID_STATE"
        assert why in e.value.message and "--force" in e.value.message
    with pytest.raises(MlflowException) as e:
        client.delete_registered_model(name)
    assert e.value.error_code == "INVALID_STATE"
    assert len(client.search_model_versions(f"name = '{name}'")) == 4
    client.delete_model_version(name, "4")  # in no stage and with no alias: deleted
    client.transition_model_version_stage(name, "2", "Archived")
    client.delete_model_version(name, "2")  # archived: deleted
    # Cairn's own API: a model admin forces it; the alias goes with the version.
    _registry(store).delete_model_version(name, "1.0.0", force=True)
    with pytest.raises(MlflowException) as e:
        client.get_model_version_by_alias(name, "champion")
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"
    assert [v.version for v in client.search_model_versions(f"name = '{name}'")] == ["3"]


def test_create_and_delete_read_each_thing_once(srv):
    """``model-versions/create`` reads its source model once, and its own model only where
    the registration checks it (in its transaction) and for the answer; a delete checks the
    protections once, in its own transaction."""
    from conformance_backends import reads, sql_statements

    url, store = srv
    client = _client(url)
    src, name = _model(client, "src"), _model(client, "dst")
    ext = uuid.uuid4().hex
    client.create_model_version(src, f"runs:/{ext}/model", run_id=ext)
    client.set_registered_model_alias(src, "champion", "1")
    engine = store.index.engine
    with sql_statements(engine) as seen:
        r = _create(url, name, f"models:/{src}@champion")
    assert r.json()["model_version"]["source"] == f"models:/{src}/1"
    assert (reads(seen, "registered_models", src), reads(seen, "registered_models", name)) == \
        (1, 2)
    _fails(_create(url, "no-such-model", f"models:/{src}/1"), 404, "RESOURCE_DOES_NOT_EXIST",
           "Registered Model with name=no-such-model not found")
    assert [m.name for m in client.search_registered_models("name = 'no-such-model'")] == []
    for route, body in (("model-versions/delete", {"name": src, "version": "1"}),
                        ("registered-models/delete", {"name": src})):
        with sql_statements(engine) as seen:
            r = _call(url, "DELETE", route, body)
        assert "alias 'champion' points at it" in _fails(r, 400, "INVALID_STATE")
        assert reads(seen, "model_aliases", src) == 2  # MLflow's numbering; the delete's check
    assert client.get_model_version(src, "1").aliases == ["champion"]


# -- deleting and renaming models ------------------------------------------------------
def test_delete_a_registered_model_as_mlflow_server(srv):
    url, store = srv
    client = _client(url)
    name = _model(client, "model-del")
    ext = uuid.uuid4().hex
    for _ in range(2):
        client.create_model_version(name, f"runs:/{ext}/model", run_id=ext)
    client.set_registered_model_tag(name, "team", "a")
    client.set_model_version_tag(name, "1", "k", "v")
    r = _call(url, "DELETE", "registered-models/delete", {"name": name})
    assert (r.status_code, r.json()) == (200, {})
    _fails(_call(url, "DELETE", "registered-models/delete", {"name": name}), 404,
           "RESOURCE_DOES_NOT_EXIST", f"Registered Model with name={name} not found")
    _fails(_call(url, "GET", "model-versions/get", params={"name": name, "version": "1"}), 404,
           "RESOURCE_DOES_NOT_EXIST", f"Model Version (name={name}, version=1) not found")
    assert client.search_registered_models(f"name = '{name}'") == []
    assert client.search_model_versions(f"name = '{name}'") == []
    _fails(_call(url, "DELETE", "registered-models/delete", {}), 400, "INVALID_PARAMETER_VALUE")
    # The name is free again, and a model made under it starts over.
    client.create_registered_model(name)
    mv = client.create_model_version(name, f"runs:/{ext}/model", run_id=ext)
    assert mv.version == "1" and mv.tags == {}
    assert client.get_registered_model(name).tags == {}
    reg = _registry(store)
    event = reg.audit_log(target=f"model:{name}", action="model.delete")[0]
    assert event.before["versions"] == ["1.0.0", "1.0.1"] and event.before["tags"] == {"team": "a"}


def test_rename_a_registered_model_as_mlflow_server(srv, tmp_path):
    url, store = srv
    client = _client(url)
    old = _model(client, "old")
    new = old.replace("old", "new")
    _, run = _run_with_files(client)
    client.create_model_version(old, f"runs:/{run}/model", run_id=run, description="first")
    client.set_registered_model_alias(old, "champion", "1")
    client.set_registered_model_tag(old, "team", "a")
    client.set_model_version_tag(old, "1", "k", "v")
    client.update_registered_model(old, "the model")
    r = _call(url, "POST", "registered-models/rename", {"name": old, "new_name": new})
    assert r.status_code == 200, r.text
    body = r.json()["registered_model"]
    assert (body["name"], body["description"], body["aliases"]) == \
        (new, "the model", [{"alias": "champion", "version": "1"}])
    _fails(_call(url, "GET", "registered-models/get", params={"name": old}), 404,
           "RESOURCE_DOES_NOT_EXIST", f"Registered Model with name={old} not found")
    mv = client.get_model_version_by_alias(new, "champion")
    assert (mv.name, mv.version, mv.tags, mv.description, mv.run_id) == \
        (new, "1", {"k": "v"}, "first", run)
    assert client.get_registered_model(new).tags == {"team": "a"}
    out = mlflow.artifacts.download_artifacts(f"models:/{new}/1", dst_path=str(tmp_path / "a"))
    assert (tmp_path / "a" / "MLmodel").read_text() == "flavors: {}\n" and out
    with pytest.raises(MlflowException) as e:
        mlflow.artifacts.download_artifacts(f"models:/{old}/1", dst_path=str(tmp_path / "b"))
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    _fails(_create(url, new, f"models:/{old}/1"), 404, "RESOURCE_DOES_NOT_EXIST")
    assert [m.name for m in client.search_registered_models(f"name LIKE '{new[:-9]}%'")] == [new]
    assert client.create_model_version(new, f"runs:/{run}/model", run_id=run).version == "2"
    # Audited; each version's digest recomputed for the new name, and still verified.
    reg = _registry(store)
    event = reg.audit_log(target=f"model:{old}", action="model.rename")[0]
    assert (event.before, event.after["name"]) == ({"name": old}, new)
    assert [r.problems for r in reg.verify_model_versions(new)] == [(), ()]


def test_rename_refusals_as_mlflow_server(srv):
    url, _ = srv
    client = _client(url)
    a, b = _model(client, "a"), _model(client, "b")
    _fails(_call(url, "POST", "registered-models/rename", {"name": a, "new_name": b}), 400,
           "RESOURCE_ALREADY_EXISTS", f"Registered Model (name={b}) already exists.")
    for bad in ("x/y", "x:y"):
        _fails(_call(url, "POST", "registered-models/rename", {"name": a, "new_name": bad}), 400,
               "INVALID_PARAMETER_VALUE",
               f"Invalid model name '{bad}'. Names cannot contain '/' or ':'.")
    for body in ({"name": a}, {"name": a, "new_name": ""}, {"name": a, "new_name": 5},
                 {"name": a, "new_name": " padded "}):
        _fails(_call(url, "POST", "registered-models/rename", body), 400,
               "INVALID_PARAMETER_VALUE")
    raw = '{"name": "%s", "new_name": "bad\\ud800name"}' % a  # a lone surrogate
    r = httpx.post(f"{url}{API}/registered-models/rename", content=raw.encode(),
                   headers={"content-type": "application/json"}, timeout=30)
    _fails(r, 400, "INVALID_PARAMETER_VALUE")
    _fails(_call(url, "POST", "registered-models/rename", {"name": "no-such", "new_name": "z"}),
           404, "RESOURCE_DOES_NOT_EXIST", "Registered Model with name=no-such not found")
    same = _call(url, "POST", "registered-models/rename", {"name": a, "new_name": a})
    assert same.status_code == 200 and same.json()["registered_model"]["name"] == a
    assert {m.name for m in client.search_registered_models(f"name = '{a}'")} == {a}


# -- a team server: who may delete and rename --------------------------------------------
ADMIN = "cairn_drop-in-registry-admin-token-01"


def test_a_failure_moving_a_models_roles_undoes_its_rename_and_delete(srv):
    """Rename and delete move or revoke the model's roles in the model's own transaction:
    when the database fails the second role's move, the model keeps its name and every role
    on it, so that no role is left on a name that another model may take later."""
    from cairn.store.sql.auth import AuthDB
    from conformance_backends import refuse_role_writes

    url, store = srv
    db = AuthDB(store.index.engine)
    tag = uuid.uuid4().hex[:8]  # the server, its users and the refusal outlive this test
    owner, reader = f"owner-{tag}", f"reader-{tag}"
    for user in (owner, reader):
        db.create_user(user, created_by="test")
    name = _model(_client(url), "roles")
    db.grant(owner, "model", name, "admin")
    db.grant(reader, "model", name, "viewer")
    refuse_role_writes(db.engine, reader)
    held = {(owner, "admin"), (reader, "viewer")}

    def roles(model: str) -> set:
        return {(b.user, b.role) for b in db.bindings(resource_type="model", resource_id=model)}

    r = _call(url, "POST", "registered-models/rename", {"name": name, "new_name": name + "-x"})
    assert r.status_code >= 400, r.text
    assert _call(url, "GET", "registered-models/get", params={"name": name}).status_code == 200
    _fails(_call(url, "GET", "registered-models/get", params={"name": name + "-x"}), 404,
           "RESOURCE_DOES_NOT_EXIST")
    assert (roles(name), roles(name + "-x")) == (held, set())
    r = _call(url, "DELETE", "registered-models/delete", {"name": name})
    assert r.status_code >= 400, r.text
    assert _call(url, "GET", "registered-models/get", params={"name": name}).status_code == 200
    assert roles(name) == held


@pytest.fixture
def team(tmp_path, monkeypatch):
    """(url, auth db, admin token) of a server with auth on."""
    from serving import ThreadedServer

    from cairn.server.app import create_app
    from cairn.server.config import ServerSettings
    from cairn.server.context import sql_engine
    from cairn.store.local import LocalStore
    from cairn.store.sql.auth import AuthDB

    store = LocalStore(tmp_path / "team")
    app = create_app(store, settings=ServerSettings(auth=True, bootstrap_token=ADMIN,
                                                    token_cache_s=0))
    app.state.cairn.start()
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with ThreadedServer(app) as url:
        yield url, AuthDB(sql_engine(store))
    store.close()


def test_only_a_models_admins_delete_and_rename_it_and_roles_follow(team, monkeypatch):
    url, db = team
    tokens = {}
    for user in ("owner", "editor", "newcomer"):
        db.create_user(user, created_by="test")
        tokens[user] = db.create_token(user, "t")[1]
        db.grant(user, "model", "*", "editor", granted_by="test")  # may create models

    def as_(user: str) -> MlflowClient:
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", tokens[user])
        return _client(url)

    name = _model(as_("owner"), "owned")  # its creator administers it
    ext = uuid.uuid4().hex
    as_("owner").create_model_version(name, f"runs:/{ext}/model", run_id=ext)
    for call in (lambda c: c.delete_model_version(name, "1"),
                 lambda c: c.delete_registered_model(name),
                 lambda c: c.rename_registered_model(name, name + "-x")):
        with pytest.raises(MlflowException) as e:
            call(as_("editor"))
        assert e.value.error_code == "PERMISSION_DENIED"
    as_("owner").rename_registered_model(name, name + "-x")
    assert ("owner", "admin") in {(b.user, b.role) for b in db.bindings(
        resource_type="model", resource_id=name + "-x")}
    assert db.bindings(resource_type="model", resource_id=name) == []
    as_("owner").delete_registered_model(name + "-x")
    assert db.bindings(resource_type="model", resource_id=name + "-x") == []
    # Someone else takes the name: the old owner holds no role on the new model.
    as_("newcomer").create_registered_model(name + "-x")
    with pytest.raises(MlflowException) as e:
        as_("owner").delete_registered_model(name + "-x")
    assert e.value.error_code == "PERMISSION_DENIED"
