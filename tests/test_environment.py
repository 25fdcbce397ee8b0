from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cairn import environment
from cairn.environment import (
    capture_environment,
    capture_environment_async,
    clear_environment_cache,
)

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_environment_cache()
    yield
    clear_environment_cache()


def git(repo: Path, *args: str) -> str:
    cmd = ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args]
    return subprocess.run(cmd, cwd=repo, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q", "-b", "trunk")
    (tmp_path / "train.py").write_text("print('hello')\n")
    git(tmp_path, "add", "train.py")
    git(tmp_path, "commit", "-q", "-m", "first")
    return tmp_path


@needs_git
def test_clean_repo(repo: Path) -> None:
    info = capture_environment(str(repo))["git"]
    assert info["commit"] == git(repo, "rev-parse", "HEAD").strip()
    assert len(info["commit"]) == 40
    assert info["branch"] == "trunk"
    assert info["dirty"] is False
    assert info["diff_digest"] is None
    assert info["remote"] is None


@needs_git
def test_dirty_repo_digests_the_diff(repo: Path) -> None:
    (repo / "train.py").write_text("print('changed')\n")
    info = capture_environment(str(repo))["git"]
    assert info["dirty"] is True
    diff = subprocess.run(
        ["git", "diff", "--no-ext-diff", "--no-color", "--binary", "HEAD"],
        cwd=repo, check=True, capture_output=True,
    ).stdout
    assert b"changed" in diff
    assert info["diff_digest"] == hashlib.sha256(diff).hexdigest()


@needs_git
def test_git_state_is_cached_per_cwd_until_cleared(repo: Path) -> None:
    assert capture_environment(str(repo))["git"]["dirty"] is False
    (repo / "train.py").write_text("print('changed')\n")
    assert capture_environment(str(repo))["git"]["dirty"] is False
    clear_environment_cache()
    assert capture_environment(str(repo))["git"]["dirty"] is True


@needs_git
def test_subdirectory_and_detached_head(repo: Path) -> None:
    git(repo, "checkout", "-q", "--detach")
    sub = repo / "sub"
    sub.mkdir()
    info = capture_environment(str(sub))["git"]
    assert info["branch"] is None
    assert info["commit"] == git(repo, "rev-parse", "HEAD").strip()


@needs_git
def test_remote_credentials_are_stripped(repo: Path) -> None:
    git(repo, "remote", "add", "origin", "https://alice:s3cret@example.com/org/repo.git")
    remote = capture_environment(str(repo))["git"]["remote"]
    assert remote == "https://example.com/org/repo.git"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://ghp_token@github.com/o/r.git", "https://github.com/o/r.git"),
        ("https://u:p@host:8443/o/r", "https://host:8443/o/r"),
        ("ssh://git@host/o/r.git", "ssh://git@host/o/r.git"),
        ("ssh://git:pw@host/o/r.git", "ssh://git@host/o/r.git"),
        ("git@github.com:o/r.git", "git@github.com:o/r.git"),
        ("/srv/git/r.git", "/srv/git/r.git"),
    ],
)
def test_strip_credentials(url: str, expected: str) -> None:
    assert environment._strip_credentials(url) == expected


def test_not_a_repo_gives_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert capture_environment(str(tmp_path))["git"] is None


def test_missing_git_gives_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(environment.shutil, "which", lambda name: None)
    env = capture_environment(str(tmp_path))
    assert env["git"] is None
    assert env["gpus"] == []


def test_shape_and_json(tmp_path: Path) -> None:
    env = capture_environment(str(tmp_path))
    assert set(env) == {
        "git", "python", "packages", "os", "cpu", "gpus",
        "argv", "entry_point", "hostname", "user",
    }
    assert env["python"]["executable"] == sys.executable
    assert env["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    assert "numpy" in env["packages"]
    assert env["packages"]["numpy"] == __import__("numpy").__version__
    assert set(env["os"]) == {"system", "release", "machine", "platform"}
    assert env["cpu"]["count"] == os.cpu_count()
    assert isinstance(env["gpus"], list)
    assert env["argv"] == sys.argv
    assert json.loads(json.dumps(env)) == env


def test_callers_get_their_own_copy(tmp_path: Path) -> None:
    first = capture_environment(str(tmp_path))
    first["packages"]["numpy"] = "tampered"
    first["argv"].append("x")
    second = capture_environment(str(tmp_path))
    assert second["packages"]["numpy"] != "tampered"
    assert second["argv"] == sys.argv


def test_second_call_is_cached_and_fast(tmp_path: Path) -> None:
    t0 = time.perf_counter()
    capture_environment(str(tmp_path))
    first = time.perf_counter() - t0
    calls = 100
    t0 = time.perf_counter()
    for _ in range(calls):
        capture_environment(str(tmp_path))
    per_call = (time.perf_counter() - t0) / calls
    assert per_call < first / 10
    assert per_call < 1e-3


def test_async_capture(tmp_path: Path) -> None:
    future = capture_environment_async(str(tmp_path))
    env = future.result(timeout=60)
    assert env == capture_environment(str(tmp_path))
    warm = capture_environment_async(str(tmp_path))
    assert warm.done()
    assert warm.result() == env


def test_entry_point_of_a_module_and_a_script(tmp_path: Path) -> None:
    code = "import json; from cairn.environment import capture_environment as c; "
    code += "print(json.dumps(c()['entry_point']))"
    pkg = tmp_path / "job"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text(code)
    (tmp_path / "run.py").write_text(code)

    def run(*args: str) -> str:
        out = subprocess.run([sys.executable, *args], cwd=tmp_path, check=True,
                             capture_output=True, text=True).stdout
        return json.loads(out)

    assert run("-m", "job") == "-m job"
    assert run("run.py") == os.path.realpath(tmp_path / "run.py")
    assert run("-c", code) == "-c"


FAKE_SMI = """#!/bin/sh
echo "0, NVIDIA H100 80GB HBM3, 81559, 550.54.15"
echo "1, NVIDIA A100-SXM4-40GB, 40960 MiB, 550.54.15"
"""


@pytest.mark.skipif(sys.platform == "win32", reason="shell script")
def test_nvidia_smi_is_parsed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    smi = tmp_path / "bin" / "nvidia-smi"
    smi.parent.mkdir()
    smi.write_text(FAKE_SMI)
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{smi.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    assert capture_environment(str(tmp_path))["gpus"] == [
        {"index": 0, "name": "NVIDIA H100 80GB HBM3", "memory_total_mb": 81559,
         "driver": "550.54.15"},
        {"index": 1, "name": "NVIDIA A100-SXM4-40GB", "memory_total_mb": 40960,
         "driver": "550.54.15"},
    ]


def test_failing_nvidia_smi_gives_no_gpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setitem(sys.modules, "pynvml", None)
    assert capture_environment(str(tmp_path))["gpus"] == []


def test_no_heavy_imports() -> None:
    code = (
        "import sys; from cairn.environment import capture_environment as c; c(); "
        "print(sorted(m for m in ('torch', 'tensorflow', 'jax') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout
    assert out.strip() == "[]"


@needs_git
def test_repo_without_commits(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "-b", "trunk")
    (tmp_path / "a.txt").write_text("a\n")
    git(tmp_path, "add", "a.txt")
    info = capture_environment(str(tmp_path))["git"]
    assert info["commit"] is None
    assert info["branch"] == "trunk"
    assert info["dirty"] is True
    assert info["diff_digest"] is not None
