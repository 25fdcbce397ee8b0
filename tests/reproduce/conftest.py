"""Real git repositories, real scripts in child processes, and the real `cairn` command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CAIRN = Path(sys.executable).with_name("cairn")

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(repo: Path, *args: str) -> str:
    cmd = ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args]
    return subprocess.run(cmd, cwd=repo, check=True, capture_output=True, text=True).stdout


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CAIRN_TRACKING", "CAIRN_REPRODUCE", "PYTEST_"))}
    env.update(CAIRN_FLUSH_INTERVAL="0.2", **extra)
    return env


def run_script(repo: Path, store: Path | str, script: str, *args: str, **env: str) -> None:
    out = subprocess.run([sys.executable, script, *args], cwd=repo,
                         env=clean_env(CAIRN_TRACKING_URI=str(store), **env),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr


def cairn(store: Path | str, *args: str, cwd: Path | None = None,
          **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(CAIRN), "--store", str(store), *args], cwd=cwd,
                          env=clean_env(**env), capture_output=True, text=True, timeout=600)


def cairn_json(store: Path | str, *args: str, ok: tuple[int, ...] = (0,), **env: str) -> dict:
    out = cairn(store, *args, "--json", **env)
    assert out.returncode in ok, f"exit {out.returncode}:\n{out.stdout}\n{out.stderr}"
    return json.loads(out.stdout)


def runs(store: Path, experiment: str) -> list[dict]:
    return cairn_json(store, "runs", "ls", "-e", experiment, "-n", "1000")["runs"]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / ".gitignore").write_text(".cairn/\n")
    return path


def commit(repo: Path, message: str = "work") -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()
