"""`--json` on every command (issue #17): one JSON document on stdout, errors on stderr.

The commands covered here are those that printed only a sentence before: each test checks
the JSON's content and that the sentence without --json is still there.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import cairn
from cairn.cli.main import _commands, cli
from cairn.store.sql.auth import AuthDB
from cairn.store.sql.store import SqlStore
from cairn.store.sql.tables import HEAD_REVISION

LONG_RUNNING = {"server", "ui"}  # they serve until stopped: nothing to report as JSON


def cairn_cli(*args, code=0, store=None):
    """Run `cairn [--store STORE] ARGS...`; check the exit code and that nothing crashed."""
    pre = ["--store", str(store)] if store is not None else []
    result = CliRunner().invoke(cli, [*pre, *map(str, args)], env={"COLUMNS": "200"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == code, (result.stdout, result.stderr)
    return result


def as_json(*args, code=0, store=None):
    """The one JSON document a command prints on stdout with --json (nothing on stderr)."""
    result = cairn_cli(*args, "--json", code=code, store=store)
    assert result.stderr == ""
    return json.loads(result.stdout)


def test_every_command_but_server_and_ui_has_json():
    lacking = [path for path, cmd in _commands(cli)
               if not any("--json" in p.opts for p in cmd.params)]
    assert sorted(lacking) == sorted(LONG_RUNNING)
    for path, cmd in _commands(cli):
        opt = next((p for p in cmd.params if "--json" in p.opts), None)
        if opt is not None:
            assert opt.name == "as_json" and opt.is_flag, path


# -- artifacts get, db upgrade, keys revoke -------------------------------------------------
@pytest.fixture
def run_with_artifacts(tracking, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(bytes(range(256)) * 4)
    (model / "config.json").write_text('{"layers": 3}')
    cairn.set_experiment("json")
    with cairn.start_run(name="with-files") as run:
        cairn.log_artifacts(model, "model")
        cairn.log_text("hello", "notes.txt")
    return run.id


def test_artifacts_get(tracking, run_with_artifacts, tmp_path):
    rid = run_with_artifacts
    out = as_json("artifacts", "get", rid[:10], "model", "-d", tmp_path / "a", store=tracking)
    assert out == {"run_id": rid, "path": "model", "destination": str(tmp_path / "a" / "model"),
                   "files": ["model/config.json", "model/weights.bin"]}
    for rel in out["files"]:
        assert (tmp_path / "a" / rel).is_file()
    everything = as_json("artifacts", "get", rid, "-d", tmp_path / "b", store=tracking)
    assert everything["destination"] == str(tmp_path / "b") and everything["path"] == ""
    assert sorted(everything["files"]) == ["model/config.json", "model/weights.bin", "notes.txt"]
    assert (tmp_path / "b" / "notes.txt").read_text() == "hello"
    human = cairn_cli("artifacts", "get", rid, "notes.txt", "-d", tmp_path / "c", store=tracking)
    assert human.stdout == f"Downloaded to {tmp_path / 'c' / 'notes.txt'}\n"


def test_an_error_with_json_goes_to_stderr_only(tracking, run_with_artifacts, tmp_path):
    rid = run_with_artifacts
    bad = cairn_cli("artifacts", "get", rid, "nothing-here", "-d", tmp_path, "--json", code=1,
                    store=tracking)
    assert bad.stdout == ""
    assert bad.stderr == f"Error: run {rid} has no artifact at 'nothing-here'\n"


def test_db_upgrade(tmp_path):
    fresh = tmp_path / "fresh"
    out = as_json("db", "upgrade", store=fresh)
    assert out == {"url": f"sqlite:///{fresh / 'index.db'}", "revision": HEAD_REVISION}
    assert cairn_cli("db", "upgrade", store=fresh).stdout == f"database at revision {HEAD_REVISION}\n"
    db = f"sqlite:///{tmp_path / 'server.db'}"
    assert as_json("db", "upgrade", "--url", db) == {"url": db, "revision": HEAD_REVISION}


def test_db_upgrade_hides_the_password(tmp_path):
    pytest.importorskip("psycopg")
    bad = cairn_cli("db", "upgrade", "--url", "postgresql+psycopg://u:s3cret@127.0.0.1:1/x",
                    "--json", code=1)
    assert bad.stdout == "" and bad.stderr.startswith("Error: cannot upgrade")
    assert "s3cret" not in bad.stderr


def test_keys_revoke(tracking, tmp_path, monkeypatch):
    pytest.importorskip("cryptography")
    monkeypatch.setenv("CAIRN_USER", "alice")
    keys = tmp_path / "keys"
    a = as_json("keys", "create", "--name", "a", "--dir", keys, store=tracking)
    b = as_json("keys", "create", "--name", "b", "--dir", keys, store=tracking)
    out = as_json("keys", "delete", a["key_id"], store=tracking)
    assert out["key_id"] == a["key_id"] and out["name"] == "a" and out["created_by"] == "alice"
    assert isinstance(out["revoked_at"], int) and out["revoked_at"] >= out["created_at"]
    listed = {k["key_id"]: k for k in as_json("keys", "ls", "--all", store=tracking)}
    assert listed[a["key_id"]] == out  # the record as `keys ls --all --json` shows it
    assert cairn_cli("keys", "delete", b["key_id"], store=tracking).stdout == \
        f"revoked key {b['key_id']}\n"
    again = cairn_cli("keys", "delete", a["key_id"], "--json", code=1, store=tracking)
    assert again.stdout == "" and "already revoked" in again.stderr


# -- users disable, tokens create|revoke, roles grant|revoke ---------------------------------
@pytest.fixture
def db(tmp_path):
    url = f"sqlite:///{tmp_path / 'server.db'}"
    for name in ("alice", "bob"):
        cairn_cli("users", "create", name, "--no-token", "--db", url)
    return url


def _auth(url):
    store = SqlStore(url)
    store.open()
    return store, AuthDB(store.index.engine)


def test_tokens_create_and_revoke(db):
    made = as_json("tokens", "create", "alice", "--name", "ci", "--db", db)
    assert set(made) == {"id", "user", "name", "revoked", "token"}
    assert made["user"] == "alice" and made["name"] == "ci" and made["revoked"] is False
    assert made["token"].startswith("cairn_")
    store, auth = _auth(db)
    try:
        who = auth.identify(made["token"])
        assert who is not None and who.user == "alice"
    finally:
        store.close()
    listed = as_json("tokens", "ls", "--db", db)
    assert listed == [{k: v for k, v in made.items() if k != "token"}]  # never the secret
    human = cairn_cli("tokens", "create", "bob", "--db", db)
    assert human.stdout.startswith("token ") and " for bob (shown once): cairn_" in human.stdout
    revoked = as_json("tokens", "delete", made["id"], "--db", db)
    assert revoked == {"id": made["id"], "user": "alice", "name": "ci", "revoked": True}
    bob_id = human.stdout.split()[1]
    assert cairn_cli("tokens", "delete", bob_id, "--db", db).stdout == f"revoked token {bob_id}\n"
    missing = cairn_cli("tokens", "delete", "0000", "--db", db, "--json", code=1)
    assert missing.stdout == "" and missing.stderr == "Error: token '0000' does not exist\n"


def test_roles_grant_and_revoke(db):
    out = as_json("roles", "put", "alice", "editor", "--experiment", "123", "--db", db)
    assert out == {"user": "alice", "resource_type": "experiment", "resource_id": "123",
                   "role": "editor"}
    out = as_json("roles", "put", "alice", "approver", "--experiment", "123", "--db", db)
    assert out["role"] == "approver"  # replaced, not added
    assert as_json("roles", "ls", "--db", db) == [out]
    human = cairn_cli("roles", "put", "bob", "viewer", "--global", "--db", db)
    assert human.stdout == "bob is viewer on global *\n"
    gone = as_json("roles", "delete", "alice", "--experiment", "123", "--db", db)
    assert gone == {**out, "revoked": True}
    assert [b["user"] for b in as_json("roles", "ls", "--db", db)] == ["bob"]
    assert cairn_cli("roles", "delete", "bob", "--global", "--db", db).stdout == \
        "bob has no role on global * any more\n"
    bad = cairn_cli("roles", "delete", "bob", "--global", "--db", db, "--json", code=1)
    assert bad.stdout == "" and bad.stderr.startswith("Error: user 'bob' has no role")
    usage = cairn_cli("roles", "put", "bob", "viewer", "--db", db, "--json", code=1)
    assert usage.stdout == "" and "exactly one of" in usage.stderr


def test_users_disable(db):
    secret = as_json("tokens", "create", "alice", "--db", db)["token"]
    out = as_json("users", "delete", "alice", "--db", db)
    assert out == {"name": "alice", "is_admin": False, "disabled": True}
    store, auth = _auth(db)
    try:
        assert auth.identify(secret) is None  # the tokens went with the user
    finally:
        store.close()
    assert all(t["revoked"] for t in as_json("tokens", "ls", "--user", "alice", "--db", db))
    assert cairn_cli("users", "delete", "bob", "--db", db).stdout == \
        "disabled bob; their tokens are revoked\n"
    nobody = cairn_cli("users", "delete", "carol", "--db", db, "--json", code=1)
    assert nobody.stdout == "" and nobody.stderr == "Error: user 'carol' does not exist\n"


# -- data get|alias|verify|push|pull, remote add|rm ------------------------------------------
CSV = b"id,amount,label\n1,1.0,a\n2,2.0,b\n3,3.0,a\n"


def _tree(root: Path) -> Path:
    for rel, data in {"t.csv": CSV, "docs/readme.txt": b"hello", "docs/more.txt": b"more"}.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


@pytest.fixture
def sales(tracking, tmp_path):
    """Data set "sales" with version 1 in the tracking store."""
    out = as_json("data", "add", _tree(tmp_path / "src"), "-n", "sales", store=tracking)
    assert out["ref"] == "sales@1"
    return out


def test_data_get(tracking, sales, tmp_path):
    out = as_json("data", "get", "sales@1", tmp_path / "all", store=tracking)
    assert out == {"ref": "sales@1", "path": None, "destination": str(tmp_path / "all"),
                   "files": 3, "size": len(CSV) + 5 + 4}
    assert (tmp_path / "all" / "docs" / "readme.txt").read_bytes() == b"hello"
    docs = as_json("data", "get", "sales@1", tmp_path / "docs", "-p", "docs", store=tracking)
    assert docs["path"] == "docs" and docs["files"] == 2 and docs["size"] == 9
    human = cairn_cli("data", "get", "sales@1", tmp_path / "h", store=tracking)
    assert human.stdout == f"sales@1: 3 file(s) written to {tmp_path / 'h'}\n"
    bad = cairn_cli("data", "get", "sales@9", tmp_path / "x", "--json", code=1, store=tracking)
    assert bad.stdout == "" and bad.stderr == "Error: data set 'sales' has no version 9\n"


def test_data_alias(tracking, sales):
    out = as_json("data", "alias", "sales@1", "gold", store=tracking)
    assert out["ref"] == "sales@1" and out["aliases"] == ["gold"] and out["tree"] == sales["tree"]
    assert set(out) == set(sales)  # a version, as `data add|show|ls --json` print it
    assert as_json("data", "alias", "sales", "gold", "--delete", store=tracking) == \
        {"name": "sales", "alias": "gold", "deleted": True}
    assert as_json("data", "show", "sales@1", store=tracking)["aliases"] == []
    assert cairn_cli("data", "alias", "sales@1", "silver", store=tracking).stdout == \
        "sales@silver → sales@1\n"
    assert cairn_cli("data", "alias", "sales", "silver", "--delete", store=tracking).stdout == \
        "removed alias silver\n"


def test_data_verify_ok_then_damaged(client, tracking, sales):
    out = as_json("data", "verify", "sales@latest", store=tracking)
    assert out["ref"] == "sales@1" and out["ok"] is True and out["checked"] >= 2
    assert out["corrupt"] == [] and out["missing"] == []
    assert cairn_cli("data", "verify", "sales@1", store=tracking).stdout.startswith(
        f"checked {out['checked']} object(s): 0 corrupt, 0 missing")

    ds = client.data
    entry = next(e for e in ds.files("sales@1") if e.path == "t.csv")
    loc = ds.objects.packs.locate([entry.digest])[entry.digest]
    path = ds.objects.backend.path(loc.pack)
    path.chmod(0o644)
    blob = bytearray(path.read_bytes())
    blob[-3] ^= 0xFF
    path.write_bytes(bytes(blob))
    damaged = as_json("data", "verify", "sales@1", code=1, store=tracking)  # exit 1 still
    assert damaged["ref"] == "sales@1" and damaged["ok"] is False
    assert damaged["corrupt"] and damaged["missing"] == []
    assert entry.digest in damaged["corrupt"]  # the damaged file's object, by its oid
    human = cairn_cli("data", "verify", "sales@1", code=1, store=tracking)
    assert [line.split()[1] for line in human.stdout.splitlines()[1:]] == damaged["corrupt"]


def test_remotes_push_and_pull(tracking, sales, tmp_path):
    nas = tmp_path / "nas"
    added = as_json("remote", "add", "nas", nas, store=tracking)
    assert added == {"name": "nas", "url": str(nas), "endpoint_url": None, "default": True}
    assert as_json("remote", "ls", store=tracking) == [added]
    pushed = as_json("data", "push", "sales", "--no-progress", store=tracking)
    assert pushed["remote"] == "nas" and pushed["versions"] == ["sales@1"]
    assert pushed["objects"] >= 2 and pushed["bytes"] > 0 and pushed["skipped"] == 0
    again = as_json("data", "push", "sales", "--no-progress", store=tracking)
    assert again["objects"] == 0 and again["bytes"] == 0  # nothing missing any more
    assert again["skipped"] == pushed["objects"]
    assert cairn_cli("data", "push", "--no-progress", store=tracking).stdout.startswith(
        "pushed 1 version(s) to nas: 0 object(s), 0 B sent")

    other = tmp_path / "other-store"
    try:
        assert cairn_cli("remote", "add", "nas", nas, store=other).stdout == \
            f"remote nas → {nas} (default)\n"
        pulled = as_json("data", "pull", "sales@1", "--no-progress", store=other)
        assert pulled == {"remote": "nas", "versions": ["sales@1"], "objects": pushed["objects"],
                          "bytes": pushed["bytes"], "skipped": 0}
        assert as_json("data", "show", "sales@1", store=other)["tree"] == sales["tree"]
        assert as_json("data", "verify", "sales@1", store=other)["ok"] is True
        assert cairn_cli("data", "pull", "--no-progress", store=other).stdout == \
            "pulled 0 version(s) from nas: 0 object(s), 0 B received\n"  # has them all
        assert cairn_cli("remote", "delete", "nas", store=other).stdout == "removed remote nas\n"
    finally:
        from cairn.store import close_store

        close_store(str(other))

    assert as_json("remote", "delete", "nas", store=tracking) == {"name": "nas", "removed": True}
    assert as_json("remote", "ls", store=tracking) == []
    missing = cairn_cli("remote", "delete", "nas", "--json", code=1, store=tracking)
    assert missing.stdout == "" and missing.stderr == "Error: no remote named 'nas'\n"
    nowhere = cairn_cli("data", "push", "--json", code=1, store=tracking)
    assert nowhere.stdout == "" and nowhere.stderr.startswith("Error: ")
