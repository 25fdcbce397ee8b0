"""`cairn trash`, `cairn data delete --force` and `cairn models restore` against a team server
with roles (a real server over HTTP, auth on): the trash is a server admin's, an editor's
force is refused (403) and changes nothing, an admin's is audited."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conformance_backends import open_backend

from cairn.cli.main import cli


@pytest.fixture
def server(tmp_path, monkeypatch, request):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("CAIRN_CAPTURE_ENV", "0")
    monkeypatch.setenv("CAIRN_SPOOL_DIR", str(tmp_path / "spool"))
    b = open_backend("remote", tmp_path, request)
    yield b
    b.close()


def _as(server, user, *args, code=0):
    from cairn.store import close_stores

    env = {"CAIRN_TRACKING_TOKEN": server.tokens[user], "CAIRN_USER": user}
    try:
        result = CliRunner().invoke(cli, ["--store", server.url, *map(str, args)], env=env)
    finally:  # one HTTP store per URL and process: the next user's command gets its own
        close_stores("http", "https")
    assert result.exit_code == code, result.output
    return result


def test_the_trash_through_a_team_server(server, tmp_path):
    alice, root = server.client("alice"), server.admin
    src = tmp_path / "d"
    src.mkdir()
    (src / "x.csv").write_text("a\n1\n")
    alice.data.add(src, "tx")
    root.create_registered_model("m")
    mv = alice.register_model("m", {"w": 1}, flavor="pickle", datasets=["tx@1"])

    out = _as(server, "alice", "data", "delete", "tx@1", "--force", code=1).output
    assert "server admin" in out
    assert alice.data.version("tx@1").ref == "tx@1"  # refused: nothing changed
    assert "not an admin" in _as(server, "alice", "trash", "ls", code=1).output
    assert "not an admin" in _as(server, "alice", "trash", "empty", "--yes", code=1).output
    _as(server, "alice", "models", "delete", "m", mv.version, code=1)  # admin on the model only

    assert json.loads(_as(server, "root", "data", "delete", "tx@1", "--force", "--json")
                      .stdout)["trashed"] is True
    _as(server, "root", "models", "delete", "m", mv.version)
    listed = json.loads(_as(server, "root", "trash", "ls", "--json").stdout)
    assert {(i["kind"], i["identifier"], i["deleted_by"]) for i in listed} == {
        ("dataset_version", "tx@1", "root"), ("model_version", f"m/{mv.version}", "root")}
    restored = json.loads(_as(server, "root", "models", "restore", "m", mv.version, "--json")
                          .stdout)
    assert restored["stage"] == "Development"
    done = json.loads(_as(server, "root", "trash", "empty", "--yes", "--json").stdout)
    assert [i["identifier"] for i in done["purged"]] == []  # tx@1: an input of m, live again
    assert [k["identifier"] for k in done["kept"]] == ["tx@1"]
    server.settle()
    [forced] = root.audit_log(target="dataset:tx@1", action="dataset_version.delete")
    assert forced.actor == "root" and forced.after["forced"] == [f"an input of m/{mv.version}"]
    assert root.audit_log(action="trash.empty") == []  # nothing purged, nothing to audit
