"""Auth: every role against every endpoint family, and clear 401/403 answers."""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cairn.cas import ObjectStore
from cairn.server import ServerSettings, create_app
from cairn.store.sql.auth import ROLES, AuthDB, hash_token
from cairn.store.sql.store import SqlStore

API = "/api/v1"
ADMIN = "cairn_bootstrap-admin-token-for-tests-0001"
CONTENT = b"artifact bytes"
OID = hashlib.sha256(CONTENT).hexdigest()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A server with auth on, two experiments, and one user per role on experiment E."""
    tmp = tmp_path_factory.mktemp("auth")
    store = SqlStore(f"sqlite:///{tmp / 'auth.db'}", ObjectStore.local(tmp / "objects"))
    app = create_app(store, settings=ServerSettings(auth=True, bootstrap_token=ADMIN, bootstrap_user="root",
                                                    token_cache_s=0))
    with TestClient(app, raise_server_exceptions=False) as client:
        app.state.cairn.start()
        admin = {"authorization": f"Bearer {ADMIN}"}
        e = client.post(f"{API}/experiments", json={"name": "E"}, headers=admin).json()["id"]
        f = client.post(f"{API}/experiments", json={"name": "F"}, headers=admin).json()["id"]
        run_e = client.post(f"{API}/runs", json={"experiment_id": e}, headers=admin).json()["id"]
        run_f = client.post(f"{API}/runs", json={"experiment_id": f}, headers=admin).json()["id"]
        client.put(f"{API}/objects/{OID}", content=CONTENT, headers=admin)
        client.post(f"{API}/runs/{run_e}/artifacts", headers=admin,
                    json={"files": [{"path": "a.txt", "size": len(CONTENT), "digest": OID}]})
        client.post(f"{API}/users", json={"name": "target"}, headers=admin)
        _register_models(store)
        tokens = {}
        for role in (None, *ROLES):
            name = role or "nobody"
            r = client.post(f"{API}/users", json={"name": name}, headers=admin)
            assert r.status_code == 201, r.text
            tokens[name] = client.post(f"{API}/users/{name}/tokens", json={"name": "t"},
                                       headers=admin).json()["token"]
            if role:
                for rtype, rid in (("experiment", e), ("model", "M")):
                    r = client.put(f"{API}/roles", headers=admin, json={
                        "user": name, "resource_type": rtype, "resource_id": rid, "role": role})
                    assert r.status_code == 200, r.text
        yield {"client": client, "e": e, "f": f, "run_e": run_e, "run_f": run_f,
               "tokens": tokens, "admin": admin, "store": store}
    store.close()


RANK = {"nobody": 0, "viewer": 1, "editor": 2, "approver": 3, "admin": 4}


def _register_models(store):
    """Models M and N, each with versions 1.0.0 and 1.0.1; N's Production needs an approval."""
    from cairn.client import Client
    from cairn.registry.service import Registry

    client = Client(store.uri, user="root")
    client._store = store
    reg = Registry(client)
    for name in ("M", "N"):
        for _ in range(2):
            reg.register_model(name, {"weights": [1, 2, 3]}, flavor="pickle")
        reg.set_stage_policy(name, "production", approvals=1)


def _model_families(w, model: str, user: str):
    """(family, minimal role, request) on one registered model."""
    c, admin = w["client"], w["admin"]
    # A fresh pending request (by root) for the approver family to act on.
    made = c.post(f"{API}/models/{model}/requests", headers=admin,
                  json={"version": "1.0.1", "stage": "Production"})
    if made.status_code == 409:  # one is already pending from an earlier user's turn
        pending = c.get(f"{API}/models/{model}/requests", headers=admin).json()
        req_id = pending[0]["id"]
    else:
        req_id = made.json()["id"]
    stage = "Staging" if c.get(f"{API}/models/{model}/versions/1.0.0", headers=admin).json()[
        "stage"] != "Staging" else "Development"
    return [
        ("model read", "viewer", ("get", f"/models/{model}", {})),
        ("model versions", "viewer", ("get", f"/models/{model}/versions", {})),
        ("stage policies", "viewer", ("get", f"/models/{model}/policies", {})),
        ("stage transition", "editor", ("post", f"/models/{model}/versions/1.0.0/stage",
                                        {"json": {"stage": stage}})),
        ("alias", "editor", ("put", f"/models/{model}/aliases/champion",
                             {"json": {"version": "1.0.0"}})),
        ("approve", "approver", ("post", f"/models/requests/{req_id}/reject",
                                 {"json": {"comment": f"no, says {user}"}})),
        ("policy", "admin", ("put", f"/models/{model}/policies",
                             {"json": {"stage": "Production", "approvals": 1}})),
    ]


def _families(w, exp: str, run: str):
    """(family, minimal role, request) for one experiment and one of its runs."""
    rec = {"batches": [{"run_id": run, "writer_id": f"w-{id(w)}", "seq": 1, "tags": {"x": "y"}}]}
    return [
        ("experiment read", "viewer", ("get", f"/experiments/{exp}", {})),
        ("run read", "viewer", ("get", f"/runs/{run}", {})),
        ("metric history", "viewer", ("get", f"/runs/{run}/metrics/history?key=m", {})),
        ("artifact list", "viewer", ("get", f"/runs/{run}/artifacts", {})),
        ("run create", "editor", ("post", "/runs", {"json": {"experiment_id": exp}})),
        ("run log", "editor", ("post", f"/runs/{run}/log",
                                {"json": {"metrics": [{"key": "m", "value": 1}]}})),
        ("tag edit", "editor", ("put", f"/runs/{run}/tags/k", {"content": b"v"})),
        ("records", "editor", ("post", "/records", {"json": rec})),
        ("role grant", "admin", ("put", "/roles", {"json": {
            "user": "target", "resource_type": "experiment", "resource_id": exp,
            "role": "viewer"}})),
    ]


def _call(w, token: str | None, req):
    method, path, kw = req
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return getattr(w["client"], method)(API + path, headers=headers, **kw)


def _allowed(resp) -> bool:
    if resp.status_code == 200 and "results" in resp.json():  # records: per-batch verdicts
        return all(r["status"] != "rejected" for r in resp.json()["results"])
    return resp.status_code < 400


@pytest.mark.parametrize("user", list(RANK))
def test_role_matrix_on_an_experiment(world, user):
    w = world
    token = w["tokens"][user]
    for family, needed, req in _families(w, w["e"], w["run_e"]):
        resp = _call(w, token, req)
        expect = RANK[user] >= RANK[needed]
        assert _allowed(resp) == expect, (user, family, resp.status_code, resp.text)
        if not expect:
            body = resp.json()
            err = body["results"][0]["error"] if "results" in body else body
            assert err["error_code"] == "PERMISSION_DENIED", (family, body)
            assert user in err["message"] and needed in err["message"]
    # No role on experiment F: nothing there, whatever the role on E.
    for family, _needed, req in _families(w, w["f"], w["run_f"]):
        assert not _allowed(_call(w, token, req)), (user, family)


@pytest.mark.parametrize("user", list(RANK))
def test_role_matrix_on_a_registered_model(world, user):
    w = world
    token = w["tokens"][user]
    for family, needed, req in _model_families(w, "M", user):
        resp = _call(w, token, req)
        expect = RANK[user] >= RANK[needed]
        assert (resp.status_code < 400) == expect, (user, family, resp.status_code, resp.text)
        if not expect:
            assert resp.status_code == 403 and needed in resp.json()["message"], resp.text
    # No role on model N.
    for family, _needed, req in _model_families(w, "N", user):
        assert _call(w, token, req).status_code == 403, (user, family)
    names = [m["name"] for m in _call(w, token, ("get", "/models", {})).json()]
    assert names == (["M"] if RANK[user] else [])


@pytest.mark.parametrize("user", list(RANK))
def test_global_families(world, user):
    w = world
    token = w["tokens"][user]
    # Creating an experiment needs a global (or "experiment *") editor role: none here.
    assert _call(w, token, ("post", "/experiments", {"json": {"name": f"new-{user}"}})).status_code == 403
    # Objects are shared by content: uploading needs editor somewhere, reading viewer somewhere.
    up = _call(w, token, ("post", "/objects/missing", {"json": {"oids": [OID]}}))
    assert (up.status_code == 200) == (RANK[user] >= RANK["editor"])
    down = _call(w, token, ("get", f"/objects/{OID}", {}))
    assert (down.status_code == 200) == (RANK[user] >= RANK["viewer"])
    # Users, tokens of others and the audit log are for global admins only.
    for req in (("get", "/users", {}), ("get", "/audit", {}), ("get", "/audit/verify", {}),
                ("get", "/tokens?user=root", {})):
        assert _call(w, token, req).status_code == 403, (user, req)
    # Search shows only what the user may view.
    runs = _call(w, token, ("post", "/runs/search", {"json": {}})).json()["runs"]
    assert {r["experiment_id"] for r in runs} == ({w["e"]} if RANK[user] else set())
    exps = _call(w, token, ("get", "/experiments", {})).json()["experiments"]
    assert [x["id"] for x in exps] == ([w["e"]] if RANK[user] else [])
    me = _call(w, token, ("get", "/whoami", {})).json()
    assert me["user"] == user and me["is_admin"] is False


def test_global_roles_and_admins(world):
    w = world
    c, admin = w["client"], w["admin"]
    c.post(f"{API}/users", json={"name": "lead"}, headers=admin)
    tok = c.post(f"{API}/users/lead/tokens", json={}, headers=admin).json()["token"]
    c.put(f"{API}/roles", headers=admin, json={"user": "lead", "resource_type": "global",
                                               "role": "editor"})
    lead = {"authorization": f"Bearer {tok}"}
    r = c.post(f"{API}/experiments", json={"name": "lead's"}, headers=lead)
    assert r.status_code == 201  # and the creator administers it
    grant = c.put(f"{API}/roles", headers=lead, json={
        "user": "viewer", "resource_type": "experiment", "resource_id": r.json()["id"],
        "role": "viewer"})
    assert grant.status_code == 200, grant.text
    assert c.get(f"{API}/runs/{w['run_f']}", headers=lead).status_code == 200  # global: F too
    assert c.get(f"{API}/users", headers=admin).status_code == 200
    assert c.get(f"{API}/audit/verify", headers=admin).json()["ok"] is True


def test_missing_or_wrong_tokens_get_401_with_a_clear_message(world):
    c = world["client"]
    r = c.get(f"{API}/experiments")
    assert r.status_code == 401 and "Authorization: Bearer" in r.json()["message"]
    r = c.get(f"{API}/experiments", headers={"authorization": "Bearer cairn_nope"})
    assert r.status_code == 401 and "unknown, revoked or expired" in r.json()["message"]
    r = c.get(f"{API}/experiments", headers={"authorization": "Basic dXNlcjpwYXNz"})
    assert r.status_code == 401 and "Bearer" in r.json()["message"]
    assert c.get("/health").status_code == 200  # probes need no token


def test_stage_policies_are_read_by_viewers(world):
    """The web UI reads them to offer *Request* instead of *Move* where approvals are needed."""
    w = world
    viewer = {"authorization": f"Bearer {w['tokens']['viewer']}"}
    r = w["client"].get(f"{API}/models/M/policies", headers=viewer)
    assert r.status_code == 200, r.text
    by_stage = {p["stage"]: p for p in r.json()}
    assert set(by_stage) == {"Development", "Staging", "Production", "Archived"}
    assert by_stage["Production"]["approvals"] == 1
    assert by_stage["Staging"]["approvals"] == 0 and by_stage["Staging"]["approvers"] is None
    assert w["client"].get(f"{API}/models/nope/policies",
                           headers=w["admin"]).status_code == 404
    assert w["client"].get(f"{API}/models/M/policies").status_code == 401


def test_ui_session_answers_200_whatever_the_token(world):
    """GET /ui/session: the UI's sign-in check; a missing or bad token is an answer, not a 401."""
    w = world
    c = w["client"]
    url = f"{API}/ui/session"
    for headers in ({}, {"authorization": "Bearer cairn_nope"},
                    {"authorization": "Basic dXNlcjpwYXNz"}, {"authorization": "Bearer "}):
        r = c.get(url, headers=headers)
        assert r.status_code == 200, (headers, r.text)
        assert r.json() == {"auth": True, "user": None}, headers
    assert c.get(url, headers=w["admin"]).json() == {"auth": True, "user": "root"}
    viewer = {"authorization": f"Bearer {w['tokens']['viewer']}"}
    assert c.get(url, headers=viewer).json() == {"auth": True, "user": "viewer"}  # nothing else
    c.post(f"{API}/users", json={"name": "leaving"}, headers=w["admin"])
    made = c.post(f"{API}/users/leaving/tokens", json={}, headers=w["admin"]).json()
    mine = {"authorization": f"Bearer {made['token']}"}
    assert c.get(url, headers=mine).json()["user"] == "leaving"
    c.delete(f"{API}/tokens/{made['id']}", headers=w["admin"])
    assert c.get(url, headers=mine).json() == {"auth": True, "user": None}  # revoked


def test_tokens_are_hashed_shown_once_and_revocable(world):
    w = world
    c, admin = w["client"], w["admin"]
    c.post(f"{API}/users", json={"name": "temp"}, headers=admin)
    made = c.post(f"{API}/users/temp/tokens", json={"name": "laptop"}, headers=admin).json()
    secret = made["token"]
    listed = c.get(f"{API}/tokens?user=temp", headers=admin).json()["tokens"]
    assert listed and all("token" not in t for t in listed)
    with w["store"].index.engine.connect() as conn:
        stored = [r[0] for r in conn.execute(sa.text("SELECT token_hash FROM api_tokens"))]
    assert hash_token(secret) in stored and secret not in stored
    mine = {"authorization": f"Bearer {secret}"}
    assert c.get(f"{API}/whoami", headers=mine).json()["user"] == "temp"
    assert c.delete(f"{API}/tokens/{made['id']}", headers=mine).status_code == 200  # own token
    assert c.get(f"{API}/whoami", headers=mine).status_code == 401


def test_bootstrap_admin_is_made_once(tmp_path):
    store = SqlStore(f"sqlite:///{tmp_path / 'b.db'}")
    store.open()
    db = AuthDB(store.index.engine)
    secret = db.bootstrap_admin()
    assert secret and secret.startswith("cairn_")
    assert db.bootstrap_admin() is None  # an admin exists: nothing new is printed
    assert db.identify(secret).is_admin
    store.close()


def test_auth_is_off_for_the_local_default(tmp_path):
    store = SqlStore(f"sqlite:///{tmp_path / 'l.db'}", ObjectStore.local(tmp_path / "o"))
    with TestClient(create_app(store)) as c:
        assert c.get(f"{API}/whoami").json() == {"user": "local", "is_admin": True,
                                                 "auth": False, "bindings": []}
        assert c.post(f"{API}/experiments", json={"name": "x"}).status_code == 201
        assert c.get(f"{API}/ui/session").json() == {"auth": False, "user": "local"}
    store.close()
