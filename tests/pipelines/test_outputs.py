"""Directory outputs, working directories, metrics files, --force and --dry-run."""

from __future__ import annotations

import sys
import textwrap

PY = sys.executable

SPLIT = textwrap.dedent("""\
    import json, pathlib, sys
    with open("exec.log", "a") as f:
        f.write("split\\n")
    n = json.load(open("n.json"))["n"] if pathlib.Path("n.json").exists() else 3
    out = pathlib.Path("parts")
    out.mkdir(exist_ok=True)
    for i in range(int(sys.argv[1])):
        (out / f"p{i}.txt").write_text(f"part {i}\\n")
        (out / "sub").mkdir(exist_ok=True)
        (out / "sub" / f"q{i}.txt").write_text(f"sub {i}\\n")
    json.dump({"parts": int(sys.argv[1]), "eval": {"acc": 0.5, "name": "x"}},
              open("metrics.json", "w"))
    """)


def pipeline(project, parts: int) -> None:
    project.write("work/split.py", SPLIT)
    project.write("cairn.yaml", textwrap.dedent(f"""\
        stages:
          split:
            wdir: work
            cmd: {PY} split.py {parts}
            deps: [split.py]
            outs: [parts]
            metrics: [metrics.json]
          count:
            cmd: {PY} -c "import os; open('count.txt','w').write(str(len(os.listdir('work/parts'))))"
            deps: [work/parts]
            outs: [count.txt]
        """))


def test_directory_outputs_restore_whole_and_feed_downstream(project):
    pipeline(project, 2)
    log = project.root / "work/exec.log"
    assert project.run() == {"split": "ran", "count": "ran"}
    assert (project.root / "count.txt").read_text() == "3"  # p0, p1, sub
    split = next(r for r in project.last.stages if r.name == "split")
    run = project.client.get_run(split.run_id)
    assert run.metrics["parts"] == 2 and run.metrics["eval.acc"] == 0.5
    assert "eval.name" not in run.metrics

    (project.root / "work/parts/sub/q1.txt").unlink()
    (project.root / "work/parts/extra.txt").write_text("not ours\n")
    log.unlink()
    assert project.run() == {"split": "restored", "count": "unchanged"}
    assert not log.exists()
    assert sorted(p.name for p in (project.root / "work/parts").rglob("*")) == [
        "p0.txt", "p1.txt", "q0.txt", "q1.txt", "sub"]

    pipeline(project, 3)
    assert project.run() == {"split": "ran", "count": "ran"}
    assert (project.root / "count.txt").read_text() == "4"
    pipeline(project, 2)  # back: the directory comes back from the run cache
    log.unlink()
    assert project.run() == {"split": "cached", "count": "cached"}
    assert not log.exists()
    assert not (project.root / "work/parts/p2.txt").exists()
    assert (project.root / "count.txt").read_text() == "3"


def test_dry_run_runs_nothing_and_force_runs_anyway(project):
    statuses = project.run(dry_run=True)
    assert statuses == {"prepare": "stale", "train": "stale", "report": "stale"}
    assert project.executed == [] and not (project.root / "out").exists()
    project.run()
    project.write("params.yaml", "train:\n  lr: 0.1\nreport:\n  title: monthly\n")
    project.run()
    project.write("params.yaml", "train:\n  lr: 0.1\nreport:\n  title: weekly\n")
    dry = project.run(dry_run=True)
    assert dry["report"] == "stale"
    report = next(r for r in project.last.stages if r.name == "report")
    assert report.cached and report.reason.startswith("param params.yaml:report.title changed")
    assert project.executed == []
    assert project.run(force=True) == {"prepare": "ran", "train": "ran", "report": "ran"}
    assert project.executed == ["prepare", "report", "train"]


def test_an_empty_directory_dependency_is_hashed_but_not_versioned(project):
    (project.root / "empty").mkdir()
    project.write("cairn.yaml", f"stages:\n  a:\n    cmd: {PY} -c \"open('a.txt','w').write('a')\"\n"
                  "    deps: [empty]\n    outs: [a.txt]\n")
    assert project.run() == {"a": "ran"}
    (project.root / "empty/new.txt").write_text("now it has a file\n")
    assert project.run() == {"a": "ran"}
