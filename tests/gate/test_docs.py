"""docs/ci.md and examples/ci/: the guide's examples run, it names every option and JSON
key, and the CI files parse and run their `cairn check` against a prepared store."""

import json
import re
import shlex
import shutil
import traceback
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from cairn.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "ci.md"
CI = ROOT / "examples" / "ci"


def blocks(lang):
    text = DOC.read_text(encoding="utf-8")
    return [(text[:m.start()].count("\n") + 2, m.group(1))
            for m in re.finditer(rf"^```{lang}\n(.*?)^```", text, re.M | re.S)]


def commands(script):
    """The `cairn ...` command lines of a shell script, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", script)
    return [line.strip() for line in joined.splitlines() if line.strip().startswith("cairn ")]


def cairn(store, line):
    args = shlex.split(line, comments=True)
    assert args[0] == "cairn"
    return CliRunner().invoke(cli, ["--store", str(store), *args[1:]])


def test_the_guide_runs(tracking, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "docs_ci"}
    for line, code in blocks("python"):
        try:
            exec(compile(code, f"docs/ci.md:{line}", "exec"), namespace)
        except Exception:
            pytest.fail(f"the example at docs/ci.md:{line} failed:\n{traceback.format_exc()}")
    # The rules file of the guide is the one its commands read.
    [(_, gate)] = blocks("yaml")
    (tmp_path / "gate.yaml").write_text(gate)
    ran = 0
    for i, (_, script) in enumerate(blocks("sh")):
        for line in commands(script):
            # The first block (the page's opening command) has no comment: nobody approved
            # or signed the candidate, so it fails.
            expected = 1 if i == 0 else int(re.search(r"# exit (\d)$", line).group(1))
            r = cairn(tracking, line)
            assert r.exit_code == expected, f"{line}\n{r.output}"
            ran += 1
    assert ran == 6
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert report.startswith("### ❌ cairn check: fraud 1.1.0 fails 1 of 3 checks")


def test_the_guides_error_example_is_the_real_message(tracking, fraud):
    text = DOC.read_text(encoding="utf-8")
    start = text.index("```\nError: metric rule") + 4
    shown = text[start:text.index("```", start)]
    r = cairn(tracking, 'cairn check fraud@candidate --metric "val_auc >= baseline -"')
    assert r.exit_code == 2 and r.output == shown


def test_every_option_and_json_key_is_in_the_guide(tracking, fraud):
    text = DOC.read_text(encoding="utf-8")
    for param in cli.commands["check"].params:
        for opt in getattr(param, "opts", []):
            if opt.startswith("--") and opt not in ("--store", "--uri"):
                assert f"`{opt}" in text, opt
    from cairn.gate import GateSpec, check
    from cairn.gate.spec import FILE_KEYS

    for key in FILE_KEYS:
        assert f"| `{key}` |" in text, key
    d = check(cairn_client(tracking), "fraud@candidate",
              GateSpec().merged(rules=["val_auc > baseline"], significance=0.05)).to_dict()
    keys = {*d, *d["candidate"], *d["checks"][0], *d["checks"][0]["test"]}
    for key in keys:
        assert f"`{key}`" in text, key


def cairn_client(store):
    import cairn as c

    return c.Client(str(store))


def test_links_point_somewhere():
    for target in re.findall(r"\]\(([^)\s]+)\)", DOC.read_text(encoding="utf-8")):
        if "://" not in target:
            assert (DOC.parent / target.partition("#")[0]).exists(), target


# -- examples/ci ------------------------------------------------------------------------
def _github_commands():
    wf = yaml.safe_load((CI / "github-actions.yml").read_text())
    steps = wf["jobs"]["cairn-check"]["steps"]
    assert any(s.get("uses", "").startswith("marocchino/sticky-pull-request-comment@")
               and s["with"]["path"] == "report.md" for s in steps)
    assert wf["permissions"]["pull-requests"] == "write"
    return [c for s in steps if "run" in s for c in commands(s["run"])
            if c.startswith("cairn check")]


def _gitlab_commands():
    jobs = yaml.safe_load((CI / "gitlab-ci.yml").read_text())
    job = jobs["model-gate"]
    assert job["artifacts"]["paths"] == ["report.md"] and job["artifacts"]["when"] == "always"
    return [c for line in job["script"] for c in commands(line) if c.startswith("cairn check")]


@pytest.mark.parametrize("found", [_github_commands, _gitlab_commands],
                         ids=["github-actions", "gitlab-ci"])
def test_ci_examples_run_their_check(found, tracking, fraud, tmp_path, monkeypatch):
    [line] = found()
    monkeypatch.chdir(tmp_path)
    shutil.copy(CI / "gate.yaml", tmp_path / "gate.yaml")
    r = cairn(tracking, line)
    assert r.exit_code == 1, r.output  # the prepared candidate has no approval yet
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert report.startswith("### ❌ cairn check: fraud 1.1.0 fails 1 of 3 checks")
    assert "| approval |" in report
    # Approved, the same command passes.
    import cairn as c

    req = c.Client(str(tracking)).request_transition("fraud", "1.1.0", "staging")
    if req.status != "applied":  # pragma: no cover - no policy on Staging here
        c.Client(str(tracking), user="bob").approve(req.id)
    c.Client(str(tracking)).set_stage_policy("fraud", "production", approvals=2)
    req = c.Client(str(tracking)).request_transition("fraud", "1.1.0", "production")
    c.Client(str(tracking), user="bob").approve(req.id)
    r = cairn(tracking, line)
    assert r.exit_code == 0, r.output
    assert json.loads(cairn(tracking, line.replace("--format markdown --output report.md", "--json")).output)[
        "passed"] is True


def test_the_github_workflow_keeps_its_token_and_shell_safe():
    # Script injection: a `${{ }}` in a run: line is pasted into the shell before it runs;
    # the token: a third-party action must not see it.
    wf = yaml.safe_load((CI / "github-actions.yml").read_text())
    job = wf["jobs"]["cairn-check"]
    assert "CAIRN_TRACKING_TOKEN" not in str(wf.get("env", {})) + str(job.get("env", {}))
    for step in job["steps"]:
        assert "${{" not in step.get("run", ""), step
        if "uses" in step and "checkout" in step["uses"]:
            assert step["with"]["persist-credentials"] is False
        if "CAIRN_TRACKING_TOKEN" in str(step.get("env", {})):
            assert "cairn check" in step["run"]
    assert set(wf["permissions"]) == {"contents", "pull-requests"}
    assert wf["permissions"]["contents"] == "read"


def test_the_rules_file_of_the_examples_is_valid():
    from cairn.gate import load_spec

    spec = load_spec(CI / "gate.yaml")
    assert spec.require == ("approval",) and spec.significance == 0.05
