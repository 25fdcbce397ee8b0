"""`cairn users`, `tokens`, `roles` on a server's database, and `cairn sync` argument checks."""

from __future__ import annotations

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
    assert run(cli, ["roles", "grant", "alice", "editor", "--experiment", "123", "--db", db]).exit_code == 0
    bad = run(cli, ["roles", "grant", "alice", "editor", "--db", db])
    assert bad.exit_code == 1 and "exactly one of" in bad.output
    listed = json.loads(run(cli, ["roles", "ls", "--db", db, "--json"]).output)
    assert listed == [{"user": "alice", "resource_type": "experiment", "resource_id": "123",
                       "role": "editor"}]
    tok = run(cli, ["tokens", "create", "alice", "--name", "ci", "--db", db])
    assert tok.exit_code == 0 and "shown once" in tok.output
    tokens = json.loads(run(cli, ["tokens", "ls", "--db", db, "--json"]).output)
    assert len(tokens) == 2 and all("token" not in t for t in tokens)
    assert run(cli, ["tokens", "revoke", tokens[0]["id"], "--db", db]).exit_code == 0
    assert run(cli, ["users", "disable", "alice", "--db", db]).exit_code == 0
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
