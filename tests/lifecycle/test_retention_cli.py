"""`cairn retention`: set, show, ls, plan, unset and ttl from the terminal, with --json."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import cairn
from cairn.cli.main import cli
from cairn.lifecycle import retention as R


@pytest.fixture
def run_cli(tracking, monkeypatch):
    runner = CliRunner()

    def invoke(*args, user="alice", code=0):
        monkeypatch.setenv("CAIRN_USER", user)
        result = runner.invoke(cli, ["--store", str(tracking), *args])
        assert result.exit_code == code, result.output
        return result.output

    return invoke


def test_the_policy_flow_from_the_terminal(run_cli, tracking, cairn_clock, tmp_path):
    c = cairn.Client(str(tracking))
    exp = c.create_experiment("demo")
    ids = []
    for _ in range(4):
        run = c.create_run(exp.id)
        c.set_terminated(run.id)
        ids.append(run.id)
        cairn_clock.advance(86_400)
    out = json.loads(run_cli("retention", "set", "--experiment", "demo", "--keep-last", "2",
                             "--artifacts-ttl-days", "30", "--json"))
    assert out["policy"] == {"keep_days": None, "keep_last": 2, "keep_registered": True,
                             "keep_tagged": "keep", "artifacts_ttl_days": 30}
    assert (out["target"], out["label"], out["updated_by"]) == (exp.id, "demo", "alice")
    assert "keep the last 2" in run_cli("retention", "show", "--experiment", exp.id)
    listed = json.loads(run_cli("retention", "ls", "--json"))
    assert [p["label"] for p in listed] == ["demo"]
    planned = json.loads(run_cli("retention", "plan", "--json"))
    assert sorted(a["target"] for a in planned if a["kind"] == "trash_run") == \
        sorted(f"run:{i}" for i in ids[:2])
    assert all(a["policy"] == f"experiment:{exp.id}" for a in planned)
    assert "not among the newest 2 runs" in run_cli("retention", "plan")
    assert all(c.get_run(i).lifecycle == "active" for i in ids)  # plan changes nothing
    ttl = json.loads(run_cli("retention", "ttl", ids[3][:8], "5", "--json"))
    assert ttl["run_id"] == ids[3] and ttl["expires"] == c.get_run(ids[3]).end_time + 5 * R.DAY_MS
    assert "artifacts expire" in run_cli("retention", "ttl", ids[3], "7")
    assert json.loads(run_cli("retention", "ttl", ids[3], "none", "--json"))["expires"] is None
    gone = json.loads(run_cli("retention", "unset", "--experiment", "demo", "--json"))
    assert gone["policy"]["keep_last"] == 2
    assert json.loads(run_cli("retention", "show", "--experiment", "demo", "--json")) is None
    assert "everything is kept" in run_cli("retention", "show", "--experiment", "demo")
    assert "no retention policies" in run_cli("retention", "ls")


def test_bad_input_is_one_clear_line(run_cli, tracking):
    cairn.Client(str(tracking)).create_experiment("demo")
    err = run_cli("retention", "set", "--experiment", "demo", "--keep-days", "-5", code=1)
    assert "Error: retention keep_days must be between 1 and 36500, got -5" in err
    assert "give one of --experiment" in run_cli("retention", "set", "--keep-days", "3", code=1)
    assert "give one of --experiment" in run_cli("retention", "show", "--experiment", "demo",
                                                 "--dataset", "d", code=1)
    assert "no experiment named or numbered 'nope'" in run_cli(
        "retention", "set", "--experiment", "nope", "--keep-days", "3", code=1)
    assert "DAYS must be a whole number" in run_cli("retention", "ttl", "a" * 32, "soon", code=1)
    assert "Traceback" not in run_cli("retention", "unset", "--dataset", "ghost", code=1)


def test_read_only_commands_do_not_create_a_store(tmp_path):
    missing = tmp_path / "nowhere"
    for args in (["retention", "ls"], ["retention", "plan"],
                 ["retention", "show", "--experiment", "x"]):
        result = CliRunner().invoke(cli, ["--store", str(missing), *args])
        assert result.exit_code == 1 and "no Cairn store" in result.output
    assert not missing.exists()


def test_cairn_gc_applies_the_policies_first_and_shows_them_under_dry_run(run_cli, tracking,
                                                                         cairn_clock, tmp_path):
    c = cairn.Client(str(tracking))
    exp = c.create_experiment("demo")
    ids = []
    for _ in range(3):
        run = c.create_run(exp.id)
        c.set_terminated(run.id)
        ids.append(run.id)
        cairn_clock.advance(86_400)
    run_cli("retention", "set", "--experiment", "demo", "--keep-last", "1")
    dry = json.loads(run_cli("gc", "--dry-run", "--json"))
    assert sorted(a["target"] for a in dry["retention"]["actions"]) == \
        sorted(f"run:{i}" for i in ids[:2])
    assert all(c.get_run(i).lifecycle == "active" for i in ids)
    done = json.loads(run_cli("gc", "--json"))
    assert done["retention"]["actions"] == dry["retention"]["actions"]
    assert [c.get_run(i).lifecycle for i in ids] == ["deleted", "deleted", "active"]
    # a model promoted meanwhile: gc refuses, naming it, and trashes nothing
    d = tmp_path / "m"
    d.mkdir()
    (d / "w").write_text("w")
    cairn_clock.advance(1)  # the restore comes after the trashing (a frozen clock ties them)
    c.restore_run(ids[1])
    c.register_model("m", str(d), flavor="directory", run_id=ids[1])
    c.transition_model_version_stage("m", "1.0.0", "Production")
    run_cli("retention", "set", "--experiment", "demo", "--keep-last", "1")  # registered kept
    err = run_cli("retention", "set", "--experiment", "demo", "--keep-last", "1",
                  "--no-keep-registered", code=1)
    assert "m/1.0.0 (in Production)" in err and ids[1] in err
