"""A real project for pipeline tests: a git repository, stage scripts run as processes, and
a store outside it.  Every stage appends its name to ``exec.log``, so a test sees exactly
which commands ran (a cache hit runs nothing)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import cairn
import cairn.pipelines as P

STEP = textwrap.dedent("""\
    import sys, pathlib
    name, src, dst = sys.argv[1], sys.argv[2], sys.argv[3]
    with open("exec.log", "a") as f:
        f.write(name + "\\n")
    text = pathlib.Path(src).read_text().strip().upper() if src != "-" else ""
    if sys.argv[4:]:
        text += "\\n" + " ".join(sys.argv[4:])
    pathlib.Path(dst).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(dst).write_text(text + "\\n")
    """)

PIPELINE = textwrap.dedent(f"""\
    stages:
      prepare:
        cmd: {sys.executable} step.py prepare data/raw.txt out/prep.txt
        deps: [data/raw.txt, step.py]
        outs: [out/prep.txt]
      train:
        cmd: {sys.executable} step.py train out/prep.txt out/model.txt lr=${{train.lr}}
        deps: [out/prep.txt, step.py]
        params: [train.lr]
        outs: [out/model.txt]
      report:
        cmd: {sys.executable} step.py report data/raw.txt out/report.txt ${{report.title}}
        deps: [data/raw.txt]
        params: [report.title]
        outs: [out/report.txt]
    """)


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout


class Project:
    def __init__(self, root: Path, store: Path) -> None:
        self.root = root
        self.client = cairn.Client(str(store))

    def write(self, rel: str, text: str) -> Path:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        return p

    def run(self, stage: str | None = None, **kw) -> dict[str, str]:
        """Run the pipeline; returns stage -> status, and ``executed``: what ran."""
        log = self.root / "exec.log"
        log.unlink(missing_ok=True)
        self.last = P.run(self.client, self.root / kw.pop("file", "cairn.yaml"), stage, **kw)
        return {r.name: r.status for r in self.last.stages}

    @property
    def executed(self) -> list[str]:
        log = self.root / "exec.log"
        return sorted(log.read_text().split()) if log.exists() else []

    def git(self, *args: str) -> str:
        return git(self.root, *args)


@pytest.fixture
def project(tmp_path, monkeypatch) -> Project:
    monkeypatch.setenv("CAIRN_CAPTURE_ENV", "0")
    root = tmp_path / "proj"
    root.mkdir()
    p = Project(root, tmp_path / "store")
    p.write("step.py", STEP)
    p.write("data/raw.txt", "hello\n")
    p.write("params.yaml", "train:\n  lr: 0.1\nreport:\n  title: weekly\n")
    p.write("cairn.yaml", PIPELINE)
    p.write(".gitignore", "out/\nexec.log\ncairn.lock\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "t@example.com")
    git(root, "config", "user.name", "t")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "pipeline")
    return p
