"""docs/security.md's anonymisation and erasure sections: their examples run, and what
they document exists."""

from __future__ import annotations

import re

from click.testing import CliRunner

from cairn.lifecycle.erase import EraseReport
from cairn.lifecycle.export import ExportReport
from cairn.cli.main import cli
from tests.doc_examples import DOCS, run_python

GUIDE = DOCS / "security.md"


def _section(name: str) -> str:
    text = GUIDE.read_text(encoding="utf-8")
    start = text.index(f"## {name}\n")
    end = text.find("\n## ", start + 4)
    return text[start:end if end > 0 else len(text)]


def test_anonymisation_examples_run(monkeypatch, cairn_state):
    monkeypatch.setenv("CAIRN_ANONYMISE", "0")  # restored after the examples set them
    monkeypatch.setenv("CAIRN_ANONYMISE_KEY", "")
    run_python(GUIDE, section="Anonymisation", at_least=2)


def test_erasure_examples_run(monkeypatch, cairn_state):
    monkeypatch.setenv("CAIRN_ANONYMISE", "0")
    run_python(GUIDE, section="Erasing a person's data")


def _help(*args: str) -> str:
    out = CliRunner().invoke(cli, [*args, "--help"])
    assert out.exit_code == 0, out.output
    return out.output


def test_documented_options_and_json_keys_exist():
    anon, erase = _section("Anonymisation"), _section("Erasing a person's data")
    export_help, erase_help = _help("export"), _help("admin", "erase-user")
    for option in ("--anonymise", "--force", "--json", "-e", "--objects"):
        assert option in anon and option in export_help
    for option in ("--dry-run", "--yes", "--json"):
        assert option in erase and option in erase_help
    keys = set(re.findall(r'"(\w+)"', anon.split("`--json` prints")[1].split("\n\n")[0]))
    assert keys == set(ExportReport("d", False).to_dict())
    keys = set(re.findall(r'"(\w+)"', erase.split("`--json`\nprints")[1].split("(")[0]))
    assert keys == set(EraseReport("n", True).to_dict())
    for setting in ("CAIRN_ANONYMISE", "CAIRN_ANONYMISE_KEY", "CAIRN_ANONYMISE_RULES"):
        assert setting in anon
