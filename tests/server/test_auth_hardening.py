"""Auth hardening against a real `cairn server` process: tokens made by expiring tokens,
what answers without a token, and where the bootstrap token comes from."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from serving import ProcessServer

API = "/api/v1"
ADMIN = "cairn_hardening-bootstrap-admin-token-0001"


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`cairn server --auth` on a local store, its admin token from CAIRN_BOOTSTRAP_TOKEN."""
    tmp = tmp_path_factory.mktemp("hardening")
    srv = ProcessServer("--auth", log=tmp / "server.log",
                        env={"CAIRN_TRACKING_URI": str(tmp / "store"),
                             "CAIRN_BOOTSTRAP_TOKEN": ADMIN})
    with srv:
        with httpx.Client(base_url=srv.url, timeout=30) as client:
            yield client


def _user(client: httpx.Client, name: str) -> None:
    r = client.post(f"{API}/users", json={"name": name}, headers=bearer(ADMIN))
    assert r.status_code in (201, 409), r.text


def _token(client: httpx.Client, user: str, by: str, **body) -> httpx.Response:
    return client.post(f"{API}/users/{user}/tokens", json={"name": "t", **body},
                       headers=bearer(by))


# -- (2) a token may not make one that outlives it ---------------------------------------
def test_an_expiring_token_cannot_make_a_token_that_outlives_it(server):
    c = server
    _user(c, "alice")
    _user(c, "bob")
    parent_expiry = int(time.time() * 1000) + 4_000
    r = _token(c, "alice", ADMIN, expires_at=parent_expiry)
    assert r.status_code == 201, r.text
    short = r.json()["token"]

    # Without expires_at, the new token gets its parent's expiry, not "never".
    child = _token(c, "alice", short, name="forever")
    assert child.status_code == 201, child.text
    assert child.json()["expires_at"] == parent_expiry
    # Asking for a later expiry is refused, with a message that says why.
    later = _token(c, "alice", short, expires_at=parent_expiry + 3_600_000)
    assert later.status_code == 403, later.text
    assert "outlives" in later.json()["message"]
    # An earlier one is fine.
    earlier = _token(c, "alice", short, expires_at=parent_expiry - 1_000)
    assert earlier.status_code == 201 and earlier.json()["expires_at"] == parent_expiry - 1_000
    # One that would be born expired is refused (it could never be used).
    past = _token(c, "alice", ADMIN, expires_at=int(time.time() * 1000) - 1)
    assert past.status_code == 400 and "in the past" in past.json()["message"]
    # A user without admin makes no token for someone else.
    assert _token(c, "bob", short).status_code == 403
    # An admin's token that never expires still makes tokens that never expire.
    forever = _token(c, "bob", ADMIN)
    assert forever.status_code == 201 and forever.json()["expires_at"] is None

    secret = child.json()["token"]
    assert c.get(f"{API}/whoami", headers=bearer(secret)).status_code == 200
    time.sleep(max(0.0, parent_expiry / 1000 - time.time()) + 0.5)
    # Both are gone together (the server caches identities for 5 s: not past expiry).
    assert c.get(f"{API}/whoami", headers=bearer(short)).status_code == 401
    assert c.get(f"{API}/whoami", headers=bearer(secret)).status_code == 401
    # An expired token makes nothing.
    assert _token(c, "alice", short).status_code == 401


def test_a_revoked_token_makes_nothing(server):
    c = server
    _user(c, "carol")
    made = _token(c, "carol", ADMIN).json()
    own = bearer(made["token"])
    assert c.delete(f"{API}/tokens/{made['id']}", headers=bearer(ADMIN)).status_code == 200
    r = c.post(f"{API}/users/carol/tokens", json={"name": "again"}, headers=own)
    assert r.status_code == 401, r.text


# -- (5) only the probes answer without a token -------------------------------------------
@pytest.mark.parametrize("path", [f"{API}/info", "/api/3.0/mlflow/server-info"])
def test_server_info_needs_a_token(server, path):
    c = server
    assert c.get(path).status_code == 401
    assert c.get(path, headers=bearer("cairn_not-a-token-at-all-000000000")).status_code == 401
    _user(c, "dave")  # a user with no role anywhere may still ask
    token = _token(c, "dave", ADMIN).json()["token"]
    assert c.get(path, headers=bearer(token)).status_code == 200


@pytest.mark.parametrize("path", ["/health", "/ready"])
def test_probes_need_no_token(server, path):
    assert server.get(path).status_code == 200


# -- (6) the bootstrap token stays off the command line -----------------------------------
def _cmdline(srv: ProcessServer) -> str:
    assert srv.proc is not None
    return Path(f"/proc/{srv.proc.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def test_bootstrap_token_from_a_file(tmp_path):
    secret = "cairn_bootstrap-from-a-file-0123456789abcdef"
    path = tmp_path / "token"
    path.write_text(secret + "\n")
    with ProcessServer("--auth", "--bootstrap-token-file", str(path), log=tmp_path / "log",
                       env={"CAIRN_TRACKING_URI": str(tmp_path / "store"),
                            "CAIRN_BOOTSTRAP_TOKEN": ""}) as srv:
        assert secret not in _cmdline(srv)
        r = httpx.get(f"{srv.url}{API}/whoami", headers=bearer(secret), timeout=30)
        assert r.status_code == 200 and r.json()["is_admin"], r.text


def test_bootstrap_token_from_the_environment(server):
    r = server.get(f"{API}/whoami", headers=bearer(ADMIN))
    assert r.status_code == 200 and r.json()["is_admin"]


def test_the_old_flag_still_works_but_warns(tmp_path):
    secret = "cairn_bootstrap-on-the-command-line-0123456789"
    log = tmp_path / "log"
    with ProcessServer("--auth", "--bootstrap-token", secret, log=log,
                       env={"CAIRN_TRACKING_URI": str(tmp_path / "store")}) as srv:
        r = httpx.get(f"{srv.url}{API}/whoami", headers=bearer(secret), timeout=30)
        assert r.status_code == 200 and r.json()["is_admin"], r.text
    assert "--bootstrap-token is deprecated" in log.read_text()


# -- (3) deleting or renaming an experiment needs admin on it, on every route family ----
@pytest.mark.parametrize("prefix", ["/api/2.0/mlflow", "/ajax-api/2.0/mlflow"])
def test_an_editor_neither_deletes_nor_renames_an_experiment(server, prefix):
    c = server
    exp = c.post(f"{API}/experiments", json={"name": f"shared{prefix.count('ajax')}"},
                 headers=bearer(ADMIN)).json()["id"]
    tokens = {}
    for role in ("editor", "admin"):
        user = f"exp-{role}"
        _user(c, user)
        tokens[role] = _token(c, user, ADMIN).json()["token"]
        r = c.put(f"{API}/roles", headers=bearer(ADMIN), json={
            "user": user, "resource_type": "experiment", "resource_id": exp, "role": role})
        assert r.status_code == 200, r.text
    editor, admin = bearer(tokens["editor"]), bearer(tokens["admin"])
    rename = {"experiment_id": exp, "new_name": f"renamed-{exp}"}
    assert c.post(f"{prefix}/experiments/update", json=rename, headers=editor).status_code == 403
    assert c.post(f"{prefix}/experiments/delete", json={"experiment_id": exp},
                  headers=editor).status_code == 403
    got = c.get(f"{prefix}/experiments/get", params={"experiment_id": exp}, headers=editor)
    assert got.json()["experiment"]["lifecycle_stage"] == "active"
    # Editors still tag it; its admins rename, delete and restore it.
    assert c.post(f"{prefix}/experiments/set-experiment-tag", headers=editor, json={
        "experiment_id": exp, "key": "k", "value": "v"}).status_code == 200
    assert c.post(f"{prefix}/experiments/update", json=rename, headers=admin).status_code == 200
    for action in ("delete", "restore"):
        assert c.post(f"{prefix}/experiments/{action}", json={"experiment_id": exp},
                      headers=admin).status_code == 200
