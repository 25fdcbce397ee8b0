"""`cairn users`, `tokens`, `roles` on a server's database, and `cairn sync` argument checks."""

from __future__ import annotations

import inspect
import json

from click.testing import CliRunner

from cairn.cli.main import cli
from cairn.store.sql.auth import AuthDB
from cairn.store.sql.store import SqlStore


def test_user_token_and_role_administration(tmp_path):
    db = f"sqlite:///{tmp_path / 'server.db'}"
    run = CliRunner().invoke
    made = run(cli, ["users", "create", "alice", "--db", db, "--json"])
    assert made.exit_code == 0, made.output
    secret = json.loads(made.output)["token"]
    assert secret.startswith("cairn_")
    assert run(cli, ["users", "create", "alice", "--db", db]).exit_code == 1  # exists
    assert run(cli, ["roles", "put", "alice", "editor", "--experiment", "123", "--db", db]).exit_code == 0
    bad = run(cli, ["roles", "put", "alice", "editor", "--db", db])
    assert bad.exit_code == 1 and "exactly one of" in bad.output
    listed = json.loads(run(cli, ["roles", "ls", "--db", db, "--json"]).output)
    assert listed == [{"user": "alice", "resource_type": "experiment", "resource_id": "123",
                       "role": "editor"}]
    tok = run(cli, ["tokens", "create", "alice", "--name", "ci", "--db", db])
    assert tok.exit_code == 0 and "shown once" in tok.output
    tokens = json.loads(run(cli, ["tokens", "ls", "--db", db, "--json"]).output)
    assert len(tokens) == 2 and all("token" not in t for t in tokens)
    assert run(cli, ["tokens", "delete", tokens[0]["id"], "--db", db]).exit_code == 0
    assert run(cli, ["users", "delete", "alice", "--db", db]).exit_code == 0
    store = SqlStore(db)
    store.open()
    assert AuthDB(store.index.engine).identify(secret) is None  # disabled: tokens revoked
    store.close()
    assert "alice  (disabled)" in run(cli, ["users", "ls", "--db", db]).output


def test_sync_needs_a_server(tmp_path):
    out = CliRunner().invoke(cli, ["--store", str(tmp_path), "sync"])
    assert out.exit_code == 1 and "needs a server" in out.output


def test_server_refuses_a_remote_store():
    out = CliRunner().invoke(cli, ["--store", "http://example.invalid:1", "server"])
    assert out.exit_code == 1 and "local store directory or --db" in out.output


def test_one_verb_set_and_the_old_spellings_still_run_out_of_the_help(tmp_path):
    """ls show get put delete restore tag untag rename (#17): `users disable`, `tokens
    revoke`, `roles grant|revoke`, `keys revoke`, `remote rm` and `models download` are the
    renamed commands' hidden aliases for a release."""
    from cairn.cli.main import _commands

    renamed = {"users disable": "users delete", "tokens revoke": "tokens delete",
               "roles grant": "roles put", "roles revoke": "roles delete",
               "keys revoke": "keys delete", "remote rm": "remote delete",
               "models download": "models get"}
    commands = dict(_commands(cli))
    for old, new in renamed.items():
        assert commands[old].hidden and not commands[new].hidden
        assert inspect.unwrap(commands[old].callback) is inspect.unwrap(commands[new].callback)
        group_help = CliRunner().invoke(cli, [old.split()[0], "--help"]).output
        assert f"  {new.split()[1]} " in group_help and f"  {old.split()[1]} " not in group_help
    visible = {path.split()[-1] for path, cmd in _commands(cli) if not cmd.hidden}
    assert not visible & {"disable", "revoke", "grant", "rm", "download"}

    db = f"sqlite:///{tmp_path / 'server.db'}"
    run = CliRunner().invoke
    assert run(cli, ["users", "create", "bob", "--db", db]).exit_code == 0
    for args in (["roles", "grant", "bob", "viewer", "--experiment", "7"],
                 ["roles", "revoke", "bob", "--experiment", "7"], ["users", "disable", "bob"]):
        r = run(cli, [*args, "--db", db])
        assert r.exit_code == 0, (args, r.output)
    assert "bob  (disabled)" in run(cli, ["users", "ls", "--db", db]).output


def test_a_default_artifact_root_mlflow_would_refuse_stops_the_server_before_it_starts(tmp_path):
    """Every new experiment's artifact_location is made from --default-artifact-root, so it
    gets the same checks as one given to experiments/create (#16)."""
    store = tmp_path / "store"
    for root, why in [("runs:/abc/model", "cannot be a runs:/ URI"),
                      ("s3://bucket/x#frag", "can't include fragments or params"),
                      ("s3://bucket/x?p=%2E%2E", "Invalid query string"),
                      ("s3://bucket/" + "a" * 2100, "cannot be greater than 2048 characters")]:
        out = CliRunner().invoke(cli, ["--store", str(store), "server", "--port", "1",
                                       "--default-artifact-root", root])
        assert out.exit_code == 1, out.output
        assert out.stderr.startswith("Error: --default-artifact-root ") and why in out.stderr
        assert not store.exists()  # refused before anything was opened or created
