"""docs/lifecycle.md "Trash: delete and restore": its examples run, and what it names exists."""

from __future__ import annotations

import re

from click.testing import CliRunner
from doc_examples import DOCS, blocks, run_python

from cairn.cli.main import cli
from cairn.lifecycle import trash

SECTION = "Trash: delete and restore"
GUIDE = DOCS / "lifecycle.md"


def test_the_examples_run(cairn_state, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CAIRN_CAPTURE_ENV", "0")
    ns = run_python(GUIDE, section=SECTION, at_least=2)
    out = capsys.readouterr().out
    assert "refused: data set version transactions@1 is protected" in out
    assert "transactions@2 is in the trash" in out
    assert "dataset_version transactions@2 alice" in out
    assert "restored 1.0.0 Development" in out
    assert "[('experiment', 'scratch')] 1 run" in out
    ns["client"].store.close()


def test_every_documented_option_and_field_exists():
    text = "\n".join(code for _, code in blocks(GUIDE, "sh", section=SECTION))
    helps = {}
    for line in text.splitlines():
        m = re.match(r"cairn trash (\w+)(.*)", line)
        if not m:
            continue
        sub = m.group(1)
        helps.setdefault(sub, CliRunner().invoke(cli, ["trash", sub, "--help"]).output)
        for opt in re.findall(r"--[a-z][a-z-]+", m.group(2).split("#")[0]):
            assert opt in helps[sub], f"`cairn trash {sub}` has no {opt}"
    assert helps.keys() == {"ls", "empty"}
    for key in ("kind", "identifier", "name", "deleted_at", "deleted_by"):
        assert key in trash.TrashItem.__dataclass_fields__
    for key in ("purged", "kept", "runs_in_experiments"):
        assert key in trash.PurgeReport.__dataclass_fields__
