"""docs/alerts.md: its Python example runs against a fresh store, its YAML parses, and its
tables name what the code knows."""

import re
from pathlib import Path

import doc_examples
import pytest

import cairn
from cairn.monitoring import conditions
from cairn.monitoring.rules import ACTIONS, parse_rules

DOC = Path(__file__).resolve().parents[2] / "docs" / "alerts.md"


def blocks(kind):
    return doc_examples.blocks(DOC, kind)


def test_alert_guide_example_runs(tracking, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CAIRN_USER", "alice")
    doc_examples.run_python(DOC, after_each=lambda: cairn.active_run() is None or pytest.fail(
        "an example left a run active"))


def test_every_yaml_example_parses():
    found = blocks("yaml")
    assert len(found) >= 2
    for line, text in found:
        assert parse_rules(text), line


def test_the_tables_name_every_fact_field_and_action():
    text = DOC.read_text(encoding="utf-8")
    for name in conditions.LIVE:
        assert f"`live.{name}`" in text, name
    for name in conditions.SERVING:
        assert f"`serving.{name}`" in text, name
    from cairn.monitoring.rules import _RULE_KEYS

    for key in _RULE_KEYS:
        assert f"| `{key}` |" in text, key
    for action in ACTIONS:
        assert f"`{action}" in text, action


def test_every_option_is_documented():
    from cairn.cli.main import cli

    text = DOC.read_text(encoding="utf-8")
    group = cli.commands["monitor"]
    commands = [group.commands["status"], group.commands["run"],
                *group.commands["rules"].commands.values()]
    for cmd in commands:
        for param in cmd.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("--") and opt not in ("--json", "--store", "--uri",
                                                        "--live-window", "--source"):
                    assert f"{opt}" in text, opt


def test_links_point_somewhere():
    for target in re.findall(r"\]\(([^)\s]+)\)", DOC.read_text(encoding="utf-8")):
        page = target.partition("#")[0]
        assert "://" in target or (DOC.parent / page).exists(), target
