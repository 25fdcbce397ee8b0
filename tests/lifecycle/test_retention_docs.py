"""docs/lifecycle.md "Retention policies": its examples run, and what it names exists."""

from __future__ import annotations

import re

from click.testing import CliRunner
from doc_examples import DOCS, blocks, run_python

from cairn.cli.main import cli
from cairn.lifecycle import retention as R

SECTION = "Retention policies"
GUIDE = DOCS / "lifecycle.md"


def test_the_examples_run(cairn_state, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    ns = run_python(GUIDE, section=SECTION, at_least=3)
    out = capsys.readouterr().out
    assert "2 runs moved to the trash" in out
    assert "churn-model/1.0.0 (in Production)" in out
    ns["client"].store.close()


def test_every_documented_option_and_field_exists():
    text = "\n".join(code for _, code in blocks(GUIDE, "bash", section=SECTION))
    help_of = {sub: CliRunner().invoke(cli, ["retention", sub, "--help"]).output
               for sub in ("set", "show", "ls", "plan", "unset", "ttl")}
    for line in text.splitlines():
        m = re.match(r"cairn retention (\w+)(.*)", line)
        if not m:
            continue
        for opt in re.findall(r"--[a-z][a-z-]+", m.group(2).split("#")[0]):
            assert opt in help_of[m.group(1)], f"`cairn retention {m.group(1)}` has no {opt}"
    section = GUIDE.read_text(encoding="utf-8").split(f"## {SECTION}")[1].split("\n## ")[0]
    for name in re.findall(r"^\| `(\w+)` \|", section, re.M):
        assert name in R.Policy.__dataclass_fields__, name
    for opt in re.findall(r"`(--[a-z-]+)", section):
        assert opt == "--dry-run" or opt in help_of["set"] + help_of["plan"], opt
