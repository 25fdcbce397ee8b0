"""The model registry through a real server: the same Python API as locally, the same errors.

Each test starts a server (auth on, local or PostgreSQL store) in a thread and talks to
it through ``cairn.Client(url)`` / ``cairn.set_tracking_uri(url)``, one token per user:

* alice: editor of every experiment and model (creates them, registers, requests);
* bob: approver of every model;
* vera: viewer of everything.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import httpx
import numpy as np
import pytest
from conformance_backends import provision
from serving import ThreadedServer

import cairn
from cairn.errors import AlreadyExists, Conflict, InvalidArgument, NotFound, PermissionDenied
from cairn.registry.remote import RemoteRegistry
from cairn.server import ServerSettings, create_app
from cairn.store.http import HttpStore

from .api_world import ADMIN_TOKEN, API, STORES, open_store, registry_client

ROLES = {"alice": [("experiment", "editor"), ("model", "editor")],
         "bob": [("experiment", "viewer"), ("model", "approver")],
         "vera": [("experiment", "viewer"), ("model", "viewer")]}


class Server:
    def __init__(self, app, store, url: str, tmp_path: Path) -> None:
        self.app, self.store, self.url, self.tmp = app, store, url, tmp_path
        self.tokens: dict[str, str] = {"root": ADMIN_TOKEN}
        self._stores: list[HttpStore] = []

    def setup(self) -> "Server":
        with httpx.Client(base_url=self.url + API,
                          headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=60) as http:
            self.tokens.update(provision(http, ROLES))
        self.app.state.cairn.flush_audit()  # the audit chain has its head (see settle_audit)
        return self

    def client(self, user: str) -> cairn.Client:
        """A Client as ``user`` (what CAIRN_TRACKING_TOKEN gives in that user's process)."""
        store = HttpStore(self.url, token=self.tokens[user], spool_dir=self.tmp / f"spool-{user}")
        self._stores.append(store)
        client = cairn.Client(self.url, user=user)
        client._store = store
        return client

    def close(self) -> None:
        for s in self._stores:
            s.close()


@pytest.fixture(params=STORES)
def server(request, tmp_path, monkeypatch):
    monkeypatch.setenv("CAIRN_CAPTURE_ENV", "0")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the model cache
    store = open_store(request.param, tmp_path, request)
    app = create_app(store, settings=ServerSettings(
        auth=True, bootstrap_token=ADMIN_TOKEN, bootstrap_user="root", token_cache_s=0))
    app.state.cairn.start()
    with ThreadedServer(app) as url:
        srv = Server(app, store, url, tmp_path).setup()
        yield srv
        srv.close()
    store.close()


def _data():
    X = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 0.2], [1.0, 0.9], [0.1, 0.0], [0.9, 1.0]])
    return X, np.array([0, 1, 0, 1, 0, 1])


def _fit(C: float):
    from sklearn.linear_model import LogisticRegression

    X, y = _data()
    return LogisticRegression(C=C).fit(X, y)


def _log_locally(tmp_path: Path, models: list) -> list:
    """The same registrations in a local store: what the server must end up agreeing with."""
    client = cairn.Client(str(tmp_path / "local"), user="alice")
    X, _ = _data()
    out = []
    for i, model in enumerate(models):
        run = client.create_run(name=f"r{i}", params={"C": model.C})
        client.log_metric(run.id, "acc", 1.0)
        out.append(client.register_model("clf", model, run_id=run.id, input_example=X[:2],
                                         datasets=["transactions@3"]))
    return out


def test_log_promote_with_approval_alias_load_bump_and_rollback(server, tracking, spool,
                                                                 monkeypatch, tmp_path):
    X, _ = _data()
    first, second = _fit(0.5), _fit(5.0)
    monkeypatch.setenv("CAIRN_TRACKING_TOKEN", server.tokens["alice"])
    cairn.set_tracking_uri(server.url)  # the tracking fixture resets the fluent state
    cairn.set_experiment("remote")
    assert isinstance(cairn.Client()._registry, RemoteRegistry)
    mvs, runs = [], []
    for model in (first, second):
        with cairn.start_run(params={"C": model.C}) as run:
            cairn.log_metric("acc", 1.0)
            mvs.append(cairn.log_model(model, "clf", input_example=X[:2],
                                       datasets=["transactions@3"]))
        runs.append(run)
    v1, v2 = mvs
    alice, bob = cairn.Client(), server.client("bob")

    # What the server recorded is what a local registration records.
    local = _log_locally(tmp_path, [first, second])
    for remote_mv, local_mv, run in zip(mvs, local, runs):
        assert remote_mv.version == local_mv.version and remote_mv.bump == local_mv.bump
        assert remote_mv.tree_oid == local_mv.tree_oid  # the very same files
        for field in ("flavor", "signature", "requirements", "fingerprint", "params",
                      "metrics", "datasets", "bump_reasons"):
            assert getattr(remote_mv, field) == getattr(local_mv, field), field
        assert remote_mv.source_run_id == run.id and remote_mv.created_by == "alice"
        assert remote_mv.lineage["run"]["id"] == run.id
        files = [e.path for e in alice.list_artifacts(run.id)]
        assert f"models/clf/{remote_mv.version}/cairn-model.json" in files
        assert f"models/clf/{remote_mv.version}/model/model.pkl" in files
    assert (v1.version, v2.version) == ("1.0.0", "1.1.0") and v2.parent == "clf/1.0.0"
    assert v1.params["C"] == "0.5" and v1.metrics == {"acc": 1.0}
    assert v1.datasets == ({"name": "transactions", "version": "3"},)

    # Production needs one approval, and never the requester's own.
    policy = alice.set_stage_policy("clf", "production", approvals=1)
    assert policy in alice.get_stage_policies("clf")
    assert alice.transition_model_version_stage("clf", "1.0.0", "staging").stage == "Staging"
    with pytest.raises(PermissionDenied, match="approval"):
        alice.transition_model_version_stage("clf", "1.0.0", "production")
    req = alice.request_transition("clf", "1.0.0", "production", "ship it")
    assert req.status == "pending" and req.requested_by == "alice"
    with pytest.raises(PermissionDenied, match="cannot approve"):
        alice.approve(req.id)
    assert alice.get_transition_request(req.id).status == "pending"
    done = bob.approve(req.id, "lgtm")
    assert done.status == "applied" and [a.user for a in done.approvals] == ["bob"]
    assert alice.resolve_model("clf@production").version == "1.0.0"

    # An alias; load by it: the same predictions as the model that was logged.
    assert "champion" in alice.set_alias("clf", "champion", "1.0.0").aliases
    loaded = cairn.models.load("clf@champion")
    assert loaded.predict(X).tolist() == first.predict(X).tolist()
    assert np.allclose(loaded.predict_proba(X), first.predict_proba(X))
    for ref in ("models:/clf@champion", "clf/1.0.0", "clf@Production"):
        assert alice.resolve_model(ref).version == "1.0.0"
    assert alice.resolve_model("clf@latest").version == "1.1.0"
    assert alice.get_latest_model_version("clf").version == "1.1.0"

    # The second version replaces the first in production; rollback puts it back.
    req2 = alice.request_transition("clf", "1.1.0", "production")
    bob.approve(req2.id)
    assert alice.get_model_version("clf", "1.0.0").stage == "Archived"
    assert cairn.models.load("clf@production").predict(X).tolist() == second.predict(X).tolist()
    back = alice.rollback("clf", reason="1.1.0 misbehaves")
    assert back.version == "1.0.0" and back.stage == "Production"
    assert alice.get_model_version("clf", "1.1.0").stage == "Archived"
    assert cairn.models.load("clf@production").predict(X).tolist() == first.predict(X).tolist()
    assert alice.model_version_at("clf", "production", dt.datetime.now()).version == "1.0.0"
    assert alice.model_version_at("clf", "@champion", dt.datetime.now()).version == "1.0.0"
    assert alice.model_version_at("clf", "production", 0) is None
    kinds = [e.kind for e in alice.model_history("clf")]
    for kind in ("register", "policy", "stage", "request", "approve", "alias", "rollback"):
        assert kind in kinds
    assert alice.model_history("clf")[-1].reason == "1.1.0 misbehaves"
    assert [r.status for r in alice.list_transition_requests("clf", status=None)] == \
        ["applied", "applied"]
    assert alice.list_transition_requests() == []  # nothing pending anywhere

    # The server's own registry holds the same versions (nothing was registered twice).
    there = registry_client(server.store).list_model_versions("clf")
    assert [m.version for m in there] == ["1.0.0", "1.1.0"]
    assert there[0].digest == v1.digest
    assert [r.ok for r in alice.verify_model("clf")] == [True, True]
    root = server.client("root")  # the audit log is for server admins
    made = root.audit_log(target="model:clf", action="model_version.create")
    assert sorted((e.after["version"], e.actor) for e in made) == \
        [("1.0.0", "alice"), ("1.1.0", "alice")]
    assert root.verify_audit_log().ok
    with pytest.raises(PermissionDenied):
        alice.audit_log()
    alice.delete_alias("clf", "champion")
    with pytest.raises(NotFound, match="no alias 'champion'"):
        alice.resolve_model("clf@champion")


def test_register_without_a_run_download_and_diff(server, tmp_path):
    alice = server.client("alice")
    X, _ = _data()
    model = _fit(1.0)
    mv = alice.register_model("plain", model, description="no run",
                              datasets=[{"name": "tx", "version": 2, "role": "eval"}])
    assert (mv.version, mv.source_run_id, mv.description) == ("1.0.0", None, "no run")
    assert mv.datasets == ({"name": "tx", "version": "2", "role": "eval"},)
    again = alice.register_model("plain", _fit(2.0), bump="major", parent="plain/1.0.0")
    assert again.version == "2.0.0" and again.parent == "plain/1.0.0"
    out = alice.download_model("plain/1.0.0", tmp_path / "dl")
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == \
        ["cairn-model.json", "model.pkl"]
    assert alice.load_model("plain@latest").predict(X).tolist() == _fit(2.0).predict(X).tolist()
    diff = alice.diff_model_versions("plain", "1.0.0", "2.0.0")
    assert diff["params"]["C"] == ["1.0", "2.0"] and diff["files"]["changed"] == ["model/model.pkl"]
    # The spool keeps no copies of what the server now has.
    assert not [p for p in (tmp_path / "spool-alice").rglob("objects/*/*") if p.is_file()]


def test_errors_come_back_as_the_same_classes_and_change_nothing(server):
    alice, vera = server.client("alice"), server.client("vera")
    model = _fit(1.0)
    alice.register_model("clf", model)
    with pytest.raises(NotFound, match="no registered model named 'nope'"):
        alice.get_registered_model("nope")
    with pytest.raises(NotFound):
        alice.load_model("nope@champion")
    with pytest.raises(NotFound):
        alice.get_model_version("clf", "9.9.9")
    with pytest.raises(NotFound, match="no version in Production"):
        alice.resolve_model("clf@production")
    with pytest.raises(PermissionDenied):
        vera.register_model("clf", model)
    with pytest.raises(PermissionDenied):
        vera.set_alias("clf", "champion", "1.0.0")
    with pytest.raises(AlreadyExists, match="immutable"):
        alice.register_model("clf", model, version="1.0.0")
    with pytest.raises(Conflict, match="already in Development"):
        alice.request_transition("clf", "1.0.0", "development")
    with pytest.raises(NotFound, match="signing key 'mine' not found"):
        alice.register_model("clf", model, signing_key="mine")
    with pytest.raises(PermissionDenied, match="not an admin"):
        alice.set_naming_policy(template="{project}_{model_type}")
    with pytest.raises(InvalidArgument, match="needs at least one"):
        alice.set_naming_policy(template="no-fields")
    with pytest.raises(InvalidArgument, match="version= or bump="):
        alice.register_model("clf", model, version="2.0.0", bump="major")
    with pytest.raises(InvalidArgument, match="unknown stage"):
        alice.transition_model_version_stage("clf", "1.0.0", "prod")
    # Nothing above registered or moved anything.
    assert [(m.version, m.stage) for m in vera.list_model_versions("clf")] == \
        [("1.0.0", "Development")]
    assert vera.get_registered_model("clf").aliases == {}


def test_a_missing_model_is_not_found_to_who_may_view_models_and_denied_to_others(server):
    """As in a local store, changing a model that does not exist is NotFound, not a missing
    role, for anyone who may view it; a user with no role on models learns nothing."""
    alice, vera = server.client("alice"), server.client("vera")
    alice.register_model("clf", _fit(1.0))
    for c in (alice, vera):  # alice edits every model, administers only hers; vera views
        with pytest.raises(NotFound, match="no registered model named 'nope'"):
            c.set_stage_policy("nope", "production", approvals=1)
        with pytest.raises(NotFound, match="no registered model named 'nope'"):
            c.set_alias("nope", "champion", "1.0.0")
    with pytest.raises(PermissionDenied, match="admin role"):
        vera.set_stage_policy("clf", "production", approvals=1)  # it exists: a missing role
    with httpx.Client(base_url=server.url + API,
                      headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=60) as http:
        assert http.post("/users", json={"name": "nora"}).status_code == 201
        server.tokens["nora"] = http.post("/users/nora/tokens", json={"name": "t"}).json()["token"]
    nora = server.client("nora")  # no role on any model
    for name in ("clf", "nope"):
        with pytest.raises(PermissionDenied):
            nora.set_stage_policy(name, "production", approvals=1)
        with pytest.raises(PermissionDenied):
            nora.get_registered_model(name)
    assert [p.approvals for p in alice.get_stage_policies("clf")] == [0, 0, 0, 0]


def test_a_requester_withdraws_own_request_but_rejects_no_one_elses(server):
    """Withdrawing is a rejection by the requester: the editor role that asked is enough;
    anyone else's request still needs an approver to reject it."""
    alice, bob, root = server.client("alice"), server.client("bob"), server.client("root")
    root.register_model("gate", _fit(1.0))  # a model's creator gets every role on it
    root.set_stage_policy("gate", "production", approvals=1)
    mine = alice.request_transition("gate", "1.0.0", "production", "ship it")
    withdrawn = alice.reject(mine.id, "not yet")
    assert (withdrawn.status, withdrawn.resolved_by) == ("rejected", "alice")
    assert alice.get_model_version("gate", "1.0.0").stage == "Development"
    kinds = [(e.kind, e.actor) for e in alice.model_history("gate")]
    assert ("reject", "alice") in kinds

    theirs = root.request_transition("gate", "1.0.0", "production")
    with pytest.raises(PermissionDenied, match="approver"):
        alice.reject(theirs.id)
    assert alice.get_transition_request(theirs.id).status == "pending"  # nothing changed
    assert bob.reject(theirs.id, "no").status == "rejected"


def test_files_claimed_but_not_uploaded_are_refused(server):
    """The REST side of a remote registration: objects must be on the server first."""
    with httpx.Client(base_url=server.url + API,
                      headers={"authorization": f"Bearer {server.tokens['alice']}"}, timeout=60) as http:
        assert http.post("/models", json={"name": "ghost"}).status_code == 201
        r = http.post("/models/ghost/versions", json={"files": [
            {"path": "cairn-model.json", "size": 3, "digest": "ab" * 32}]})
        assert r.status_code == 409 and "upload them first" in r.json()["message"]
        r = http.post("/models/ghost/versions", json={"files": [], "source": "runs:/x/model"})
        assert r.status_code == 400
        r = http.post("/models/ghost/versions", json={"files": [
            {"path": "model/model.pkl", "size": 3, "digest": "ab" * 32}]})
        assert r.status_code == 400 and "cairn-model.json" in r.json()["message"]
        r = http.post("/models/ghost/versions", json={"files": [
            {"path": "cairn-model.json", "size": 3, "digest": "ab" * 32}],
            "datasets": [{"version": "1"}, {"name": 5}]})
        assert r.status_code == 400
        r = http.post("/models/ghost/versions", json={"files": [
            {"path": "../cairn-model.json", "size": 3, "digest": "ab" * 32}]})
        assert r.status_code == 400
        assert http.get("/models/ghost/versions").json() == []


def test_the_docs_example_runs(server, tracking, spool, monkeypatch):
    """docs/server.md "Using the registry against a server", run against a real server."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "server.md").read_text()
    section = text[text.index("## Using the registry against a server"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.setenv("CAIRN_TRACKING_TOKEN", server.tokens["alice"])
    namespace: dict = {}
    exec(compile(code.replace("http://localhost:5000", server.url), "docs/server.md", "exec"),
         namespace)
    assert namespace["loaded"].predict([[0.0, 1.0]]).tolist() == [0]


def test_the_cli_drives_the_server_registry(server, monkeypatch):
    import json

    from click.testing import CliRunner

    from cairn.cli.main import cli

    alice = server.client("alice")
    alice.register_model("clf", _fit(1.0))
    monkeypatch.setenv("CAIRN_TRACKING_TOKEN", server.tokens["alice"])
    monkeypatch.setenv("CAIRN_SPOOL_DIR", str(server.tmp / "spool-cli"))
    runner = CliRunner()

    def cairn_cli(*args: str):
        return runner.invoke(cli, ["--uri", server.url, "models", *args])

    r = cairn_cli("promote", "clf", "1.0.0", "staging")
    assert r.exit_code == 0, r.output
    r = cairn_cli("show", "clf@staging", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["version"] == "1.0.0"
    r = cairn_cli("show", "clf")  # the model, with its policies
    assert r.exit_code == 0 and "Staging: 1.0.0" in r.output, r.output
    r = cairn_cli("naming", "--template", "{project}_{model_type}")
    assert r.exit_code == 1 and "not an admin" in r.output  # alice: not a server admin
    r = cairn_cli("naming", "--json")
    assert r.exit_code == 0 and json.loads(r.output) is None
    r = cairn_cli("show", "nope@production")
    assert r.exit_code == 1 and "no registered model named 'nope'" in r.output


def test_a_version_the_server_signed_verifies_against_the_callers_trusted_key(
        server, tmp_path, monkeypatch):
    from cairn.errors import InvalidSignature
    from cairn.registry import signing

    monkeypatch.setenv("CAIRN_KEYS_DIR", str(tmp_path / "keys"))  # the server's default key
    _path, pem = signing.create_key_files()
    alice = server.client("alice")
    X, _ = _data()
    mv = alice.register_model("signed", _fit(1.0))
    assert mv.signed and isinstance(mv.signature_bytes, bytes)
    assert alice.load_model("signed/1.0.0").predict(X).tolist() == _fit(1.0).predict(X).tolist()
    with pytest.raises(InvalidSignature, match="not trusted here"):
        alice.load_model("signed/1.0.0", verify_signature=True)
    alice.load_model("signed/1.0.0", verify_signature=True, trusted_keys=[pem])
    assert alice.verify_model("signed", trusted_keys=[pem])[0].signature == "verified"
