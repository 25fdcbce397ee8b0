"""POST /models/{name}/versions: registering a run's logged model over REST."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serving import ThreadedServer

import cairn
from cairn.server import create_app

from .api_world import (
    API, RANK, STORES, USERS, World, log_model_files, open_store, registry_client,
    settle_audit, tiny_sklearn_model, upload,
)


@pytest.fixture(params=STORES)
def store(request, tmp_path):
    s = open_store(request.param, tmp_path, request)
    yield s
    s.close()


@pytest.fixture
def api(store):
    with TestClient(create_app(store), raise_server_exceptions=False) as c:
        yield c


def _run(api) -> str:
    exp = api.post(f"{API}/experiments", json={"name": "train"}).json()["id"]
    settle_audit(api)
    r = api.post(f"{API}/runs", json={"experiment_id": exp, "params": {"C": "1.0"}})
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.mark.slow
def test_register_what_autolog_logged_through_a_remote_client(store, tracking, spool, monkeypatch):
    """Train with autolog against a real server, register over REST, load it back: same model."""
    monkeypatch.setenv("CAIRN_CAPTURE_ENV", "0")
    from sklearn.linear_model import LogisticRegression

    X = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 0.2], [1.0, 0.9]])
    y = np.array([0, 1, 0, 1])
    app = create_app(store)
    with ThreadedServer(app) as url:
        cairn.set_tracking_uri(url)
        cairn.set_experiment("remote")
        cairn.autolog(system_metrics=False)
        try:
            with cairn.start_run() as run:
                model = LogisticRegression(C=0.5).fit(X, y)
        finally:
            cairn.autolog(disable=True)
        cairn.flush()
        app.state.cairn.flush_audit()  # see settle_audit
        import httpx

        with httpx.Client(base_url=url + API, timeout=60) as http:
            assert http.post("/models", json={"name": "clf"}).status_code == 201
            r = http.post("/models/clf/versions", json={"source": f"runs:/{run.id}/model",
                                                        "description": "autologged"})
            assert r.status_code == 201, r.text
            mv = r.json()
            files = [f["path"] for f in http.get(f"/runs/{run.id}/artifacts").json()["files"]]
    assert mv["version"] == "1.0.0" and mv["flavor"] == "sklearn"
    assert mv["source_run_id"] == run.id and mv["description"] == "autologged"
    assert mv["params"]["C"] == "0.5" and "training_score" in mv["metrics"]
    assert "models/clf/1.0.0/model/model.pkl" in files  # the run lists the version's files
    loaded = registry_client(store).load_model("clf/1.0.0")
    assert type(loaded) is LogisticRegression
    assert loaded.predict(X).tolist() == model.predict(X).tolist()


def test_register_a_logged_model_then_a_copy_and_a_plain_directory(api, store):
    model, X = tiny_sklearn_model()
    run = _run(api)
    log_model_files(api, run, model)
    assert api.post(f"{API}/models", json={"name": "fraud"}).status_code == 201
    r = api.post(f"{API}/models/fraud/versions", json={"run_id": run})  # path defaults to model
    assert r.status_code == 201, r.text
    first = r.json()
    assert (first["version"], first["flavor"], first["bump"]) == ("1.0.0", "sklearn", "initial")
    assert first["params"] == {"C": "1.0"}
    # The copy the registration left in the run is a registered layout: the same tree again.
    r = api.post(f"{API}/models/fraud/versions",
                 json={"source": f"runs:/{run}/models/fraud/1.0.0", "bump": "minor"})
    assert r.status_code == 201, r.text
    second = r.json()
    assert second["version"] == "1.1.0" and second["tree_oid"] == first["tree_oid"]
    assert second["parent"] == "fraud/1.0.0"
    reg = registry_client(store)
    for v in ("1.0.0", "1.1.0"):
        assert reg.load_model(f"fraud/{v}").predict(X).tolist() == model.predict(X).tolist()
    # Files without a model description are registered as they are (flavor directory).
    files = [upload(api, b"\x00\x01weights", "ckpt/w.bin"), upload(api, b"readme", "ckpt/README")]
    assert api.post(f"{API}/runs/{run}/artifacts", json={"files": files}).status_code == 200
    r = api.post(f"{API}/models/fraud/versions",
                 json={"run_id": run, "path": "ckpt/", "version": "3.0.0"})
    assert r.status_code == 201, r.text
    assert r.json()["flavor"] == "directory"
    path = reg.load_model("fraud/3.0.0")
    assert (path / "w.bin").read_bytes() == b"\x00\x01weights"
    listed = api.get(f"{API}/models/fraud/versions").json()
    assert [v["version"] for v in listed] == ["1.0.0", "1.1.0", "3.0.0"]
    events = api.get(f"{API}/audit", params={"action": "model_version.create"}).json()["events"]
    assert sorted(e["after"]["version"] for e in events) == ["1.0.0", "1.1.0", "3.0.0"]
    assert all(e["actor"] == "local" for e in events)


def test_bad_requests_get_clear_4xx_and_register_nothing(api, store):
    model, _ = tiny_sklearn_model()
    run = _run(api)
    log_model_files(api, run, model)
    bad = upload(api, b"{not json", "broken/cairn-model.json")
    api.post(f"{API}/runs/{run}/artifacts", json={"files": [bad]})
    api.post(f"{API}/models", json={"name": "m"})
    ok = api.post(f"{API}/models/m/versions", json={"source": f"runs:/{run}/model"})
    assert ok.status_code == 201, ok.text
    url = f"{API}/models/m/versions"
    cases = [
        ("post", f"{API}/models/ghost/versions", {"json": {"run_id": run}}, 404, "ghost"),
        ("post", url, {"json": {"source": "runs:/0123456789abcdef0123456789abcdef/model"}}, 404,
         "does not exist"),
        ("post", url, {"json": {"source": f"runs:/{run}/nothing-here"}}, 404, "no artifacts"),
        ("post", url, {"json": {"source": f"runs:/{run}/../model"}}, 400, "'..'"),
        ("post", url, {"json": {"run_id": run, "path": "/etc"}}, 400, "relative"),
        ("post", url, {"json": {"source": f"runs:/{run}"}}, 400, "artifact path"),
        ("post", url, {"json": {"source": "s3://bucket/model"}}, 400, "runs:/"),
        ("post", url, {"json": {"source": "runs:/../../etc/model"}}, 400, "run id"),
        ("post", url, {"json": {"run_id": "../x"}}, 400, "run_id"),
        ("post", url, {"json": {"source": f"runs:/{run}/model", "run_id": run}}, 400, "not both"),
        ("post", url, {"json": {}}, 400, "source"),
        ("post", url, {"json": {"run_id": run, "version": "banana"}}, 400, "banana"),
        ("post", url, {"json": {"run_id": run, "version": "2.0.0", "bump": "major"}}, 400,
         "not both"),
        ("post", url, {"json": {"run_id": run, "bump": "huge"}}, 400, "bump"),
        ("post", url, {"json": {"run_id": run, "version": "1.0.0"}}, 409, "immutable"),
        ("post", url, {"json": {"run_id": run, "path": "broken"}}, 400, "not valid JSON"),
        ("post", url, {"json": {"run_id": run, "description": 5}}, 400, "description"),
        ("post", url, {"content": b"{\"run_id\": ", "headers": {"content-type":
                                                                 "application/json"}}, 400, ""),
    ]
    for method, path, kw, status, text in cases:
        r = getattr(api, method)(path, **kw)
        assert r.status_code == status, (kw, r.status_code, r.text)
        assert text in r.json()["message"], (kw, r.json())
    assert [v["version"] for v in api.get(url).json()] == ["1.0.0"]  # nothing else registered


@pytest.fixture(params=STORES)
def world(request, tmp_path):
    store = open_store(request.param, tmp_path, request)
    with World(store) as w:
        model, _ = tiny_sklearn_model()
        for run in (w.run_e, w.run_f):
            log_model_files(w.api, run, model, w.admin)
        yield w
    store.close()


def test_role_matrix_for_registering_versions(world):
    w = world
    for user in USERS:
        r = w.call(user, "post", "/models/M/versions", json={"run_id": w.run_e})
        allowed = RANK[user] >= RANK["editor"]
        assert (r.status_code == 201) == allowed, (user, r.status_code, r.text)
        if not allowed:
            assert r.status_code == 403 and "editor" in r.json()["message"], r.text
        # Model N: no role for anyone but admins.
        assert w.call(user, "post", "/models/N/versions",
                      json={"run_id": w.run_e}).status_code == 403, user
        # A run of experiment F, which they may not view, is refused even to model editors.
        r = w.call(user, "post", "/models/M/versions", json={"run_id": w.run_f})
        assert r.status_code == 403, (user, r.text)
    versions = w.call("viewer", "get", "/models/M/versions").json()
    assert [v["created_by"] for v in versions] == ["editor", "approver", "admin"]
    assert w.call(None, "post", "/models/M/versions", json={"run_id": w.run_e}).status_code == 401
    wrong = w.api.post(f"{API}/models/M/versions", json={"run_id": w.run_e},
                       headers={"authorization": "Bearer cairn_wrong"})
    assert wrong.status_code == 401
    events = w.audit("model_version.create")
    assert sorted(e["actor"] for e in events if e["target"].startswith("model:M/")) == \
        ["admin", "approver", "editor"]
    assert json.dumps(events)  # before/after are plain JSON
