"""`cairn check`: exit codes, output formats, rules files, and errors that say where."""

import json

import pytest
from click.testing import CliRunner

from cairn.cli.main import cli


def run(store, *args):
    return CliRunner().invoke(cli, ["--store", str(store), "check", *map(str, args)])


def test_passes_exit_0_and_prints_the_table(tracking, fraud):
    r = run(tracking, "models:/fraud@candidate", "--against", "@production",
            "--metric", "val_auc >= baseline - 0.005")
    assert r.exit_code == 0, r.output
    assert "fraud 1.1.0 passes against fraud 1.0.0 (@production)" in r.output
    assert "val_auc >= baseline - 0.005" in r.output and "pass" in r.output


def test_fails_exit_1_naming_the_rule(tracking, fraud):
    r = run(tracking, "fraud/1.0.0", "--against", "fraud@candidate",
            "--metric", "val_auc >= baseline - 0.005", "--require", "approval")
    assert r.exit_code == 1, r.output
    assert "FAIL val_auc >= baseline - 0.005: val_auc 0.706683 is not >= 0.971055" in r.output
    assert "FAIL approval: fraud 1.0.0: no approved request" in r.output


@pytest.mark.parametrize("args, words", [
    (["fraud@candidate", "--metric", "val_auc >= baseline -"],
     "expected a number, 'baseline' or '(' at position 22"),
    (["fraud@candidate", "--metric", "val_auc => 1"], "at position 9"),
    (["nope@candidate", "--metric", "val_auc >= 0"], "nope"),
    (["fraud@candidate", "--metric", "x >= 0", "--against", "models:/other/1.0.0"], "other"),
    (["fraud@candidate", "--require", "approval,sigs"], "unknown requirement 'sigs'"),
    (["fraud@candidate", "--metric", "x >= 0", "--significance", "1.5"], "between 0 and 1"),
    (["fraud@candidate", "--metric", "x >= 0", "--rules", "missing.yaml"], "does not exist"),
    (["fraud@candidate"], "nothing to check"),
    (["fraud@candidate", "--metric", "x >= 0", "--format", "html"], "Invalid value"),
])
def test_usage_errors_exit_2(tracking, fraud, args, words):
    r = run(tracking, *args)
    assert r.exit_code == 2, r.output
    assert words in r.output


def test_a_missing_store_exits_2_and_is_not_created(tmp_path):
    r = run(tmp_path / "nowhere", "fraud@candidate", "--metric", "val_auc >= baseline")
    assert r.exit_code == 2 and "no Cairn store" in r.output
    assert not (tmp_path / "nowhere").exists()


def test_json(tracking, fraud):
    r = run(tracking, "fraud@candidate", "--metric", "val_auc > baseline",
            "--significance", "0.05", "--require", "signature", "--json")
    assert r.exit_code == 1, r.output
    d = json.loads(r.output)
    assert d["passed"] is False and d["significance"] == 0.05
    assert [c["verdict"] for c in d["checks"]] == ["pass", "fail"]
    assert d["checks"][0]["test"]["p_value"] < 0.05
    assert d["candidate"]["version"] == "1.1.0" and d["baseline"]["version"] == "1.0.0"
    same = run(tracking, "fraud@candidate", "--metric", "val_auc > baseline",
               "--significance", "0.05", "--require", "signature", "--format", "json")
    assert json.loads(same.output) == d


def test_markdown_to_stdout_and_to_a_file(tracking, fraud, tmp_path):
    r = run(tracking, "fraud@candidate", "--metric", "val_auc >= baseline - 0.005",
            "--format", "markdown")
    assert r.exit_code == 0
    lines = r.output.splitlines()
    assert lines[0] == ("### ✅ cairn check: fraud 1.1.0 passes against fraud 1.0.0 "
                        "(@\u200bproduction)")
    assert "| rule | candidate | baseline | threshold | p-value | verdict |" in lines
    out = tmp_path / "report.md"
    r2 = run(tracking, "fraud@candidate", "--metric", "val_auc >= baseline - 0.005",
             "--format", "markdown", "--output", out)
    assert r2.exit_code == 0 and out.read_text(encoding="utf-8") == r.output
    assert "fraud 1.1.0 passes" in r2.output  # the CI log still shows the table
    r3 = run(tracking, "fraud@candidate", "--metric", "val_auc >= 2", "--json", "-o", out)
    assert r3.exit_code == 1 and json.loads(out.read_text())["passed"] is False


def test_a_rules_file_and_flags_add_up(tracking, fraud, tmp_path):
    rules = tmp_path / "gate.yaml"
    rules.write_text("against: '@production'\nmetrics:\n  - val_auc >= baseline - 0.005\n"
                     "significance: 0.05\nrequire: [lineage]\n")
    r = run(tracking, "fraud@candidate", "--rules", rules, "--metric", "val_auc >= 0.9",
            "--require", "approval", "--json")
    d = json.loads(r.output)
    assert [c["rule"] for c in d["checks"]] == [
        "val_auc >= baseline - 0.005", "val_auc >= 0.9", "lineage", "approval"]
    assert d["significance"] == 0.05 and r.exit_code == 1
    # A flag replaces the file's setting.
    d = json.loads(run(tracking, "fraud@candidate", "--rules", rules, "--significance", "0.01",
                       "--against", "@latest", "--json").output)
    assert d["significance"] == 0.01 and d["against"] == "@latest"


def test_a_bad_rules_file_exits_2_naming_the_entry(tracking, fraud, tmp_path):
    rules = tmp_path / "gate.yaml"
    rules.write_text("metrics:\n  - val_auc >= baseline\n  - val_auc >=\n")
    r = run(tracking, "fraud@candidate", "--rules", rules)
    assert r.exit_code == 2 and f"{rules}: metrics[1]: metric rule 'val_auc >='" in r.output
    rules.write_text("metric: [x > 1]\n")
    r = run(tracking, "fraud@candidate", "--rules", rules)
    assert r.exit_code == 2 and "unknown key(s) metric" in r.output
    rules.write_text("metrics: [x > 1]\nrequire_baseline: yes please\n")
    assert "require_baseline must be true or false" in run(tracking, "fraud@candidate",
                                                            "--rules", rules).output
    rules.write_bytes(b"metrics: [\xff]\n")
    assert "not UTF-8" in run(tracking, "fraud@candidate", "--rules", rules).output
    rules.write_text("metrics: [x > 1\n")
    assert "not valid YAML" in run(tracking, "fraud@candidate", "--rules", rules).output


def test_an_unexpected_error_exits_2_not_1(tracking, fraud, monkeypatch):
    # 1 says "the candidate is worse"; a gate that broke must not say that.
    import cairn.gate

    def broken(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(cairn.gate, "check", broken)
    r = run(tracking, "fraud@candidate", "--metric", "val_auc >= 0")
    assert r.exit_code == 2, r.output
    assert "boom" in r.output


def test_json_of_a_nan_metric_parses(tracking, tmp_path):
    # JSON has no NaN: the report spells it "nan" (as every --json does), and still parses.
    import cairn as c
    from world import train

    client = c.Client(str(tracking))
    base = train(client, noise=3.0, seeds=(0,), late={"loss": 0.5})
    client.transition_model_version_stage("fraud", base.version, "production")
    cand = train(client, noise=0.5, seeds=(10,), late={"loss": float("nan")})
    out = tmp_path / "r.json"
    r = run(tracking, f"fraud/{cand.version}", "--metric", "loss <= baseline", "--json",
            "--output", out)
    assert r.exit_code == 1, r.output
    check, = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(c))["checks"]
    assert check["candidate"] == "nan" and check["baseline"] == 0.5
    r = run(tracking, f"fraud/{cand.version}", "--metric", "loss <= baseline", "--json")
    assert json.loads(r.stdout, parse_constant=lambda c: pytest.fail(c))["checks"][0][
        "candidate"] == "nan"
