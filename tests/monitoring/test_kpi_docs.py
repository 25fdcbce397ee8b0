"""docs/kpi.md: its Python example runs against a fresh store, and it names what the code
decides (the production tracks, the default settle period, every option and JSON key)."""

import re
from pathlib import Path

import doc_examples

import cairn
from cairn.monitoring import kpi as K

DOC = Path(__file__).resolve().parents[2] / "docs" / "kpi.md"


def test_kpi_guide_example_runs(tracking, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CAIRN_USER", "alice")
    monkeypatch.setenv("CAIRN_KEYS_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("CAIRN_CAPTURE_ENV", "0")
    doc_examples.run_python(DOC)


def test_the_definitions_are_the_code():
    text = " ".join(DOC.read_text(encoding="utf-8").split())
    for alias in K.PRODUCTION_ALIASES:
        assert f"`@{alias}`" in text, alias
    assert f"`{K.PRIMARY_ARM}` arm" in text
    assert K.DEFAULT_SETTLE.total_seconds() == 24 * 3600 and "default `24h`" in text
    assert "cairn reproduce" in text and K.REPRODUCIBILITY_NOTE.startswith("filled in by")
    assert "**latest** attempt was `reproduced`" in text and "`cairn.reproduces`" in text


def test_every_option_and_json_key_is_documented(tracking, cairn_clock):
    from cairn.cli.main import cli

    text = DOC.read_text(encoding="utf-8")
    for param in cli.commands["kpi"].params:
        for opt in getattr(param, "opts", []):
            if opt.startswith("--") and opt not in ("--json", "--store", "--uri"):
                assert f"`{opt}" in text, opt
    d = K.kpis(cairn.Client(str(tracking))).to_dict()
    for key in d:
        assert f"`{key}`" in text, key
    for key in d["overall"]:
        assert f"`{key}`" in text, key
    for key in d["reproducibility"] or {"runs": 0, "reproduced": 0, "differs": 0, "failed": 0,
                                        "rate": None}:
        assert f"`{key}`" in text, key


def test_links_point_somewhere():
    for target in re.findall(r"\]\(([^)\s]+)\)", DOC.read_text(encoding="utf-8")):
        page = target.partition("#")[0]
        assert "://" in target or (DOC.parent / page).exists(), target
