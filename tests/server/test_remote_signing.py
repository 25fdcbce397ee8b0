"""Registry-wide administration through a real server: naming policy, trusted keys, signing.

Each test runs against a server in a thread (auth on), on the local store and on
PostgreSQL (the ``server`` fixture of test_remote_registry).  Private keys stay with
the client: it registers, signs what the server recorded, and attaches the signature;
the server keeps it only when it verifies against a key the server trusts, and only
once.  root is a server admin; alice an editor of every model, vera a viewer.
"""

from __future__ import annotations

import base64
import json

import httpx
import pytest
import sqlalchemy as sa

from cairn.errors import (
    Conflict, InvalidArgument, InvalidSignature, NotFound, PermissionDenied,
)
from cairn.registry import signing
from cairn.server.context import sql_engine

from .api_world import API, registry_client
from .test_remote_registry import _data, _fit, server  # noqa: F401  (a fixture)


@pytest.fixture(autouse=True)
def _keys_dir(tmp_path, monkeypatch):
    """An empty keys directory: no default key signs anything unless a test makes one."""
    monkeypatch.setenv("CAIRN_KEYS_DIR", str(tmp_path / "keys"))
    return tmp_path / "keys"


def _http(srv, user: str) -> httpx.Client:
    return httpx.Client(base_url=srv.url + API,
                        headers={"authorization": f"Bearer {srv.tokens[user]}"}, timeout=60)


def _signature(srv, name: str, version: str):
    """(key id, bytes) stored for a version, read from the server's own database."""
    T = sa.table("model_versions", sa.column("name"), sa.column("version"),
                 sa.column("signing_key"), sa.column("signature_bytes"))
    with sql_engine(srv.store).connect() as conn:
        row = conn.execute(sa.select(T.c.signing_key, T.c.signature_bytes)
                           .where(T.c.name == name, T.c.version == version)).one()
    return row.signing_key, None if row.signature_bytes is None else bytes(row.signature_bytes)


def _expected_signature(key_path, mv) -> bytes:
    """What a local registration signs: the canonical payload, with the same private key."""
    private, _kid = signing.load_private(key_path)
    return signing.sign(private, signing.payload(mv.name, mv.version, mv.tree_oid,
                                                 mv.source_run_id, mv.created_at, mv.digest))


def test_naming_policy_set_over_http_is_enforced_on_a_remote_register(server):  # noqa: F811  (the imported fixture)
    alice, root = server.client("alice"), server.client("root")
    model = _fit(1.0)
    with _http(server, "vera") as vera:
        r = vera.put("/registry/naming", json={"template": "{project}_{model_type}"})
        assert r.status_code == 403 and "not an admin" in r.json()["message"]
        assert vera.get("/registry/naming").json() is None  # vera's try changed nothing
    with _http(server, "root") as http:
        r = http.put("/registry/naming", json={"template": "{project}_{model_type}"})
        assert r.status_code == 200, r.text
        assert r.json() == {"template": "{project}_{model_type}", "regex": None}
        r = http.put("/registry/naming", json={"template": "{a}", "regex": "x"})
        assert r.status_code == 400 and "not both" in r.json()["message"]
        r = http.put("/registry/naming", json={"regex": "(unclosed"})
        assert r.status_code == 400 and "does not compile" in r.json()["message"]
    assert alice.get_naming_policy().template == "{project}_{model_type}"  # bad PUTs kept it

    with pytest.raises(InvalidArgument, match="does not follow this registry's naming policy"):
        alice.register_model("fraud", model)
    with pytest.raises(NotFound):
        alice.get_registered_model("fraud")  # nothing registered
    assert alice.register_model("payments_clf", model).version == "1.0.0"

    events = root.audit_log(action="registry.naming_policy")
    assert [(e.actor, e.before, e.after) for e in events] == \
        [("root", None, {"template": "{project}_{model_type}", "regex": None})]
    assert root.set_naming_policy(regex=r"[a-z]+").regex == "[a-z]+"
    assert alice.register_model("fraud", model).version == "1.0.0"
    assert root.set_naming_policy() is None
    assert alice.get_naming_policy() is None


def test_the_versions_a_run_produced(server, tmp_path):  # noqa: F811  (the imported fixture)
    alice = server.client("alice")
    run = alice.create_run(name="train")
    a = alice.register_model("a", _fit(1.0), run_id=run.id)
    b = alice.register_model("b", _fit(2.0), run_id=run.id)
    alice.register_model("a", _fit(3.0))  # not from the run
    other = alice.create_run(name="other")
    got = alice.model_versions_of_run(run.id)
    assert [(m.name, m.version, m.digest) for m in got] == \
        [("a", "1.0.0", a.digest), ("b", "1.0.0", b.digest)]
    # The same answer as the server's own registry gives.
    there = registry_client(server.store).model_versions_of_run(run.id)
    assert [m.digest for m in there] == [m.digest for m in got]
    assert alice.model_versions_of_run(other.id) == []
    with pytest.raises(NotFound, match="run 'nope' does not exist"):
        alice.model_versions_of_run("nope")

    # Someone who may read the run but only one of the models sees that model's version.
    with _http(server, "root") as http:
        assert http.post("/users", json={"name": "nina"}).status_code == 201
        token = http.post("/users/nina/tokens", json={"name": "t"}).json()["token"]
        for rtype, rid in (("experiment", "*"), ("model", "b")):
            r = http.put("/roles", json={"user": "nina", "resource_type": rtype,
                                         "resource_id": rid, "role": "viewer"})
            assert r.status_code == 200, r.text
    server.tokens["nina"] = token
    assert [m.name for m in server.client("nina").model_versions_of_run(run.id)] == ["b"]


def test_a_key_trusted_over_http_signs_remote_registrations(server, tmp_path):  # noqa: F811  (the imported fixture)
    alice, root = server.client("alice"), server.client("root")
    X, _ = _data()
    key_path, pem = signing.create_key_files("alice")
    with _http(server, "vera") as vera:
        r = vera.post("/registry/keys", json={"name": "alice", "public_key": pem})
        assert r.status_code == 403
        assert vera.get("/registry/keys").json() == []
    with _http(server, "root") as http:
        r = http.post("/registry/keys", json={"name": "alice", "public_key": pem})
        assert r.status_code == 201, r.text
        kid = r.json()["key_id"]
        assert kid == signing.key_id(pem) and r.json()["created_by"] == "root"
        r = http.post("/registry/keys", json={"name": "x", "public_key": "not a key"})
        assert r.status_code == 400 and "PEM" in r.json()["message"]
        assert http.post("/registry/keys", json={"name": "again", "public_key": pem}
                         ).status_code == 409
    assert [k.key_id for k in alice.list_signing_keys()] == [kid]

    run = alice.create_run(name="signed")
    mv = alice.register_model("clf", _fit(1.0), run_id=run.id, signing_key="alice")
    assert mv.signed and mv.signing_key == kid
    # Exactly what a local registration stores: the same key over the same payload.
    assert mv.signature_bytes == _expected_signature(key_path, mv)
    assert _signature(server, "clf", mv.version) == (kid, mv.signature_bytes)
    # Loading verifies it against the server's trusted keys, as it would locally.
    loaded = alice.load_model("clf/1.0.0", verify_signature=True)
    assert loaded.predict(X).tolist() == _fit(1.0).predict(X).tolist()
    assert [r.signature for r in alice.verify_model("clf")] == ["verified"]
    assert [r.signature for r in registry_client(server.store).verify_model("clf")] == \
        ["verified"]
    signed = root.audit_log(action="model_version.sign")
    assert [(e.actor, e.target, e.after) for e in signed] == \
        [("alice", "model:clf/1.0.0", {"signing_key": kid})]
    assert root.audit_log(action="key.trust")[0].actor == "root"

    # A default key the server trusts signs without being named.
    default_path, default_pem = signing.create_key_files()
    root.trust_signing_key(default_pem, "ci")
    mv2 = alice.register_model("clf", _fit(2.0))
    assert mv2.signing_key == signing.key_id(default_pem)
    assert mv2.signature_bytes == _expected_signature(default_path, mv2)

    # Revoked: versions it signed no longer verify, and it signs nothing new.
    root.revoke_signing_key(kid)
    assert kid not in [k.key_id for k in alice.list_signing_keys()]
    revoked = [k for k in alice.list_signing_keys(include_revoked=True) if k.key_id == kid]
    assert revoked[0].revoked_at is not None
    with pytest.raises(InvalidSignature, match="not trusted here"):
        alice.load_model("clf/1.0.0", verify_signature=True)
    with pytest.raises(InvalidArgument, match="not trusted by the server"):
        alice.register_model("clf", _fit(4.0), signing_key="alice")
    assert [m.version for m in alice.list_model_versions("clf")] == ["1.0.0", "1.1.0"]
    with pytest.raises(Conflict, match="already revoked"):
        root.revoke_signing_key(kid)
    with pytest.raises(NotFound):
        root.revoke_signing_key("0" * 16)
    with pytest.raises(PermissionDenied):
        alice.revoke_signing_key(signing.key_id(default_pem))


def test_a_signature_is_stored_only_when_it_verifies_and_only_once(server, tmp_path):  # noqa: F811  (the imported fixture)
    alice = server.client("alice")
    trusted_path, trusted_pem = signing.create_key_files("trusted")
    stranger_path, _ = signing.create_key_files("stranger")
    kid = server.client("root").trust_signing_key(trusted_pem, "trusted").key_id
    mv = alice.register_model("clf", _fit(1.0))
    assert not mv.signed  # no default key anywhere: unsigned

    stranger_sig = _expected_signature(stranger_path, mv)
    stranger_kid = signing.load_private(stranger_path)[1]
    good = _expected_signature(trusted_path, mv)
    private, _ = signing.load_private(trusted_path)
    wrong = signing.sign(private, signing.payload(mv.name, "9.9.9", mv.tree_oid,
                                                  mv.source_run_id, mv.created_at, mv.digest))

    def attach(user: str, key_id: str, sig: bytes | str):
        body = {"key_id": key_id,
                "signature": sig if isinstance(sig, str) else base64.b64encode(sig).decode()}
        with _http(server, user) as http:
            return http.post("/models/clf/versions/1.0.0/signature", json=body)

    r = attach("alice", stranger_kid, stranger_sig)
    assert r.status_code == 400 and "not trusted on this server" in r.json()["message"]
    r = attach("alice", kid, wrong)
    assert r.status_code == 400 and "does not verify" in r.json()["message"]
    r = attach("alice", kid, "%%not base64%%")
    assert r.status_code == 400 and "base64" in r.json()["message"]
    r = attach("vera", kid, good)
    assert r.status_code == 403
    assert _signature(server, "clf", "1.0.0") == (None, None)  # nothing stored
    with pytest.raises(InvalidArgument, match="not trusted on this server"):
        alice._registry.attach_signature("clf", "1.0.0", stranger_kid, stranger_sig)

    r = attach("alice", kid, good)
    assert r.status_code == 200, r.text
    assert r.json()["signing_key"] == kid
    r = attach("alice", kid, good)  # immutable, even the same signature again
    assert r.status_code == 409 and "already signed" in r.json()["message"]
    with pytest.raises(Conflict, match="already signed"):
        alice._registry.attach_signature("clf", "1.0.0", kid, good)
    assert _signature(server, "clf", "1.0.0") == (kid, good)
    assert alice.load_model("clf/1.0.0", verify_signature=True) is not None
    with _http(server, "alice") as http:
        r = http.post("/models/clf/versions/7.0.0/signature",
                      json={"key_id": kid, "signature": base64.b64encode(good).decode()})
        assert r.status_code == 404


def test_a_tampered_signature_fails_load_and_verify(server, tmp_path):  # noqa: F811  (the imported fixture)
    alice = server.client("alice")
    key_path, pem = signing.create_key_files("alice")
    server.client("root").trust_signing_key(pem, "alice")
    mv = alice.register_model("clf", _fit(1.0), signing_key="alice")
    forged = bytes([mv.signature_bytes[0] ^ 1]) + mv.signature_bytes[1:]
    T = sa.table("model_versions", sa.column("name"), sa.column("signature_bytes"))
    with sql_engine(server.store).begin() as conn:
        conn.execute(sa.update(T).where(T.c.name == "clf").values(signature_bytes=forged))

    with pytest.raises(InvalidSignature, match="does not verify"):
        alice.load_model("clf/1.0.0")
    with pytest.raises(InvalidSignature, match="does not verify"):
        alice.download_model("clf/1.0.0", tmp_path / "dl")
    assert not (tmp_path / "dl").exists()
    [report] = alice.verify_model("clf")
    assert report.signature == "invalid" and not report.ok
    assert "does not verify" in report.problems[0]


def test_the_keys_and_naming_commands_drive_the_server(server, tmp_path, monkeypatch, _keys_dir):  # noqa: F811  (the imported fixture)
    from click.testing import CliRunner

    from cairn.cli.main import cli

    monkeypatch.setenv("CAIRN_SPOOL_DIR", str(tmp_path / "spool-cli"))
    runner = CliRunner()

    def cairn_cli(user: str, *args: str):
        from cairn.store import close_stores

        # Each command as a fresh process of ``user`` would run it: no store opened by another.
        close_stores("http")
        monkeypatch.setenv("CAIRN_TRACKING_TOKEN", server.tokens[user])
        return runner.invoke(cli, ["--uri", server.url, *args])

    # alice (no server admin) gets her key pair, and is told who must trust it.
    r = cairn_cli("alice", "keys", "create", "--name", "alice")
    assert r.exit_code == 1 and "only a server admin may trust it" in r.output, r.output
    assert "cairn keys trust" in r.output and (_keys_dir / "alice.key").is_file()
    r = cairn_cli("alice", "keys", "trust", str(_keys_dir / "alice.pub"), "--name", "alice")
    assert r.exit_code == 1 and "not an admin" in r.output
    r = cairn_cli("root", "keys", "trust", str(_keys_dir / "alice.pub"), "--name", "alice",
                  "--json")
    assert r.exit_code == 0, r.output
    kid = json.loads(r.output)["key_id"]
    r = cairn_cli("root", "keys", "create", "--name", "ci", "--json")  # an admin: trusted at once
    assert r.exit_code == 0, r.output
    ci = json.loads(r.output)["key_id"]
    r = cairn_cli("vera", "keys", "ls", "--json")
    assert r.exit_code == 0 and [k["key_id"] for k in json.loads(r.output)] == [kid, ci]
    r = cairn_cli("root", "keys", "revoke", ci)
    assert r.exit_code == 0 and f"revoked key {ci}" in r.output
    r = cairn_cli("vera", "keys", "ls", "--all", "--json")
    assert [(k["key_id"], k["revoked_at"] is not None) for k in json.loads(r.output)] == \
        [(kid, False), (ci, True)]

    r = cairn_cli("root", "models", "naming", "--template", "{team}_{model}", "--json")
    assert r.exit_code == 0 and json.loads(r.output)["template"] == "{team}_{model}"
    r = cairn_cli("vera", "models", "naming")
    assert r.exit_code == 0 and "template '{team}_{model}'" in r.output
    r = cairn_cli("root", "models", "naming", "--clear")
    assert r.exit_code == 0 and "no naming policy" in r.output


def test_who_may_read_and_change_registry_settings(server):  # noqa: F811  (the imported fixture)
    """Every role against every new endpoint: reads for anyone with a token, changes for admins."""
    _path, pem = signing.create_key_files("k")
    kid = signing.key_id(pem)
    alice = server.client("alice")
    mv = alice.register_model("clf", _fit(1.0))
    run = alice.create_run(name="r")
    sig = base64.b64encode(_expected_signature(_path, mv)).decode()
    reads = [("get", "/registry/naming", None), ("get", "/registry/keys", None),
             ("get", f"/runs/{run.id}/model-versions", None)]
    admin_only = [("put", "/registry/naming", {"regex": "[a-z]+"}),
                  ("post", "/registry/keys", {"name": "k", "public_key": pem}),
                  ("post", f"/registry/keys/{kid}/revoke", None)]
    for user in ("vera", "alice", "bob", "root"):
        with _http(server, user) as http:
            for method, path, body in reads:
                r = http.request(method, path, json=body)
                assert r.status_code == 200, (user, path, r.text)
            for method, path, body in admin_only:
                r = http.request(method, path, json=body)
                want = 403 if user != "root" else (201 if method == "post" and
                                                   path.endswith("keys") else 200)
                assert r.status_code == want, (user, path, r.text)
    # Attaching a signature needs editor on the model (approver includes it).
    with _http(server, "vera") as http:
        r = http.post("/models/clf/versions/1.0.0/signature", json={"key_id": kid,
                                                                     "signature": sig})
        assert r.status_code == 403
    with _http(server, "bob") as http:  # the key is revoked by now: refused, as untrusted
        r = http.post("/models/clf/versions/1.0.0/signature", json={"key_id": kid,
                                                                     "signature": sig})
        assert r.status_code == 400 and "revoked" in r.json()["message"]
    with httpx.Client(base_url=server.url + API, timeout=60) as anonymous:
        for method, path, body in reads + admin_only:
            assert anonymous.request(method, path, json=body).status_code == 401
    assert _signature(server, "clf", "1.0.0") == (None, None)
