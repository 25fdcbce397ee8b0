"""docs/monitoring.md: its Python examples run, in order, against a fresh store, and its
tables say what the code does."""

import re
from pathlib import Path

import doc_examples
import pytest

import cairn
from cairn.monitoring import drift as D
from cairn.monitoring.results import EXPERIMENT, MODEL_TAG, VERSION_TAG

DOC = Path(__file__).resolve().parents[2] / "docs" / "monitoring.md"


def test_monitoring_guide_examples_run(tracking, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CAIRN_USER", "alice")
    doc_examples.run_python(DOC, at_least=2, after_each=lambda: cairn.active_run() is None or
                            pytest.fail("an example left a run active"))


def test_the_defaults_table_is_the_code():
    text = DOC.read_text(encoding="utf-8")
    for method, threshold in D.THRESHOLDS.items():
        row = [r for r in text.splitlines() if r.startswith("|") and f"`{method}`" in r]
        assert row, method
        sign = "<" if method in D.P_VALUES else "≥"
        assert f"{sign} {threshold:g}" in row[0], (method, row[0])
    assert D.SMALL_REFERENCE == 1000 and "at most 1,000" in text
    assert D.FEW_UNIQUE == 5 and "at most 5 distinct values" in " ".join(text.split())


def test_the_metrics_and_tags_are_documented():
    text = DOC.read_text(encoding="utf-8")
    for name in (EXPERIMENT, MODEL_TAG, VERSION_TAG, "drift.share", "drift.rows",
                 "drift.<column>.drifted", "drift.<column>.missing"):
        assert f"`{name}`" in text, name


def test_every_option_is_documented():
    from cairn.cli.main import cli

    text = DOC.read_text(encoding="utf-8")
    for param in cli.commands["monitor"].commands["drift"].params:
        for opt in getattr(param, "opts", []):
            if opt.startswith("--") and opt not in ("--json", "--store", "--uri"):
                assert f"`{opt}" in text, opt


def test_links_point_somewhere():
    for target in re.findall(r"\]\(([^)\s]+)\)", DOC.read_text(encoding="utf-8")):
        page = target.partition("#")[0]
        assert "://" in target or (DOC.parent / page).exists(), target
