"""Moderation and what a refusal tells: an admin's delete stays until an admin restores it;
a hidden dashboard's name says it is taken and nothing of who made it; a hidden run and a
missing one give one answer; a NUL in a description is a 400 on every backend."""

import pytest
from fastapi.testclient import TestClient

from cairn.server import ServerSettings, create_app
from cairn.store.local import LocalStore

API = "/api/v1"
ADMIN = "cairn_collab-moderation-admin-token-0001"


@pytest.fixture
def w(tmp_path, monkeypatch):
    monkeypatch.setenv("CAIRN_CAPTURE_ENV", "0")
    store = LocalStore(tmp_path / "store")
    app = create_app(store, settings=ServerSettings(auth=True, bootstrap_token=ADMIN,
                                                    bootstrap_user="root", token_cache_s=0))
    with TestClient(app) as api:
        app.state.cairn.start()
        root = {"authorization": f"Bearer {ADMIN}"}
        e1 = api.post(f"{API}/experiments", json={"name": "E1"}, headers=root).json()["id"]
        e2 = api.post(f"{API}/experiments", json={"name": "E2"}, headers=root).json()["id"]
        heads = {"root": root}
        for user in ("alice", "eve"):
            assert api.post(f"{API}/users", json={"name": user}, headers=root).status_code == 201
            heads[user] = {"authorization": "Bearer " + api.post(
                f"{API}/users/{user}/tokens", json={"name": "t"}, headers=root).json()["token"]}

        def grant(user, exp, role):
            r = api.put(f"{API}/roles", json={"user": user, "resource_type": "experiment",
                                              "resource_id": exp, "role": role}, headers=root)
            assert r.status_code == 200, r.text

        yield api, heads, grant, e1, e2
    store.close()


def test_an_admins_delete_is_undone_by_an_admin_only(w):
    api, h, grant, e1, _e2 = w
    grant("alice", e1, "viewer")
    grant("eve", e1, "admin")  # the experiment's admin moderates
    c = api.post(f"{API}/comments", json={"target_type": "experiment", "target_id": e1,
                                          "body": "abusive text"}, headers=h["alice"]).json()
    assert api.delete(f"{API}/comments/{c['id']}", headers=h["eve"]).status_code == 200
    r = api.post(f"{API}/comments/{c['id']}/restore", headers=h["alice"])
    assert r.status_code == 403 and "only an admin" in r.json()["message"]
    listed = api.get(f"{API}/comments", params={"target_type": "experiment", "target_id": e1},
                     headers=h["alice"]).json()["comments"]
    assert "abusive" not in str(listed)
    assert api.post(f"{API}/comments/{c['id']}/restore", headers=h["eve"]).status_code == 200
    # An author's own delete stays the author's to undo.
    mine = api.post(f"{API}/comments", json={"target_type": "experiment", "target_id": e1,
                                             "body": "oops"}, headers=h["alice"]).json()
    assert api.delete(f"{API}/comments/{mine['id']}", headers=h["alice"]).status_code == 200
    assert api.post(f"{API}/comments/{mine['id']}/restore",
                    headers=h["alice"]).status_code == 200


def test_a_hidden_dashboards_name_is_taken_but_says_nothing_else(w):
    api, h, grant, e1, e2 = w
    grant("alice", e1, "editor")
    grant("eve", e2, "editor")
    panel = lambda e: {"kind": "table", "experiment_id": e, "columns": ["metrics.loss"]}  # noqa: E731
    assert api.put(f"{API}/dashboards/secret-board", json={"panels": [panel(e1)]},
                   headers=h["alice"]).status_code == 200
    probe = api.put(f"{API}/dashboards/secret-board", json={"panels": [panel(e2)]},
                    headers=h["eve"])
    assert probe.status_code == 403 and "alice" not in probe.text and "taken" in probe.text
    assert api.get(f"{API}/dashboards/secret-board", headers=h["alice"]).json()["panels"][0][
        "experiment_id"] == e1  # unchanged
    assert api.put(f"{API}/dashboards/eves-board", json={"panels": [panel(e2)]},
                   headers=h["eve"]).status_code == 200


def test_a_hidden_run_and_a_missing_one_answer_alike(w):
    api, h, _grant, e1, _e2 = w
    run = api.post(f"{API}/runs", json={"experiment_id": e1}, headers=h["root"]).json()["id"]
    hidden = api.get(f"{API}/comments", params={"target_type": "run", "target_id": run},
                     headers=h["eve"])
    missing = api.get(f"{API}/comments", params={"target_type": "run", "target_id": "0" * 32},
                      headers=h["eve"])
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["message"].replace(run, "X") == missing.json()["message"].replace(
        "0" * 32, "X")


def test_a_nul_in_a_dashboard_description_is_refused(w):
    api, h, grant, e1, _e2 = w
    grant("alice", e1, "editor")
    r = api.put(f"{API}/dashboards/b", headers=h["alice"], json={
        "description": "a\x00b", "panels": [{"kind": "table", "experiment_id": e1,
                                             "columns": ["metrics.loss"]}]})
    assert r.status_code == 400 and "NUL" in r.json()["message"]
    assert api.get(f"{API}/dashboards/b", headers=h["alice"]).status_code == 404
