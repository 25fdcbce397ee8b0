"""Review findings: paths leaving the project, YAML that expands without bound, params whose
keys JSON cannot sort, metrics that cannot be read, lineage from a stale lock entry."""

from __future__ import annotations

import sys

import pytest

import cairn.pipelines as P
from cairn.data import Datasets
from cairn.errors import InvalidArgument

PY = sys.executable


def _one_stage(project, cmd: str, outs: str = "[o.txt]", extra: str = "") -> None:
    project.write("cairn.yaml", f"stages:\n  a:\n    cmd: {cmd}\n    outs: {outs}\n{extra}")


def test_a_params_file_outside_the_project_is_refused(project, tmp_path):
    (tmp_path / "secret.yaml").write_text("token: abc\n")
    _one_stage(project, "echo hi > o.txt", extra="    params:\n      - ../secret.yaml: [token]\n")
    with pytest.raises(InvalidArgument, match="outside the pipeline's directory"):
        P.load_pipeline(project.root / "cairn.yaml")
    _one_stage(project, "echo hi > o.txt",
               extra=f"    params:\n      - {tmp_path / 'secret.yaml'}: [token]\n")
    with pytest.raises(InvalidArgument, match="absolute"):
        P.load_pipeline(project.root / "cairn.yaml")


def test_params_whose_keys_mix_types_are_hashed(project):
    project.write("params.yaml", "train:\n  m: {1: a, b: 2}\n")
    _one_stage(project, "echo hi > o.txt", extra="    params: [train.m]\n")
    assert project.run() == {"a": "ran"}
    assert project.run() == {"a": "unchanged"}  # and from the lock's parse cache


def test_an_output_through_a_link_leaving_the_project_is_never_written_or_read(project,
                                                                                tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    _one_stage(project, "mkdir -p out && echo hi > out/o.txt", outs="[out/o.txt]")
    assert project.run() == {"a": "ran"}
    # The output's directory becomes a link out of the project: a restore would write there.
    (project.root / "out" / "o.txt").unlink()
    (project.root / "out").rmdir()
    (project.root / "out").symlink_to(outside)
    assert project.run() == {"a": "failed"}
    assert "outside the project" in project.last.stages[0].reason
    assert list(outside.iterdir()) == []
    # A command that makes its output a link to a file outside: not copied into the store.
    (project.root / "out").unlink()
    (outside / "secret").write_text("s3cret\n")
    _one_stage(project, f"ln -s {outside / 'secret'} link.txt", outs="[link.txt]")
    assert project.run() == {"a": "failed"}
    assert "link.txt" not in {d.name for d in Datasets(project.client).list()}


def test_yaml_whose_aliases_expand_without_bound_is_refused(project):
    lines = ["a0: &a0 {x: 1, y: 1}"]
    lines += [f"a{i}: &a{i} {{x: *a{i - 1}, y: *a{i - 1}}}" for i in range(1, 40)]
    bomb = "\n".join(lines) + "\n"
    project.write("params.yaml", bomb)
    _one_stage(project, "echo hi > o.txt", extra="    params: [a39]\n")
    with pytest.raises(InvalidArgument, match="expands to more than"):
        P.load_pipeline(project.root / "cairn.yaml")
    project.write("params.yaml", "x: 1\n")
    project.write("bomb.txt", bomb)
    _one_stage(project, "cp bomb.txt m.yaml", outs="[]", extra="    metrics: [m.yaml]\n")
    assert project.run() == {"a": "failed"}
    assert "expands to more than" in project.last.stages[0].reason


def test_a_metrics_path_that_is_a_directory_fails_its_stage_only(project):
    project.write("cairn.yaml", "stages:\n"
                  "  a:\n    cmd: mkdir -p m && echo 1 > m/x\n    metrics: [m]\n"
                  "  b:\n    cmd: echo hi > o.txt\n    outs: [o.txt]\n")
    assert project.run() == {"a": "failed", "b": "ran"}
    assert "cannot be read" in project.last.stages[0].reason


def test_lineage_does_not_take_a_removed_stage_from_the_lock(project):
    project.write("cairn.yaml", "stages:\n  gen:\n    cmd: echo made > src.txt\n"
                  "    outs: [src.txt]\n")
    assert project.run() == {"gen": "ran"}
    # The stage is removed; src.txt is now a source file, edited by hand.
    project.write("src.txt", "edited by hand\n")
    project.write("cairn.yaml", "stages:\n  use:\n    cmd: cp src.txt o.txt\n"
                  "    deps: [src.txt]\n    outs: [o.txt]\n")
    assert project.run() == {"use": "ran"}
    out = Datasets(project.client).versions("o.txt")[-1]
    (parent,) = out.parents
    assert Datasets(project.client).files(parent)[0].size == len("edited by hand\n")


def test_two_runs_of_one_pipeline_at_once_are_refused(project):
    import fcntl
    import os

    from cairn.errors import Conflict

    fd = os.open(project.root / "cairn.yaml", os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a run in another process holds it
        with pytest.raises(Conflict, match="another 'cairn pipeline run' is running"):
            project.run()
        assert not (project.root / "exec.log").exists()
        assert {r.status for r in P.status(project.client, project.root).stages} == {"stale"}
        assert not (project.root / "cairn.lock").exists()  # status saved nothing meanwhile
    finally:
        os.close(fd)
    assert set(project.run().values()) == {"ran"}


def test_a_full_disk_while_recording_fails_the_stage_and_caches_nothing(project, monkeypatch):
    import errno

    from cairn.data import api

    real = api.Datasets.derive

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(api.Datasets, "derive", full)
    _one_stage(project, "echo hi > o.txt")
    project.write("cairn.yaml", project.root.joinpath("cairn.yaml").read_text()
                  + "  b:\n    cmd: echo b > b.txt\n    outs: [b.txt]\n")
    assert project.run() == {"a": "failed", "b": "failed"}
    assert "No space left" in project.last.stages[0].reason
    run = project.client.get_run(project.last.stages[0].run_id)
    assert run.status == "FAILED"
    monkeypatch.setattr(api.Datasets, "derive", real)
    assert project.run() == {"a": "ran", "b": "ran"}  # nothing was cached


@pytest.mark.parametrize("out", ["cairn.yaml", "cairn.lock", ".git/hooks/pre-commit", ".git"])
def test_the_pipeline_file_the_lock_and_git_cannot_be_outputs(project, out):
    _one_stage(project, "echo x", outs=f"[{out}]")
    with pytest.raises(InvalidArgument, match="cannot be an output"):
        P.load_pipeline(project.root / "cairn.yaml")


def test_a_foreach_list_of_mappings_is_read_as_dvc_reads_it(project):
    project.write("cairn.yaml", "stages:\n  build:\n    foreach:\n"
                  "      - {os: linux, py: 3}\n      - {os: mac, py: 3}\n"
                  "    do:\n      cmd: echo ${item.os} ${item.py} > ${item.os}.txt\n"
                  "      outs: [\"${item.os}.txt\"]\n")
    p = P.load_pipeline(project.root / "cairn.yaml")
    assert p.order == ["build@0", "build@1"]
    assert p.stages["build@1"].cmd == ("echo mac 3 > mac.txt",) and p.stages["build@1"].outs == (
        "mac.txt",)


def test_a_directory_dependency_sees_files_added_renamed_and_removed(project):
    project.write("data/in/a.txt", "a\n")
    project.write("cairn.yaml", "stages:\n  a:\n    cmd: ls data/in > o.txt\n"
                  "    deps: [data/in]\n    outs: [o.txt]\n")
    assert project.run() == {"a": "ran"}
    project.write("data/in/b.txt", "b\n")
    assert project.run() == {"a": "ran"}
    (project.root / "data/in/b.txt").rename(project.root / "data/in/c.txt")
    assert project.run() == {"a": "ran"}
    assert (project.root / "o.txt").read_text() == "a.txt\nc.txt\n"
    (project.root / "data/in/c.txt").unlink()
    assert project.run() == {"a": "cached"}  # the key of the first run
    assert (project.root / "o.txt").read_text() == "a.txt\n"


def test_a_racy_stat_in_the_lock_is_hashed_again(project):
    """A file hashed within one timestamp tick of a change keeps its stat: the lock marks it
    racy and the next run reads it again rather than trusting the stat."""
    import json
    import os

    assert set(project.run().values()) == {"ran"}
    lock_path = project.root / "cairn.lock"
    old = json.loads(lock_path.read_text())["files"]["data/raw.txt"]
    project.write("data/raw.txt", "HELLO\n")  # the same size
    st = os.stat(project.root / "data/raw.txt")
    lock = json.loads(lock_path.read_text())
    # As if the edit happened in the tick the last run hashed the file in.
    lock["files"]["data/raw.txt"] = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino,
                                     old[4], True]
    lock_path.write_text(json.dumps(lock))
    assert project.run()["prepare"] == "ran"


@pytest.mark.parametrize("dep,out", [("o.txt", "o.txt"), ("d/x.txt", "d"), ("d", "d/x.txt")])
def test_a_stage_that_reads_its_own_output_is_refused(project, dep, out):
    """Its key would hold the digest of what it writes, so it would run on every run."""
    _one_stage(project, "echo x >> o.txt", outs=f"[{out}]", extra=f"    deps: [{dep}]\n")
    with pytest.raises(InvalidArgument, match="reads its own output"):
        P.load_pipeline(project.root / "cairn.yaml")


def test_an_interrupted_directory_restore_leaves_the_output_as_it_was(project, monkeypatch):
    import os

    from cairn.pipelines import cache

    _one_stage(project, "mkdir -p d && echo a > d/a.txt && echo b > d/b.txt", outs="[d]")
    assert project.run() == {"a": "ran"}
    project.write("d/a.txt", "edited\n")
    real = os.replace

    def interrupted(src, dst):
        if str(src).endswith(".restoring"):
            raise KeyboardInterrupt
        return real(src, dst)

    monkeypatch.setattr(cache.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        project.run()
    monkeypatch.setattr(cache.os, "replace", real)
    assert sorted(p.name for p in project.root.iterdir() if "d" in p.name.split(".")) == ["d"]
    assert (project.root / "d/a.txt").read_text() == "edited\n"
    assert project.run() == {"a": "restored"}
    assert (project.root / "d/a.txt").read_text() == "a\n"


def test_a_deleted_run_is_no_cache_hit(project):
    """Deleting a stage's run (a result found wrong) makes the stage run again."""
    _one_stage(project, "echo hi > o.txt")
    assert project.run() == {"a": "ran"}
    project.client.delete_run(project.last.stages[0].run_id)
    (project.root / "cairn.lock").unlink()
    assert project.run() == {"a": "ran"}
    assert project.run() == {"a": "unchanged"}


def test_a_stage_killed_by_a_signal_says_so(project):
    _one_stage(project, "kill -9 $$")
    project.write("cairn.yaml", project.root.joinpath("cairn.yaml").read_text()
                  + "  b:\n    cmd: nosuchcommand-xyz\n    outs: [b.txt]\n")
    assert project.run() == {"a": "failed", "b": "failed"}
    reasons = {r.name: r.reason for r in project.last.stages}
    assert reasons["a"].startswith("command was killed by SIGKILL")
    assert reasons["b"].startswith("command exited with 127") and "not found" in reasons["b"]


def test_a_dependency_that_is_a_fifo_is_refused_not_read(project):
    import os

    os.mkfifo(project.root / "pipe")
    _one_stage(project, "echo x > o.txt", extra="    deps: [pipe]\n")
    project.write("cairn.yaml", project.root.joinpath("cairn.yaml").read_text()
                  + "  b:\n    cmd: echo b > b.txt\n    outs: [b.txt]\n")
    assert project.run() == {"a": "failed", "b": "ran"}
    assert "pipe is not a regular file or a directory" in project.last.stages[0].reason


def test_the_parse_cache_is_for_one_pipeline_file(project):
    """cairn.yaml and dvc.yaml side by side share one lock: each is read as itself."""
    project.write("dvc.yaml", "stages:\n  from_dvc:\n    cmd: echo d > d.txt\n"
                  "    outs: [d.txt]\n")
    assert project.run(file="dvc.yaml") == {"from_dvc": "ran"}
    assert set(project.run(file="cairn.yaml")) == {"prepare", "train", "report"}
    assert project.run(file="dvc.yaml") == {"from_dvc": "unchanged"}


def test_a_damaged_lock_entry_costs_work_not_a_crash(project):
    import json

    assert set(project.run().values()) == {"ran"}
    lock_path = project.root / "cairn.lock"
    lock = json.loads(lock_path.read_text())
    lock["stages"]["prepare"] = "damaged"
    lock["stages"]["train"]["outs"] = ["out/model.txt"]
    lock["files"]["data/raw.txt"] = "damaged"
    lock_path.write_text(json.dumps(lock))
    assert project.run() == {"prepare": "cached", "train": "cached", "report": "unchanged"}
    assert project.executed == []


def test_the_lock_forgets_paths_no_longer_in_the_pipeline(project):
    import json

    assert set(project.run().values()) == {"ran"}
    project.write("cairn.yaml", "stages:\n  only:\n    cmd: cp data/raw.txt o.txt\n"
                  "    deps: [data/raw.txt]\n    outs: [o.txt]\n")
    assert project.run() == {"only": "ran"}
    lock = json.loads((project.root / "cairn.lock").read_text())
    assert set(lock["files"]) == {"data/raw.txt", "o.txt"}
