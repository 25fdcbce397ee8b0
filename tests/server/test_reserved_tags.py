"""Tags under ``cairn.mlflow.`` steer the MLflow routes (an experiment's artifact location,
a run's artifact URI, its logged models): through the native API only an admin writes them.

Before, an editor could set ``cairn.mlflow.artifact_location`` on an experiment or
``cairn.mlflow.artifact_uri`` on a run and so send other users' MLflow artifact writes
wherever they chose.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from cairn.cas import ObjectStore
from cairn.server import ServerSettings, create_app
from cairn.store.sql.store import SqlStore

API = "/api/v1"
ADMIN = "cairn_reserved-tags-bootstrap-admin-token-01"
LOCATION = "cairn.mlflow.artifact_location"
URI = "cairn.mlflow.artifact_uri"


def _h(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture
def api(tmp_path):
    store = SqlStore(f"sqlite:///{tmp_path / 'index.db'}", ObjectStore.local(tmp_path / "o"))
    app = create_app(store, settings=ServerSettings(auth=True, bootstrap_token=ADMIN,
                                                    bootstrap_user="root", token_cache_s=0))
    app.state.cairn.start()
    with TestClient(app) as client:
        assert client.post(f"{API}/users", json={"name": "alice"}, headers=_h(ADMIN)).status_code == 201
        alice = client.post(f"{API}/users/alice/tokens", json={"name": "t"},
                            headers=_h(ADMIN)).json()["token"]
        r = client.put(f"{API}/roles", headers=_h(ADMIN), json={
            "user": "alice", "resource_type": "experiment", "resource_id": "*", "role": "editor"})
        assert r.status_code == 200, r.text
        yield client, alice
    store.close()


def test_an_editor_cannot_set_or_delete_reserved_tags_and_nothing_else_is_lost(api):
    client, alice = api
    me = _h(alice)
    # An experiment with a reserved tag is refused whole, and not created.
    r = client.post(f"{API}/experiments", headers=me,
                    json={"name": "redirected", "tags": {LOCATION: "/tmp/elsewhere"}})
    assert r.status_code == 403 and LOCATION in r.json()["message"], r.text
    assert client.get(f"{API}/experiments/by-name", params={"name": "redirected"},
                      headers=_h(ADMIN)).status_code == 404
    # An admin made this one; alice edits in it.
    exp = client.post(f"{API}/experiments", headers=_h(ADMIN), json={"name": "team"}).json()["id"]
    r = client.post(f"{API}/runs", headers=me,
                    json={"experiment_id": exp, "tags": {URI: "file:///tmp/x", "ok": "1"}})
    assert r.status_code == 403, r.text
    run = client.post(f"{API}/runs", headers=me, json={"experiment_id": exp}).json()["id"]
    # The admin sets the reserved tag; alice may neither replace nor delete it.
    assert client.put(f"{API}/runs/{run}/tags/{URI}", content="s3://bucket/right",
                      headers=_h(ADMIN)).status_code == 200
    r = client.put(f"{API}/runs/{run}/tags/{URI}", content="file:///tmp/wrong", headers=me)
    assert r.status_code == 403 and r.json()["error_code"] == "PERMISSION_DENIED"
    assert client.delete(f"{API}/runs/{run}/tags/{URI}", headers=me).status_code == 403
    r = client.post(f"{API}/runs/{run}/log", headers=me, json={"tags": {URI: "file:///tmp/w"}})
    assert r.status_code == 403
    # In a records batch only the reserved items are left out; the rest is applied.
    r = client.post(f"{API}/records", headers=me, json={"batches": [{
        "run_id": run, "writer_id": "w-alice", "seq": 1, "time": 1,
        "tags": {"note": "kept", URI: "file:///tmp/wrong"}, "deleted_tags": [URI],
        "params": {"lr": "0.1"}}]})
    assert r.status_code == 200, r.text
    res = r.json()["results"][0]
    assert res["status"] == "applied"
    assert [(i["field"], i["key"], i["error"]["error_code"]) for i in res["rejected_items"]] \
        == [("tag", URI, "PERMISSION_DENIED")] * 2
    got = client.get(f"{API}/runs/{run}", headers=me).json()
    assert got["tags"][URI] == "s3://bucket/right"
    assert got["tags"]["note"] == "kept" and got["params"] == {"lr": "0.1"}
    # A batch the client names in ?strict= (HttpStore names its own write so) is applied
    # whole or refused whole: refused here, with nothing of it applied.
    r = client.post(f"{API}/records", params={"strict": "w-strict:1"}, headers=me, json={
        "batches": [{"run_id": run, "writer_id": "w-strict", "seq": 1, "time": 1,
                     "tags": {URI: "file:///tmp/evil", "also": "refused"}}]})
    assert r.status_code == 200, r.text
    res = r.json()["results"][0]
    assert res["status"] == "rejected" and res["error"]["error_code"] == "PERMISSION_DENIED"
    got = client.get(f"{API}/runs/{run}", headers=me).json()["tags"]
    assert got[URI] == "s3://bucket/right" and "also" not in got
    # Other tags under cairn. stay the users' own (the UI's notes are one).
    assert client.put(f"{API}/runs/{run}/tags/cairn.note", content="hi", headers=me).status_code == 200


def test_the_mlflow_api_still_keeps_its_own_tags(api):
    client, alice = api
    r = client.post("/api/2.0/mlflow/experiments/create", headers=_h(alice),
                    json={"name": "mine", "artifact_location": "s3://bucket/mine"})
    assert r.status_code == 200, r.text
    eid = r.json()["experiment_id"]
    got = client.get("/api/2.0/mlflow/experiments/get", params={"experiment_id": eid},
                     headers=_h(alice)).json()["experiment"]
    assert got["artifact_location"] == "s3://bucket/mine"
    # ... and refuses them as tags, as before.
    r = client.post("/api/2.0/mlflow/experiments/set-experiment-tag", headers=_h(alice),
                    json={"experiment_id": eid, "key": LOCATION, "value": "/tmp/x"})
    assert r.status_code == 400, r.text
