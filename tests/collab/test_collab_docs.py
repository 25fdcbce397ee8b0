"""docs/collaboration.md's examples run: its ```python blocks in order against a fresh
store, and its `cairn ...` lines through the CLI."""

from __future__ import annotations

import shlex
from pathlib import Path

import doc_examples
from click.testing import CliRunner

import cairn
from cairn.cli.main import cli

DOC = Path(__file__).resolve().parents[2] / "docs" / "collaboration.md"


def _blocks(lang: str) -> list[tuple[int, str]]:
    return doc_examples.blocks(DOC, lang)


def test_python_examples_run(tracking, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    doc_examples.run_python(DOC, at_least=3)


def test_cli_lines_run(tracking, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # `cairn reports export` writes a file
    client = cairn.Client(str(tracking), user="alice")
    exp = client.create_experiment("fraud").id
    run = client.create_run(exp, name="r").id
    client.set_terminated(run)
    lines = [ln for _, block in _blocks("sh") for ln in block.splitlines()
             if ln.startswith("cairn ")]
    assert len(lines) >= 6
    for line in lines:
        args = shlex.split(line.replace("RUN_ID", run[:8]))[1:]
        result = CliRunner().invoke(cli, ["--store", str(tracking), *args], prog_name="cairn")
        assert result.exit_code == 0, f"`{line}` failed:\n{result.output}{result.exception!r}"
