"""docs/reproduce.md: its Python example runs, and it names every option, JSON key, tag and
default the code has."""

from __future__ import annotations

import re
import shlex
import traceback
from pathlib import Path

import pytest

from cairn import environment
from cairn.reproduce import compare, report

from .conftest import cairn, needs_git

DOC = Path(__file__).resolve().parents[2] / "docs" / "reproduce.md"


@needs_git
@pytest.mark.slow
def test_the_python_example_runs(cairn_state, monkeypatch, tmp_path):
    monkeypatch.delenv("CAIRN_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    text = DOC.read_text(encoding="utf-8")
    blocks = [(text[:m.start()].count("\n") + 2, m.group(1))
              for m in re.finditer(r"^```python\n(.*?)^```", text, re.M | re.S)]
    assert blocks
    namespace = {"__name__": "docs_reproduce"}
    for line, code in blocks:
        try:
            exec(compile(code, f"docs/reproduce.md:{line}", "exec"), namespace)
        except Exception:
            pytest.fail(f"the example at docs/reproduce.md:{line} failed:\n{traceback.format_exc()}")
    # The page's `cairn` lines, on the run the example made (1cbf0f28 and "fraud" stand for
    # it and its experiment).
    lines = [line.split("#")[0].strip() for m in re.finditer(r"^```sh\n(.*?)^```", text, re.M | re.S)
             for line in m.group(1).splitlines() if line.startswith("cairn ")]
    assert len(lines) >= 4
    for line in lines:
        args = shlex.split(line.replace("1cbf0f28", namespace["original"].id[:8])
                           .replace("-e fraud", "-e Default"))[1:]
        out = cairn(namespace["store"], *args)
        assert out.returncode == 0, f"`{line}` failed:\n{out.stdout}{out.stderr}"


def test_every_option_json_key_and_default_is_documented():
    from cairn.cli.main import cli

    text = " ".join(DOC.read_text(encoding="utf-8").split())
    for param in cli.commands["reproduce"].params:
        for opt in getattr(param, "opts", []):
            if opt.startswith("--") and opt not in ("--json", "--store", "--uri"):
                assert f"`{opt}" in text, opt
    keys = ["original", "name", "experiment", "verdict", "summary", "why", "rerun", "environment",
            "metrics", "params", "data", "notes", "seconds", "plan", "max_diff", "points",
            "tolerance", "ok", "judged", "problem", "rate"]
    from cairn.reproduce.plan import Plan

    keys += list(Plan("x", "n", "e").to_dict())
    for key in keys:
        assert f"`{key}`" in text, key
    for verdict in report.VERDICTS:
        assert f"`{verdict}`" in text, verdict
    for tag in (report.REPRODUCES_TAG, report.VERDICT_TAG, report.SUMMARY_TAG,
                report.REPORT_ARTIFACT):
        assert f"`{tag}`" in text, tag
    for name in environment.ENV_VAR_ALLOW:
        assert f"`{name}`" in text, name
    for word in environment.SECRET_WORDS:
        assert f"`{word}`" in text, word
    for var in (environment.MAX_FILE_VAR, environment.MAX_TOTAL_VAR, environment.ENV_VARS_VAR):
        assert f"`{var}`" in text, var
    assert environment.DEFAULT_MAX_FILE == 1_000_000 and "1 MB per file" in text
    assert environment.DEFAULT_MAX_TOTAL == 10_000_000 and "10 MB in all" in text
    assert f"at most {environment.MAX_SOURCE_FILES} files" in text
    assert compare.DEFAULT_RELATIVE == 1e-6 and "relative `1e-6`" in text


def test_links_point_somewhere():
    for target in re.findall(r"\]\(([^)\s]+)\)", DOC.read_text(encoding="utf-8")):
        page = target.partition("#")[0]
        assert "://" in target or (DOC.parent / page).exists(), target
