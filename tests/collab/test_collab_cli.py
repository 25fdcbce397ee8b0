"""`cairn comments` and `cairn views` on a local store and against a server, with and
without --json, and the store named after the command (--store) as everywhere."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import cairn
from cairn.cli.main import cli


def run_cli(*args, code=0, env=None):
    try:
        result = CliRunner().invoke(cli, [str(a) for a in args],
                                    env={"COLUMNS": "200", "CAIRN_USER": "alice", **(env or {})})
    finally:
        # One process per command, as in a terminal: a server's store (and the token it
        # was opened with) is not kept for the next command.
        cairn.store.close_stores("http")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == code, (result.stdout, result.stderr)
    return result


def as_json(*args, env=None):
    result = run_cli(*args, "--json", env=env)
    assert result.stderr == ""
    return json.loads(result.stdout)


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("CAIRN_CAPTURE_ENV", "0")
    path = tmp_path / "store"
    client = cairn.Client(str(path), user="alice")
    exp = client.create_experiment("fraud").id
    run = client.create_run(exp, name="r").id
    client.set_terminated(run)
    yield {"path": path, "exp": exp, "run": run}
    cairn.store.close_store(str(path))


def test_comment_thread_edit_delete_restore(store):
    s, run = ["--store", store["path"]], store["run"]
    first = as_json("comments", "put", f"run:{run[:8]}", "Loss plateaus, @bob?", *s)
    assert (first["target_type"], first["target_id"], first["mentions"]) == ("run", run, ["bob"])
    reply = as_json("comments", "put", f"run:{run}", "LR schedule", "--reply-to", first["id"],
                    *s, env={"CAIRN_USER": "bob"})
    assert reply["parent_id"] == first["id"] and reply["author"] == "bob"
    on_exp = run_cli("comments", "put", "experiment:fraud", "Plan for next week", *s).stdout
    assert on_exp.startswith(f"Commented experiment:{store['exp']}: comment ")
    text = run_cli("comments", "ls", f"run:{run}", *s).stdout
    assert text.index("Loss plateaus") < text.index("  LR schedule")  # the reply is indented
    assert [c["id"] for c in as_json("comments", "ls", f"run:{run}", *s)] == [first["id"],
                                                                            reply["id"]]
    assert [c["id"] for c in as_json("comments", "ls", "--mentions", *s,
                                     env={"CAIRN_USER": "bob"})] == [first["id"]]
    # bob may not edit alice's comment; she may, and the old body is kept
    err = run_cli("comments", "put", first["id"], "hijack", *s, code=1,
                  env={"CAIRN_USER": "bob"}).stderr
    assert "only 'alice'" in err
    edited = as_json("comments", "put", first["id"], "Loss plateaus after step 300", *s)
    assert edited["edits"] == 1 and edited["mentions"] == []
    shown = as_json("comments", "show", first["id"], *s)
    assert [h["body"] for h in shown["history"]] == ["Loss plateaus, @bob?"]
    assert "before edit 1 by alice" in run_cli("comments", "show", first["id"], *s).stdout
    assert as_json("comments", "delete", first["id"], *s)["deleted"] is True
    assert "[deleted]" in run_cli("comments", "ls", f"run:{run}", *s).stdout
    assert as_json("comments", "restore", first["id"], *s)["body"] == \
        "Loss plateaus after step 300"


def test_bad_input_is_a_clear_error(store):
    s, run = ["--store", store["path"]], store["run"]
    assert "a target is" in run_cli("comments", "ls", "widget:1", *s, code=2).stderr
    assert "does not exist" in run_cli("comments", "put", "experiment:nope", "x", *s,
                                       code=1).stderr
    long_body = "x" * (64 * 1024 + 1)
    assert "64 KiB" in run_cli("comments", "put", f"run:{run}", long_body, *s, code=1).stderr
    assert "give a TARGET" in run_cli("comments", "ls", *s, code=2).stderr
    assert as_json("comments", "ls", f"run:{run}", *s) == []


def test_views_put_ls_show_delete(store):
    s = ["--store", store["path"]]
    saved = as_json("views", "put", "-e", "fraud", "best", "--filter", "metrics.auc > 0.9",
                    "--columns", "metrics.auc,params.lr", "--group", "lr",
                    "--sort", "metrics.auc:desc", *s)
    assert saved["state"] == {"filter": "metrics.auc > 0.9", "columns": ["metrics.auc", "params.lr"],
                              "group": "lr", "sort": {"id": "metrics.auc", "dir": "DESC"},
                              "charts": []}
    assert saved["url"] == f"/?experiments={store['exp']}&view=best"
    assert [v["name"] for v in as_json("views", "ls", "-e", store["exp"], *s)] == ["best"]
    assert "open: /?experiments=" in run_cli("views", "show", "-e", "fraud", "best", *s).stdout
    assert "unknown keys" in run_cli("views", "put", "-e", "fraud", "x", "--state",
                                     '{"colour": 1}', *s, code=1).stderr
    assert "COLUMN:ASC" in run_cli("views", "put", "-e", "fraud", "x", "--sort", "auc", *s,
                                   code=2).stderr
    assert "only they or an admin" in run_cli("views", "delete", "-e", "fraud", "best", *s,
                                              code=1, env={"CAIRN_USER": "bob"}).stderr
    assert as_json("views", "delete", "-e", "fraud", "best", *s)["deleted"] == "best"
    assert as_json("views", "ls", "-e", "fraud", *s) == []


def test_reading_a_store_that_is_not_there_creates_nothing(tmp_path):
    missing = tmp_path / "mistyped"
    assert "no Cairn store" in run_cli("comments", "ls", "--mentions", "--store", missing,
                                       code=1).stderr
    assert not missing.exists()


def test_against_a_server_roles_decide(tmp_path, request, monkeypatch):
    from conformance_backends import open_backend

    monkeypatch.setenv("CAIRN_CAPTURE_ENV", "0")
    monkeypatch.setenv("CAIRN_SPOOL_DIR", str(tmp_path / "spool"))
    backend = open_backend("remote", tmp_path, request)
    try:
        exp = backend.client("alice").create_experiment("served").id

        def env(user):
            return {"CAIRN_TRACKING_TOKEN": backend.tokens[user], "CAIRN_USER": user}

        url = ["--store", backend.url]
        c = as_json("comments", "put", f"experiment:{exp}", "hello @vera", *url, env=env("vera"))
        assert c["author"] == "vera"
        assert [x["id"] for x in as_json("comments", "ls", "--mentions", *url,
                                         env=env("vera"))] == [c["id"]]
        # alice made the experiment, so she administers it; bob only views it
        err = run_cli("comments", "put", c["id"], "edit", *url, code=1, env=env("bob")).stderr
        assert "only 'vera'" in err
        assert "editor role" in run_cli("views", "put", "-e", exp, "v", *url, code=1,
                                        env=env("vera")).stderr
        assert as_json("views", "put", "-e", exp, "v", *url, env=env("alice"))["name"] == "v"
        assert as_json("comments", "put", c["id"], "moderated", *url,
                       env=env("alice"))["edited_by"] == "alice"
    finally:
        backend.close()


def test_dashboards_put_ls_show_delete(store):
    s = ["--store", store["path"]]
    as_json("views", "put", "-e", "fraud", "best", "--filter", "metrics.loss < 1", *s)
    d = as_json("dashboards", "put", "weekly", "--panel", "line fraud metrics.loss limit=5",
                "--panel", "scatter fraud params.lr metrics.loss view=best title='LR vs loss'",
                "--description", "Mondays", *s)
    assert [(p["kind"], p["columns"], p["limit"], p["view"], p["title"]) for p in d["panels"]] \
        == [("line", ["metrics.loss"], 5, None, ""),
            ("scatter", ["params.lr", "metrics.loss"], 100, "best", "LR vs loss")]
    assert d["panels"][0]["experiment_id"] == store["exp"] and d["url"] == "/dashboards/weekly"
    assert [x["name"] for x in as_json("dashboards", "ls", *s)] == ["weekly"]
    text = run_cli("dashboards", "show", "weekly", *s).stdout
    assert "2. scatter LR vs loss" in text and "open: /dashboards/weekly" in text
    assert "kind must be one of" in run_cli("dashboards", "put", "x", "--panel",
                                            "pie fraud metrics.loss", *s, code=1).stderr
    assert "a panel is KIND" in run_cli("dashboards", "put", "x", "--panel", "line", *s,
                                        code=2).stderr
    assert "only they or an admin" in run_cli("dashboards", "delete", "weekly", *s, code=1,
                                              env={"CAIRN_USER": "bob"}).stderr
    assert as_json("dashboards", "delete", "weekly", *s) == {"deleted": "weekly"}
    assert as_json("dashboards", "ls", *s) == []
