"""docs/pipelines.md: its files, commands and Python run, in order, in a fresh git
repository; and it names every option, JSON key, status and run tag the code has."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cairn.pipelines import cache as C
from cairn.pipelines import runner as R

DOC = Path(__file__).resolve().parents[2] / "docs" / "pipelines.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.M | re.S)


@pytest.mark.slow
def test_the_guide_runs(tmp_path, monkeypatch):
    proj = tmp_path / "proj"
    proj.mkdir()
    env = {**os.environ, "CAIRN_TRACKING_URI": str(tmp_path / "store"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for args in (["init", "-q"], ["config", "user.email", "d@example.com"],
                 ["config", "user.name", "d"]):
        subprocess.run(["git", *args], cwd=proj, check=True)
    (proj / ".gitignore").write_text("out/\ncairn.lock\n")
    text = DOC.read_text(encoding="utf-8")
    ran = {"sh": 0, "python": 0}
    for m in BLOCK.finditer(text):
        lang, code = m.group(1), m.group(2)
        line = text[:m.start()].count("\n") + 1
        first = code.splitlines()[0]
        if lang in ("python", "yaml") and re.fullmatch(r"# [\w./-]+", first):
            (proj / first[2:]).write_text(code)  # a file of the example
        elif lang == "sh":
            proc = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", code], cwd=proj,
                                  env=env, capture_output=True, text=True, timeout=120)
            assert proc.returncode == 0, f"docs/pipelines.md:{line}\n{proc.stdout}\n{proc.stderr}"
            ran["sh"] += 1
        elif lang == "python":
            monkeypatch.chdir(proj)
            monkeypatch.setenv("CAIRN_TRACKING_URI", env["CAIRN_TRACKING_URI"])
            exec(compile(code, f"docs/pipelines.md:{line}", "exec"), {"__name__": "docs"})
            ran["python"] += 1
    assert ran == {"sh": 2, "python": 1}
    assert (proj / "out/model-small.txt").read_text() == "small 1.0\n"


def test_every_option_status_json_key_and_tag_is_in_the_guide():
    from cairn.cli.main import cli

    text = DOC.read_text(encoding="utf-8")
    for name, cmd in cli.commands["pipeline"].commands.items():
        assert f"`cairn pipeline {name}" in text, name
        for param in cmd.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("-") and opt not in ("--store", "--uri", "-h", "--help"):
                    assert f"`{opt}" in text or f"/{opt}" in text, (name, opt)
    keys = R.StageResult("a", "ran").to_dict().keys() | R.PipelineResult("f").to_dict().keys()
    for key in keys:
        assert f"`{key}`" in text, key
    for status in ("unchanged", "restored", "cached", "ran", "failed", "skipped", "killed"):
        assert f"`{status}`" in text, status
    for tag in (C.KEY_TAG, C.RECORD_TAG, C.STAGE_TAG, C.FILE_TAG, "cairn.pipeline.cmd",
                "cairn.pipeline.error"):
        assert f"`{tag}`" in text, tag


def test_links_point_somewhere():
    for target in re.findall(r"\]\(([^)\s]+)\)", DOC.read_text(encoding="utf-8")):
        page = target.partition("#")[0]
        assert "://" in target or not page or (DOC.parent / page).exists(), target
