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
        "git", "source", "cwd", "python", "packages", "os", "cpu", "gpus",
        "argv", "entry_point", "process", "env_vars", "container", "package_sources",
        "hostname", "user",
    }
    assert env["cwd"] == os.path.realpath(tmp_path)
    assert set(env["process"]) == {"id", "pid", "started"} and env["process"]["pid"] == os.getpid()
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


# -- what cairn reproduce needs: the patch, untracked files, variables ---------------------
@needs_git
def test_patch_and_untracked_files_are_kept_by_content(repo: Path, monkeypatch) -> None:
    monkeypatch.setenv("CAIRN_CAPTURE_SOURCE_MAX_FILE", "100")
    (repo / "train.py").write_text("print('changed')\n")
    (repo / ".gitignore").write_text("*.log\n.venv/\n")
    (repo / "util.py").write_text("X = 1\n")
    (repo / "big.py").write_text("#" * 101)
    (repo / "run.log").write_text("ignored\n")
    (repo / ".cairn").mkdir()
    (repo / ".cairn" / "journal").write_text("a store, never code\n")
    sub = repo / "sub"
    sub.mkdir()
    (sub / "more.py").write_text("Y = 2\n")
    env = capture_environment(str(sub))
    info = env["git"]
    assert info["root"] == os.path.realpath(repo) and env["cwd"] == os.path.realpath(sub)
    assert info["patch"] == info["diff_digest"]
    assert set(info["untracked"]) == {".gitignore", "util.py", "sub/more.py"}
    assert info["skipped"] == [{"path": "big.py", "size": 101,
                                "reason": "larger than CAIRN_CAPTURE_SOURCE_MAX_FILE"}]
    blobs = environment.source_blobs(env)
    assert blobs[info["untracked"]["util.py"]] == b"X = 1\n"
    assert hashlib.sha256(blobs[info["patch"]]).hexdigest() == info["patch"]
    assert set(blobs) == set(environment.source_oids(env))


@needs_git
def test_the_total_limit_skips_what_does_not_fit(repo: Path, monkeypatch) -> None:
    monkeypatch.setenv("CAIRN_CAPTURE_SOURCE_MAX_TOTAL", "10")
    (repo / "a.py").write_text("12345678\n")  # 9 bytes: fits
    (repo / "b.py").write_text("123\n")       # 4 more: over the total
    info = capture_environment(str(repo))["git"]
    assert list(info["untracked"]) == ["a.py"]
    assert info["skipped"][0]["path"] == "b.py" and "TOTAL" in info["skipped"][0]["reason"]


def test_without_git_a_snapshot_of_the_scripts_directory(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text(
        "import json, sys\n"
        "from cairn.environment import capture_environment, source_blobs\n"
        "env = capture_environment()\n"
        "print(json.dumps([env['source'], {k: v.decode() for k, v in source_blobs(env).items()}]))\n")
    (code / "util.py").write_text("X = 1\n")
    (code / "data.bin").write_bytes(b"\0" * 10)
    (code / "__pycache__").mkdir()
    (code / "__pycache__" / "x.py").write_text("cached\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "not_code.py").write_text("no\n")
    env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(tmp_path.parent)}
    out = subprocess.run([sys.executable, str(code / "train.py")], cwd=elsewhere, env=env,
                         check=True, capture_output=True, text=True).stdout
    source, blobs = json.loads(out)
    assert source["root"] == os.path.realpath(code)
    assert sorted(source["files"]) == ["train.py", "util.py"]
    assert blobs[source["files"]["util.py"]] == "X = 1\n"


def test_no_snapshot_for_a_program_installed_in_the_environment(tmp_path: Path, monkeypatch) -> None:
    # This process is pytest, a script of the virtualenv: its directory is not the code.
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    (tmp_path / "train.py").write_text("print(1)\n")
    env = capture_environment(str(tmp_path))
    assert env["git"] is None and env["source"] is None


def test_only_allow_listed_variables_and_never_secrets(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PYTHONHASHSEED", "0")
    monkeypatch.setenv("CAIRN_USER", "ann")
    monkeypatch.setenv("CAIRN_TRACKING_TOKEN", "secret-token")
    monkeypatch.setenv("CAIRN_TRACKING_URI", "/somewhere")
    monkeypatch.setenv("MY_SEED", "7")
    monkeypatch.setenv("MY_API_KEY", "k")
    monkeypatch.setenv("HOME_SECRET_THING", "s")
    monkeypatch.setenv("CAIRN_CAPTURE_ENV_VARS", "MY_*, HOME_*")
    got = capture_environment(str(tmp_path))["env_vars"]
    assert got["PYTHONHASHSEED"] == "0" and got["CAIRN_USER"] == "ann" and got["MY_SEED"] == "7"
    assert "CAIRN_TRACKING_TOKEN" not in got and "CAIRN_TRACKING_URI" not in got
    assert "MY_API_KEY" not in got and "HOME_SECRET_THING" not in got
    assert "PATH" not in got


def test_container_image_from_the_variables(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CAIRN_IMAGE", "registry.example.com/train:1")
    monkeypatch.setenv("CAIRN_IMAGE_DIGEST", "sha256:" + "a" * 64)
    container = capture_environment(str(tmp_path))["container"]
    assert container["image"] == "registry.example.com/train:1"
    assert container["image_digest"] == "sha256:" + "a" * 64


@needs_git
def test_a_run_stores_its_patch_once_per_process(repo: Path) -> None:
    """The writer puts what the environment names into the store's objects (a real
    process: its capture is the per-process one)."""
    (repo / "train.py").write_text("print('changed')\n")
    (repo / "new.py").write_text("Z = 3\n")
    code = ("import cairn\n"
            "for i in range(3):\n"
            "    with cairn.start_run(): pass\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_TRACKING")}
    store = repo / ".cairn"
    subprocess.run([sys.executable, "-c", code], cwd=repo, check=True, timeout=120,
                   env={**env, "CAIRN_TRACKING_URI": str(store)})
    import cairn

    client = cairn.Client(str(store))
    try:
        found = client.search_runs()
        assert len(found) == 3
        info = client.get_run(found[0].id).env["git"]
        assert client.store.objects.get_bytes(info["patch"]).startswith(b"diff --git")
        assert client.store.objects.get_bytes(info["untracked"]["new.py"]) == b"Z = 3\n"
    finally:
        client.store.close()


@needs_git
def test_many_untracked_files_keep_the_environment_small(repo: Path, monkeypatch) -> None:
    monkeypatch.setattr(environment, "MAX_SOURCE_FILES", 5)
    for i in range(40):
        (repo / f"f{i:02}.py").write_text(f"X = {i}\n")
    info = capture_environment(str(repo))["git"]
    assert len(info["untracked"]) == 5
    assert len(info["skipped"]) == 21 and info["skipped"][-1]["path"] == "(15 more)"


def test_arguments_that_hold_secrets_are_not_recorded(monkeypatch):
    monkeypatch.setattr(sys, "argv", [
        "train.py", "--password", "hunter2", "--api-key=abc123", "--lr", "0.1",
        "--auth-token", "t0k", "--data", "https://user:pw@host.example/d.csv", "--flag",
        "--db-password", "-x", "plain", "--author", "Ada", "--monkey", "m", "--apiKey", "k1",
        "--secret_key", "k2"])
    argv = capture_environment()["argv"]
    assert argv == [
        "train.py", "--password", "<redacted>", "--api-key=<redacted>", "--lr", "0.1",
        "--auth-token", "<redacted>", "--data", "https://host.example/d.csv", "--flag",
        "--db-password", "-x", "plain", "--author", "Ada", "--monkey", "m", "--apiKey",
        "<redacted>", "--secret_key", "<redacted>"]
    assert not {"hunter2", "abc123", "t0k", "k1", "k2"} & set(json.dumps(argv).split('"'))


@needs_git
def test_untracked_secrets_symlinks_and_fifos_are_never_stored(repo: Path, tmp_path_factory) -> None:
    outside = tmp_path_factory.mktemp("outside") / "id_rsa"
    outside.write_text("PRIVATE KEY\n")
    (repo / ".env").write_text("API_TOKEN=t0k\n")
    (repo / "credentials.json").write_text('{"password": "p"}\n')
    (repo / "deploy.pem").write_text("KEY\n")
    (repo / "tokenizer.py").write_text("T = 1\n")  # code: kept
    (repo / "config.yaml").symlink_to(outside)
    if hasattr(os, "mkfifo"):
        os.mkfifo(repo / "pipe.txt")
    env = capture_environment(str(repo))
    info = env["git"]
    assert set(info["untracked"]) == {"tokenizer.py"}
    reasons = {s["path"]: s["reason"] for s in info["skipped"]}
    assert reasons["config.yaml"] == "a symbolic link (not followed)"
    assert {".env", "credentials.json", "deploy.pem"} <= set(reasons)
    assert "secret" in reasons[".env"]
    stored = b"".join(environment.source_blobs(env).values())
    assert b"PRIVATE KEY" not in stored and b"t0k" not in stored
