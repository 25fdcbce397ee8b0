"""The parts of `cairn reproduce`, fast (no uv, no CLI).  A store may be someone else's: what
it names must not write outside the rebuilt code nor reach git or uv as an option, and what a
rerun leaves behind (processes) goes with it.  Then NaN and tolerances in the comparison."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path

import pytest

import cairn
from cairn.errors import NotFound
from cairn.reproduce.compare import compare_metrics
from cairn.reproduce.plan import Plan, make_plan
from cairn.reproduce.rerun import execute
from cairn.reproduce.workspace import SetupFailed, code

from .conftest import commit, git, needs_git


class _Objects:
    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def add(self, data: bytes) -> str:
        oid = f"{len(self.blobs):064x}"
        self.blobs[oid] = data
        return oid

    def get_bytes(self, oid: str) -> bytes:
        if oid not in self.blobs:
            raise NotFound(f"object {oid} is not in the store")
        return self.blobs[oid]


def _snapshot_plan(files: dict[str, str]) -> Plan:
    return Plan("r", "n", "e", snapshot=files, command=("train.py",), python="3")


@pytest.mark.parametrize("path", [
    "../escaped.py", "/tmp/cairn-absolute.py", "sub/../../escaped.py",
    ".git/hooks/post-checkout", "sub/.git/config", ".GIT/config", ".git",
])
def test_a_stored_path_outside_the_code_or_in_git_is_refused(tmp_path, path):
    objects = _Objects()
    oid = objects.add(b"print('pwned')\n")
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(SetupFailed, match="stored source path"):
        with code(_snapshot_plan({"train.py": oid, path: oid}), objects, work):
            pass
    assert not (tmp_path / "escaped.py").exists()
    assert not Path("/tmp/cairn-absolute.py").exists()


def test_a_stored_file_that_cannot_be_written_or_read_is_a_setup_failure(tmp_path):
    objects = _Objects()
    oid = objects.add(b"x = 1\n")
    (tmp_path / "a").mkdir()
    with pytest.raises(SetupFailed, match="could not be written"):
        with code(_snapshot_plan({"a": oid, "a/b.py": oid}), objects, tmp_path / "a"):
            pass
    (tmp_path / "b").mkdir()
    with pytest.raises(SetupFailed, match="cannot be read"):
        with code(_snapshot_plan({"train.py": "f" * 64}), objects, tmp_path / "b"):
            pass


@needs_git
def test_an_untracked_file_through_a_committed_symlink_is_refused(repo, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (repo / "train.py").write_text("print(1)\n")
    os.symlink(outside, repo / "out")
    sha = commit(repo)
    objects = _Objects()
    oid = objects.add(b"pwned\n")
    plan = Plan("r", "n", "e", repo=str(repo), commit=sha, untracked={"out/evil.py": oid},
                command=("train.py",), python="3")
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(SetupFailed, match="outside the code"):
        with code(plan, objects, work):
            pass
    assert not (outside / "evil.py").exists()
    assert not (work / "code").exists()  # the worktree is gone
    assert "work" not in git(repo, "worktree", "list")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
def test_a_rerun_stopped_at_its_timeout_leaves_no_process_behind(tmp_path):
    pidfile = tmp_path / "child.pid"
    code_dir = tmp_path / "code"
    code_dir.mkdir()
    (code_dir / "train.py").write_text(
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(60)\n")
    plan = Plan("r", "n", "e", command=("train.py",), python="3")
    store = tmp_path / "store"
    store.mkdir()
    ran = execute(plan, code_dir, sys.executable, store, ["r"], 2.0, tmp_path / "out.log")
    assert ran.returncode is None
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid), "the script's child outlived the rerun"


def test_nan_in_one_run_only_differs_and_the_json_is_strict(tmp_path):
    client = cairn.Client(str(tmp_path / "store"))
    a = client.create_run(params={"seed": "0"})
    b = client.create_run(params={"seed": "0"})
    for run, values in ((a, [1.0, math.nan, math.nan]), (b, [1.0, 2.0, math.nan])):
        for step, v in enumerate(values):
            client.log_metric(run.id, "loss", v, step=step)
        client.log_metric(run.id, "both_nan", math.nan)
        client.set_terminated(run.id)
    a, b = client.get_run(a.id), client.get_run(b.id)
    rows = {r.key: r for r in compare_metrics(client, a, client, b, [])}
    assert rows["both_nan"].ok and rows["both_nan"].max_diff == 0.0  # NaN == NaN here
    loss = rows["loss"]
    assert not loss.ok and loss.problem and "NaN in one run only" in loss.problem
    text = json.dumps([r.to_dict() for r in rows.values()], allow_nan=False)
    assert json.loads(text)[1]["max_diff"] is None
    client.store.close()


def test_a_secret_argument_is_missing_from_the_plan_and_an_outside_entry_point_noted(tmp_path):
    client = cairn.Client(str(tmp_path / "store"))
    run = client.create_run()
    script = tmp_path / "elsewhere" / "train.py"
    script.parent.mkdir()
    script.write_text("print(1)\n")
    root = tmp_path / "code"
    root.mkdir()
    env = {"python": {"version": "3.11.0"}, "packages": {"x": "1"}, "cwd": str(root),
           "git": None, "source": {"root": str(root), "files": {}},
           "entry_point": str(script),
           "argv": [str(script), "--password", "<redacted>", "--api-key=<redacted>", "--lr", "1"]}
    plan = make_plan(client, dataclasses.replace(run, env=env))
    assert any("--password, --api-key" in m and "secret" in m for m in plan.missing)
    assert plan.command[0] == str(script)
    assert any("outside the code" in n for n in plan.notes)
    client.store.close()


def test_recorded_values_that_would_be_options_to_git_or_uv_are_missing(tmp_path):
    client = cairn.Client(str(tmp_path / "store"))
    run = client.create_run()
    root = tmp_path / "code"
    root.mkdir()
    env = {"python": {"version": "/bin/sh"}, "cwd": str(root),
           "packages": {"--index-url=https://evil.example/simple": "1", "numpy": "2.0.0"},
           "git": {"commit": "--upload-pack=touch /tmp/pwned", "root": str(root),
                   "dirty": False, "patch": None, "untracked": {}, "skipped": []},
           "entry_point": str(root / "train.py"), "argv": ["train.py"]}
    plan = make_plan(client, dataclasses.replace(run, env=env))
    text = "\n".join(plan.missing)
    assert "is not a commit id" in text and plan.commit is None
    assert "is not a version" in text and plan.python is None
    assert "is not a package name and version" in text and plan.packages == {}
    client.store.close()


def test_a_working_directory_through_a_symlink_out_of_the_code_is_refused(tmp_path):
    code_dir = tmp_path / "code"
    code_dir.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (code_dir / "up").symlink_to(outside)
    plan = Plan("r", "n", "e", cwd="up/new", command=("-c", "pass"), python="3")
    with pytest.raises(SetupFailed, match="outside the code"):
        execute(plan, code_dir, sys.executable, tmp_path, ["r"], 5.0, tmp_path / "out.log")
    assert not (outside / "new").exists()


def test_a_star_tolerance_does_not_judge_system_metrics():
    from cairn.reproduce.compare import parse_tolerances, tolerance_for

    rules = parse_tolerances(["*=0"])
    assert not tolerance_for("system/cpu_percent", rules, True).judged
    assert tolerance_for("loss", rules, False).judged
    assert tolerance_for("system/cpu_percent", parse_tolerances(["system/*=10%"]), True).judged
    assert tolerance_for("system/gpu", parse_tolerances(["*=0", "system/gpu=1"]), True).judged
