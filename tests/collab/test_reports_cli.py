"""`cairn reports` on a local store and against a server, with and without --json; the
export writes one self-contained HTML file."""

from __future__ import annotations

import json

import pytest

import cairn

from .test_collab_cli import as_json, run_cli


def _panel(**spec) -> str:
    return "```cairn-panel\n" + json.dumps(spec) + "\n```\n"


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("CAIRN_CAPTURE_ENV", "0")
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "store"
    client = cairn.Client(str(path), user="alice")
    exp = client.create_experiment("fraud").id
    run = client.create_run(exp, name="r", params={"lr": 0.1})
    for step in range(3):
        client.log_metric(run.id, "loss", 1.0 / (step + 1), step=step)
    client.set_terminated(run.id)
    yield {"path": path, "exp": exp, "run": run.id, "tmp": tmp_path}
    cairn.store.close_store(str(path))


def test_put_ls_show_export_delete(store):
    s, run = ["--store", store["path"]], store["run"]
    doc = store["tmp"] / "report.md"
    doc.write_text("# Weekly\n\nLoss <b>fell</b>.\n\n" + _panel(type="metric", run=run,
                                                               key="loss", title="Loss"))
    saved = as_json("reports", "put", "weekly", doc, *s)
    assert (saved["name"], saved["author"], saved["url"]) == ("weekly", "alice", "/reports/weekly")
    assert [(p["type"], p["run"], p["key"]) for p in saved["panels"]] == [("metric", run, "loss")]
    assert "experiments" not in saved["panels"][0]
    assert saved["experiment_ids"] == [store["exp"]]
    assert [r["name"] for r in as_json("reports", "ls", *s)] == ["weekly"]
    assert "weekly" in run_cli("reports", "ls", *s).stdout
    text = run_cli("reports", "show", "weekly", *s).stdout
    assert "Loss <b>fell</b>." in text and "panel 1: metric Loss (loss of run" in text
    assert as_json("reports", "show", "weekly", *s)["body"] == doc.read_text()
    out = store["tmp"] / "weekly.html"
    done = as_json("reports", "export", "weekly", "-o", out, *s)
    assert done["path"] == str(out) and done["bytes"] == out.stat().st_size
    page = out.read_text()
    assert page.startswith("<!doctype html>") and "default-src 'none'" in page
    assert '"key":"loss"' in page and "\\u003cb\\u003efell" in page
    assert "Exported report 'weekly' to weekly.html" in run_cli("reports", "export", "weekly",
                                                                *s).stdout
    assert (store["tmp"] / "weekly.html").is_file()
    piped = run_cli("reports", "export", "weekly", "-o", "-", *s).stdout
    assert piped.startswith("<!doctype html>") and len(piped) == len(page)  # drawn again
    assert "only they or an admin" in run_cli("reports", "delete", "weekly", *s, code=1,
                                              env={"CAIRN_USER": "bob"}).stderr
    assert as_json("reports", "delete", "weekly", *s) == {"deleted": "weekly"}
    assert as_json("reports", "ls", *s) == []


def test_bad_reports_are_a_clear_error_and_store_nothing(store):
    s = ["--store", store["path"]]
    err = run_cli("reports", "put", "bad", "--body", _panel(type="pie"), *s, code=1).stderr
    assert "panel 1 (line 1) has unknown type 'pie'" in err
    err = run_cli("reports", "put", "bad", "--body", _panel(type="metric", run="0" * 32,
                                                            key="loss"), *s, code=1).stderr
    assert "panel 1 (metric): no run" in err
    assert "give a FILE or --body" in run_cli("reports", "put", "bad", *s, code=2).stderr
    assert "no report named 'nope'" in run_cli("reports", "show", "nope", *s, code=1).stderr
    assert as_json("reports", "ls", *s) == []


def test_stdin_and_a_server(store, tmp_path, request, monkeypatch):
    from conformance_backends import open_backend

    monkeypatch.setenv("CAIRN_SPOOL_DIR", str(tmp_path / "spool"))
    backend = open_backend("remote", tmp_path / "srv", request)
    try:
        alice = backend.client("alice")
        exp = alice.create_experiment("served").id
        run = alice.create_run(exp, name="r")
        alice.log_metric(run.id, "loss", 0.5)
        alice.set_terminated(run.id)

        def env(user):
            return {"CAIRN_TRACKING_TOKEN": backend.tokens[user], "CAIRN_USER": user}

        url = ["--store", backend.url]
        body = "# Served\n" + _panel(type="metric", run=run.id, key="loss")
        from click.testing import CliRunner

        from cairn.cli.main import cli

        result = CliRunner().invoke(cli, ["reports", "put", "served", "-", "--json", *url],
                                    input=body, env={"COLUMNS": "200", **env("alice")})
        cairn.store.close_stores("http")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["author"] == "alice"
        # vera views the experiment: she reads and exports it, but may not save one over it
        assert as_json("reports", "show", "served", *url, env=env("vera"))["body"] == body
        out = tmp_path / "served.html"
        as_json("reports", "export", "served", "-o", out, *url, env=env("vera"))
        assert '"count":1' in out.read_text()
        assert "editor role" in run_cli("reports", "put", "mine", "--body", body, *url, code=1,
                                        env=env("vera")).stderr
    finally:
        backend.close()
