"""`cairn models`, `cairn keys`: the CLI mirrors the Python API, with --json everywhere."""

import json

import pytest
from click.testing import CliRunner

import cairn
from cairn.cli.main import cli

from .conftest import fit_logreg


@pytest.fixture
def run_cli(tracking, monkeypatch):
    runner = CliRunner()

    def invoke(*args, user="alice", code=0):
        monkeypatch.setenv("CAIRN_USER", user)
        result = runner.invoke(cli, ["--store", str(tracking), *args])
        assert result.exit_code == code, result.output
        return result.output

    return invoke


def test_the_whole_flow_from_the_terminal(run_cli, data, tmp_path):
    c = cairn.Client()
    c.register_model("fraud", fit_logreg(data))
    c.register_model("fraud", fit_logreg(data, C=0.2))
    models = json.loads(run_cli("models", "ls", "--json"))
    assert [(m["name"], m["latest_version"]) for m in models] == [("fraud", "1.1.0")]
    assert "fraud" in run_cli("models", "ls")
    versions = json.loads(run_cli("models", "versions", "fraud", "--json"))
    assert [v["version"] for v in versions] == ["1.1.0", "1.0.0"]
    assert "hyperparameters changed" in run_cli("models", "versions", "fraud")
    shown = json.loads(run_cli("models", "show", "fraud/1.1.0", "--json"))
    assert shown["bump"] == "minor" and shown["uri"] == "fraud/1.1.0"
    assert "flavor      sklearn" in run_cli("models", "show", "fraud@latest")
    diff = json.loads(run_cli("models", "diff", "fraud/1.0.0", "1.1.0", "--json"))
    assert diff["suggested_bump"] == "minor" and diff["params"]["C"] == ["1.0", "0.2"]
    assert "would be a minor bump" in run_cli("models", "diff", "fraud/1.0.0", "fraud/1.1.0")

    run_cli("models", "policy", "fraud", "production", "--approvals", "1")
    pols = json.loads(run_cli("models", "policy", "fraud", "--json"))
    assert next(p for p in pols if p["stage"] == "Production")["approvals"] == 1
    out = run_cli("models", "promote", "fraud", "1.0.0", "production", code=1)
    assert "needs 1 approval(s)" in out
    req = json.loads(run_cli("models", "request", "fraud", "1.0.0", "production", "-m", "go",
                             "--json"))
    assert req["status"] == "pending"
    assert "cannot approve" in run_cli("models", "approve", req["id"], code=1)
    assert [r["id"] for r in json.loads(run_cli("models", "requests", "fraud", "--json"))] == [req["id"]]
    done = json.loads(run_cli("models", "approve", req["id"], "-m", "ok", "--json", user="bob"))
    assert done["status"] == "applied"
    run_cli("models", "promote", "fraud", "1.1.0", "staging")
    req2 = json.loads(run_cli("models", "request", "fraud", "1.1.0", "production", "--json"))
    assert json.loads(run_cli("models", "reject", req2["id"], "--json", user="bob"))["status"] == "rejected"
    req3 = json.loads(run_cli("models", "request", "fraud", "1.1.0", "production", "--json"))
    # The requester and the approver each by name (it said "applied by alice").
    assert run_cli("models", "approve", req3["id"], user="bob").strip() == \
        f"request {req3['id']}: fraud/1.1.0 Staging -> Production [applied] requested by " \
        "alice, approvals 1/1, applied by bob"
    assert "fraud@champion -> 1.1.0" in run_cli("models", "alias", "fraud", "champion", "1.1.0")
    assert "no such version" in run_cli("models", "alias", "fraud", "x", "3.0.0", code=1)
    rolled = json.loads(run_cli("models", "rollback", "fraud", "--reason", "p99 latency", "--json"))
    assert (rolled["version"], rolled["stage"]) == ("1.0.0", "Production")
    history = json.loads(run_cli("models", "history", "fraud", "--json"))
    assert history[-1]["kind"] == "rollback" and history[-1]["reason"] == "p99 latency"
    assert "rollback" in run_cli("models", "history", "fraud")
    at = json.loads(run_cli("models", "history", "fraud", "--at", "2000-01-01T00:00", "--json"))
    assert at is None
    run_cli("models", "alias", "fraud", "champion", "--delete")
    assert json.loads(run_cli("models", "show", "fraud", "--json"))["aliases"] == {}
    reports = json.loads(run_cli("models", "verify", "fraud", "--json"))
    assert [r["ok"] for r in reports] == [True, True]
    assert "ok (2 files" in run_cli("models", "verify", "fraud/1.0.0")
    assert "Error: '1.0' is not a semantic version" in run_cli("models", "show", "fraud/1.0", code=1)
    assert "no registered model named 'ghost'" in run_cli("models", "versions", "ghost", code=1)
    got = json.loads(run_cli("models", "get", "fraud@production", str(tmp_path / "dl"), "--json"))
    assert (tmp_path / "dl" / "model" / "model.pkl").is_file() and got["ref"] == "fraud@production"
    # `get` as artifacts and data sets say it; the old `download` still works, out of the help.
    old = json.loads(run_cli("models", "download", "fraud@production", str(tmp_path / "dl2"),
                             "--json"))
    assert old["path"] == str(tmp_path / "dl2") and (tmp_path / "dl2" / "model" / "model.pkl").is_file()
    listed = run_cli("models", "--help")
    assert "  get " in listed and "download" not in listed


def test_verify_exits_1_naming_the_damaged_file(run_cli, tracking, data):
    import os

    c = cairn.Client()
    mv = c.register_model("m", fit_logreg(data))
    entry = next(e for e in c.store.objects.get_tree(mv.tree_oid) if e.path == "model/model.pkl")
    path = tracking / "objects" / entry.digest[:2] / entry.digest[2:]
    os.chmod(path, 0o644)
    path.write_bytes(path.read_bytes()[:-1] + b"?")
    out = run_cli("models", "verify", "m", code=1)
    assert "m/1.0.0: DAMAGED" in out and "model/model.pkl: object" in out


def test_naming_policy_and_keys_from_the_terminal(run_cli, tmp_path, data):
    assert "no naming policy" in run_cli("models", "naming")
    run_cli("models", "naming", "--template", "{project}_{model_type}")
    assert json.loads(run_cli("models", "naming", "--json"))["template"] == "{project}_{model_type}"
    pytest.importorskip("cryptography")
    created = json.loads(run_cli("keys", "create", "--json"))
    assert (tmp_path / "keys" / "default.key").is_file()
    keys = json.loads(run_cli("keys", "ls", "--json"))
    assert [k["key_id"] for k in keys] == [created["key_id"]]
    mv = cairn.Client().register_model("payments_fraud", fit_logreg(data))
    assert mv.signing_key == created["key_id"]
    assert "signature verified" in run_cli("models", "verify", "payments_fraud")
    assert "already exists" in run_cli("keys", "create", code=1)
    run_cli("keys", "revoke", created["key_id"])
    assert "no trusted keys" in run_cli("keys", "ls")


def test_rename_and_delete_from_the_terminal(run_cli, tracking):
    from cairn.registry import Registry
    from cairn.registry.from_run import register_source

    c = cairn.Client()
    for _ in range(2):
        c.register_model("m", {"w": 1}, flavor="pickle")
    c.set_alias("m", "champion", "1.0.0")
    out = run_cli("models", "delete", "m", "1.0.0", code=1)
    assert "alias 'champion' points at it" in out and "force" in out
    gone = json.loads(run_cli("models", "delete", "m", "1.0.0", "--force", "--json"))
    assert (gone["version"], gone["aliases"]) == ("1.0.0", ["champion"])
    assert run_cli("models", "rename", "m", "m2") == "renamed m to m2\n"
    assert [v["version"] for v in json.loads(run_cli("models", "versions", "m2", "--json"))] \
        == ["1.0.1"]
    assert "no registered model named 'm'" in run_cli("models", "show", "m@latest", code=1)
    assert run_cli("models", "delete", "m2") == "deleted model m2 and its versions\n"
    # A version an MLflow client registered from another server's run: shown as external.
    mv = register_source(Registry(c), "ext", "runs:/abc123/model", run_id="abc123", path="model")
    shown = run_cli("models", "show", f"ext/{mv.version}")
    assert "abc123  (external: not a run of this store)" in shown
    assert "files       none: registered from runs:/abc123/model, not copied" in shown
