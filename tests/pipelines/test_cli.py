"""`cairn pipeline run / status / show` through the real command line (click's runner)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from cairn.cli.main import cli


def invoke(project, *args: str):
    return CliRunner().invoke(cli, ["--store", str(project.client.uri), "pipeline", *args],
                              catch_exceptions=False)


def test_run_status_show_as_json(project, monkeypatch):
    monkeypatch.chdir(project.root)
    res = invoke(project, "status", "--json")  # before any store exists
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert {s["status"] for s in doc["stages"]} == {"stale"}
    assert {s["reason"] for s in doc["stages"]} == {"never run", "upstream stage prepare is stale"}
    assert not (project.client.uri and __import__("os").path.exists(project.client.uri))

    res = invoke(project, "run", "--dry-run", "--json")
    assert res.exit_code == 0 and not (project.root / "exec.log").exists()

    res = invoke(project, "run", "--jobs", "2", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["ok"] and {s["name"]: s["status"] for s in doc["stages"]} == {
        "prepare": "ran", "train": "ran", "report": "ran"}
    assert all(len(s["run_id"]) == 32 and len(s["key"]) == 64 for s in doc["stages"])

    res = invoke(project, "status")
    assert res.exit_code == 0 and "everything is up to date" in res.output

    project.write("params.yaml", "train:\n  lr: 0.3\nreport:\n  title: weekly\n")
    doc = json.loads(invoke(project, "status", "--json").output)
    train = next(s for s in doc["stages"] if s["name"] == "train")
    assert train["status"] == "stale" and "train.lr changed (0.1 -> 0.3)" in train["reason"]
    assert train["cached"] is False

    res = invoke(project, "run", "train")
    assert res.exit_code == 0 and "1 ran" in res.output and "1 unchanged" in res.output

    doc = json.loads(invoke(project, "show", "--json").output)
    assert [s["name"] for s in doc["stages"]][0] == "prepare"
    assert next(s for s in doc["stages"] if s["name"] == "train")["upstream"] == ["prepare"]


def test_a_failed_stage_exits_1_and_bad_input_is_one_line(project, monkeypatch):
    import sys

    monkeypatch.chdir(project.root)
    project.write("cairn.yaml", f"stages:\n  bad:\n    cmd: {sys.executable} -c 'raise SystemExit(2)'\n")
    res = invoke(project, "run")
    assert res.exit_code == 1 and "failed" in res.output
    res = invoke(project, "run", "nope")
    assert res.exit_code == 1 and "Error: no stage 'nope'" in res.output
    res = invoke(project, "run", "-f", "missing.yaml")
    assert res.exit_code == 1 and "Error: no pipeline file missing.yaml" in res.output
    res = invoke(project, "run", "--jobs", "0")
    assert res.exit_code == 2
