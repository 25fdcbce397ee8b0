"""Cache hits and misses after each kind of change, with real processes and a real git
repository: what ran is read from what the commands themselves logged."""

from __future__ import annotations

import os
import time

from cairn.entities import RunStatus

from .conftest import Project, git

ALL = ["prepare", "report", "train"]


def test_first_run_runs_every_stage_as_a_run_with_versions(project):
    assert project.run() == {"prepare": "ran", "train": "ran", "report": "ran"}
    assert project.executed == ALL
    assert (project.root / "out/model.txt").read_text() == "HELLO\nlr=0.1\n"
    train = next(r for r in project.last.stages if r.name == "train")
    run = project.client.get_run(train.run_id)
    assert run.status == RunStatus.FINISHED
    assert run.params["train.lr"] == "0.1"
    assert run.tags["cairn.pipeline.key"] == train.key
    # Inputs and outputs are data set versions: lineage goes back through prepare.
    graph = project.client.lineage("out/model.txt@1")
    ids = set(graph.nodes)
    assert f"run:{train.run_id}" in ids and "dataset:out/prep.txt@1" in ids
    assert "dataset:data/raw.txt@1" in ids


def test_nothing_changed_runs_nothing_and_hashes_nothing(project):
    project.run()
    time.sleep(0.15)  # outputs are past the racy window: their stats are trusted from now on
    assert set(project.run().values()) == {"unchanged"}
    assert project.executed == []
    project.run()
    assert project.last.hashed == 0


def test_command_edited_reruns_that_stage(project):
    project.run()
    text = (project.root / "cairn.yaml").read_text()
    project.write("cairn.yaml", text.replace("report data/raw.txt out/report.txt",
                                             "report data/raw.txt out/report.txt v2"))
    statuses = project.run()
    assert project.executed == ["report"]
    assert statuses["report"] == "ran" and statuses["train"] == "unchanged"
    assert "command changed" in next(r.reason for r in project.last.stages if r.name == "report")


def test_dependency_content_changed_reruns_its_downstream_only(project):
    project.run()
    project.write("data/raw.txt", "bye\n")
    project.run()
    assert project.executed == ALL  # all three read raw.txt, directly or not
    project.write("step.py", (project.root / "step.py").read_text() + "# touch\n")
    project.run()
    assert project.executed == ["prepare", "train"]  # report does not read step.py...
    # ...and prepare's output did not change, but train reads step.py too.


def test_dependency_touched_without_change_is_a_hit(project):
    project.run()
    raw = project.root / "data/raw.txt"
    raw.write_text(raw.read_text())  # new mtime and ctime, same bytes
    os.utime(raw, None)
    assert set(project.run().values()) == {"unchanged"}
    assert project.executed == []


def test_param_changed_reruns_and_another_stages_param_is_a_hit(project):
    project.run()
    project.write("params.yaml", "train:\n  lr: 0.2\nreport:\n  title: weekly\n")
    statuses = project.run()
    assert project.executed == ["train"]
    assert statuses == {"prepare": "unchanged", "train": "ran", "report": "unchanged"}
    reason = next(r.reason for r in project.last.stages if r.name == "train")
    assert reason == "param params.yaml:train.lr changed (0.1 -> 0.2)"
    # Back to 0.1: a key seen before, restored from the store, not run.
    project.write("params.yaml", "train:\n  lr: 0.1\nreport:\n  title: weekly\n")
    assert project.run()["train"] == "cached"
    assert project.executed == []
    assert (project.root / "out/model.txt").read_text() == "HELLO\nlr=0.1\n"


def test_deleted_output_is_restored_without_running(project):
    project.run()
    (project.root / "out/prep.txt").unlink()
    (project.root / "out/model.txt").write_text("edited by hand\n")
    statuses = project.run()
    assert project.executed == []
    assert statuses["prepare"] == "restored" and statuses["train"] == "restored"
    assert (project.root / "out/prep.txt").read_text() == "HELLO\n"
    assert (project.root / "out/model.txt").read_text() == "HELLO\nlr=0.1\n"


def test_switching_git_branch_and_back_is_a_hit(project):
    project.run()
    project.git("checkout", "-q", "-b", "experiment")
    project.write("data/raw.txt", "other data\n")
    project.git("commit", "-q", "-am", "other data")
    project.run()
    assert project.executed == ALL
    assert (project.root / "out/model.txt").read_text() == "OTHER DATA\nlr=0.1\n"
    project.git("checkout", "-q", "main")
    statuses = project.run()
    assert project.executed == []
    assert set(statuses.values()) == {"cached"}
    assert (project.root / "out/model.txt").read_text() == "HELLO\nlr=0.1\n"
    project.git("checkout", "-q", "experiment")
    assert set(project.run().values()) == {"cached"}
    assert (project.root / "out/model.txt").read_text() == "OTHER DATA\nlr=0.1\n"


def test_foreach_item_added_runs_only_it(project):
    import sys

    body = """stages:
  split:
    foreach: {items}
    do:
      cmd: {py} step.py split_${{item}} data/raw.txt out/part_${{item}}.txt ${{item}}
      deps: [data/raw.txt]
      outs:
        - out/part_${{item}}.txt
"""
    project.write("cairn.yaml", body.format(items="[a, b]", py=sys.executable))
    assert project.run() == {"split@a": "ran", "split@b": "ran"}
    project.write("cairn.yaml", body.format(items="[a, b, c]", py=sys.executable))
    statuses = project.run()
    assert project.executed == ["split_c"]
    assert statuses == {"split@a": "unchanged", "split@b": "unchanged", "split@c": "ran"}
    assert (project.root / "out/part_c.txt").read_text() == "HELLO\nc\n"


def test_selecting_a_stage_runs_it_and_what_it_reads(project):
    assert set(project.run("train")) == {"prepare", "train"}
    assert project.executed == ["prepare", "train"]


def test_a_store_shared_by_a_clone_gives_hits(project, tmp_path):
    project.run()
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(project.root), str(clone))
    other = Project(clone, tmp_path / "store")
    assert set(other.run().values()) == {"cached"}
    assert other.executed == []
    assert (clone / "out/model.txt").read_text() == "HELLO\nlr=0.1\n"


def test_params_of_any_yaml_type_and_a_second_parse_agree(project):
    project.write("params.yaml", "train:\n  lr: 0.1\n  when: 2026-01-02\n  layers: [1, 2]\n"
                  "report:\n  title: weekly\n")
    text = (project.root / "cairn.yaml").read_text()
    project.write("cairn.yaml", text.replace("params: [train.lr]",
                                             "params: [train.lr, train.when, train.layers]"))
    assert project.run()["train"] == "ran"
    time.sleep(0.15)  # the parsed pipeline is now taken from the lock, not from YAML
    assert project.run()["train"] == "unchanged"
    (project.root / "cairn.lock").unlink()  # parsed again: the same key, found in the store
    assert project.run()["train"] == "cached"
    assert project.executed == []
