"""A model version's comments follow its model: to the new name on a rename, away with it
on a delete, so that no later model of the old name (and whoever holds roles on it) gets
the thread."""

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.linear_model import LogisticRegression

import cairn
from cairn.server import ServerSettings, create_app
from cairn.services import registry_for
from cairn.store.local import LocalStore

API = "/api/v1"
ADMIN = "cairn_collab-model-threads-admin-token-01"


@pytest.fixture
def w(tmp_path, monkeypatch):
    monkeypatch.setenv("CAIRN_KEYS_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("CAIRN_CAPTURE_ENV", "0")
    store = LocalStore(tmp_path / "store")
    app = create_app(store, settings=ServerSettings(auth=True, bootstrap_token=ADMIN,
                                                    bootstrap_user="root", token_cache_s=0))
    with TestClient(app) as api:
        app.state.cairn.start()
        root = {"authorization": f"Bearer {ADMIN}"}
        heads = {"root": root}
        for user in ("alice", "eve"):
            assert api.post(f"{API}/users", json={"name": user}, headers=root).status_code == 201
            heads[user] = {"authorization": "Bearer " + api.post(
                f"{API}/users/{user}/tokens", json={"name": "t"}, headers=root).json()["token"]}

        def grant(user, rid, role):
            r = api.put(f"{API}/roles", json={"user": user, "resource_type": "model",
                                              "resource_id": rid, "role": role}, headers=root)
            assert r.status_code == 200, r.text

        client = cairn.Client(str(tmp_path / "store"), user="root")
        yield api, heads, grant, client
    store.close()


def _register(client, name):
    X = np.arange(12, dtype=float).reshape(6, 2)
    return client.register_model(name, LogisticRegression().fit(X, [0, 1] * 3))


def _thread(api, who, target):
    return api.get(f"{API}/comments", params={"target_type": "model_version",
                                              "target_id": target}, headers=who)


def _say(api, who, target, body):
    r = api.post(f"{API}/comments", json={"target_type": "model_version", "target_id": target,
                                          "body": body}, headers=who)
    assert r.status_code == 201, r.text
    return r.json()


def test_a_deleted_models_thread_never_reaches_the_next_model_of_its_name(w):
    api, h, grant, client = w
    first = _register(client, "clf")
    grant("alice", "clf", "viewer")
    _say(api, h["alice"], f"clf@{first.version}", "SECRET: trained on @eve's customer PII")
    _register(client, "clfx")  # a name that starts alike keeps its threads
    _say(api, h["root"], f"clfx@{first.version}", "other model")
    registry_for(client).delete_registered_model("clf", force=True)
    again = _register(client, "clf")  # eve's model, same name, same first version
    grant("eve", "clf", "admin")
    got = _thread(api, h["eve"], f"clf@{again.version}")
    assert got.status_code == 200 and got.json()["comments"] == []
    mentions = api.get(f"{API}/comments/mentions", headers=h["eve"])
    assert "SECRET" not in mentions.text
    assert [c["body"] for c in _thread(api, h["root"], f"clfx@{first.version}").json()[
        "comments"]] == ["other model"]


def test_a_renamed_models_thread_moves_with_it(w):
    api, h, grant, client = w
    mv = _register(client, "clf")
    grant("alice", "clf", "viewer")
    said = _say(api, h["alice"], f"clf@{mv.version}", "looks good")
    registry_for(client).rename_registered_model("clf", "clf2")
    moved = _thread(api, h["alice"], f"clf2@{mv.version}")  # alice's role moved too
    assert moved.status_code == 200
    assert [c["id"] for c in moved.json()["comments"]] == [said["id"]]
    _register(client, "clf")  # a new model under the old name starts with no thread
    assert _thread(api, h["root"], f"clf@{mv.version}").json()["comments"] == []


def test_a_report_over_a_model_follows_its_rename_and_closes_with_its_delete(w):
    """Who reads a report is decided by the models it draws: after a rename, the renamed
    model's role holders; after a delete, no later model of the name opens it."""
    import json

    api, h, grant, client = w
    _register(client, "clf")
    grant("alice", "clf", "editor")
    body = "# Notes on clf\n\n```cairn-panel\n" + json.dumps(
        {"type": "stages", "model": "clf"}) + "\n```\n"
    r = api.put(f"{API}/reports/clf-notes", json={"body": body}, headers=h["alice"])
    assert r.status_code == 200, r.text
    _register(client, "clf")  # a second version: the history alice's panel draws
    registry_for(client).rename_registered_model("clf", "clf2")
    assert api.get(f"{API}/reports/clf-notes", headers=h["alice"]).status_code == 200
    _register(client, "clf")  # eve's new model of the old name
    grant("eve", "clf", "admin")
    assert api.get(f"{API}/reports/clf-notes", headers=h["eve"]).status_code == 404
    # The panel draws the renamed model, never the one that took its old name.
    data = api.get(f"{API}/reports/clf-notes/data", headers=h["alice"]).json()
    drawn = [p["data"] for p in data["panels"] if "data" in p]
    assert [d["model"] for d in drawn] == ["clf2"]
    assert len({e["version"] for e in drawn[0]["events"]}) == 2
    registry_for(client).delete_registered_model("clf2", force=True)
    _register(client, "clf2")
    grant("eve", "clf2", "admin")
    assert api.get(f"{API}/reports/clf-notes", headers=h["eve"]).status_code == 404
    assert api.get(f"{API}/reports/clf-notes", headers=h["root"]).status_code == 200
    gone = api.get(f"{API}/reports/clf-notes/data", headers=h["root"]).json()["panels"]
    assert [p.get("data") for p in gone] == [None]  # the deleted model's panel draws nothing
    assert api.get(f"{API}/reports", headers=h["eve"]).json() == {"reports": []}
