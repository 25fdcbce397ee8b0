"""A failing stage, Ctrl-C in the middle of a pipeline, and stages running at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cairn.entities import RunStatus
from procs import _default_signals

PY = sys.executable


def test_a_failing_stage_fails_its_run_skips_downstream_and_keeps_the_rest(project):
    project.write("cairn.yaml", textwrap.dedent(f"""\
        stages:
          prepare:
            cmd: {PY} step.py prepare data/raw.txt out/prep.txt
            deps: [data/raw.txt]
            outs: [out/prep.txt]
          train:
            cmd: {PY} -c "import sys; print('boom'); sys.exit(3)"
            deps: [out/prep.txt]
            outs: [out/model.txt]
          evaluate:
            cmd: {PY} step.py evaluate out/model.txt out/eval.txt
            deps: [out/model.txt]
            outs: [out/eval.txt]
          report:
            cmd: {PY} step.py report data/raw.txt out/report.txt
            deps: [data/raw.txt]
            outs: [out/report.txt]
        """))
    statuses = project.run()
    assert statuses == {"prepare": "ran", "train": "failed", "evaluate": "skipped",
                        "report": "ran"}
    assert not project.last.ok
    train = next(r for r in project.last.stages if r.name == "train")
    assert "exited with 3" in train.reason and "boom" in train.reason
    run = project.client.get_run(train.run_id)
    assert run.status == RunStatus.FAILED
    assert "boom" in run.tags["cairn.pipeline.error"]
    # Fixed: prepare's output stayed cached, only the failed stage and its downstream run.
    text = (project.root / "cairn.yaml").read_text()
    project.write("cairn.yaml", text.replace(
        """-c "import sys; print('boom'); sys.exit(3)\"""",
        "step.py train out/prep.txt out/model.txt"))
    assert project.run() == {"prepare": "unchanged", "train": "ran", "evaluate": "ran",
                             "report": "unchanged"}


def test_a_stage_that_does_not_write_its_output_fails(project):
    project.write("cairn.yaml", f"stages:\n  a:\n    cmd: {PY} -c pass\n    outs: [nothing.txt]\n")
    assert project.run() == {"a": "failed"}
    assert "did not write its output nothing.txt" in project.last.stages[0].reason


def test_a_missing_dependency_fails_the_stage_before_running(project):
    project.write("cairn.yaml", f"stages:\n  a:\n    cmd: {PY} -c pass\n    deps: [nope.txt]\n")
    assert project.run() == {"a": "failed"}
    assert project.last.stages[0].reason == "dependency nope.txt does not exist"


def _slow_pipeline(project, seconds: float) -> None:
    project.write("slow.py", textwrap.dedent("""\
        import os, sys, time, pathlib
        out = pathlib.Path(sys.argv[1])
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "w") as f:
            f.write("half")          # a half-written output...
            f.flush()
            pathlib.Path(sys.argv[1] + ".started").write_text(str(os.getpid()))
            time.sleep(float(sys.argv[2]))
            f.write(" and the rest\\n")
        """))
    project.write("cairn.yaml", textwrap.dedent(f"""\
        stages:
          quick:
            cmd: {PY} step.py quick data/raw.txt out/quick.txt
            deps: [data/raw.txt]
            outs: [out/quick.txt]
          slow:
            cmd: {PY} slow.py out/slow.txt {seconds}
            deps: [out/quick.txt, slow.py]
            outs: [out/slow.txt]
        """))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_kills_the_stage_marks_its_run_killed_and_caches_nothing(project, tmp_path, sig):
    _slow_pipeline(project, 60)
    store = tmp_path / "store"
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "CAIRN_CAPTURE_ENV": "0", "TMPDIR": str(tmp)}
    # Ctrl-C must reach it even when the suite runs in the background (which ignores SIGINT).
    proc = subprocess.Popen([str(Path(PY).parent / "cairn"), "--store", str(store), "pipeline", "run",
                             "--json"], cwd=project.root, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_default_signals)
    started = project.root / "out/slow.txt.started"
    deadline = time.monotonic() + 30
    while not started.exists():
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Interrupted" in err
    child = int(started.read_text())
    assert not _alive(child)  # the stage's process was stopped, not left running
    assert list(tmp.glob("cairn-*.log")) == []  # nor its output file left behind
    lock = json.loads((project.root / "cairn.lock").read_text())
    assert "quick" in lock["stages"] and "slow" not in lock["stages"]  # finished work kept
    runs = {r.name: r for r in project.client.search_runs(None, lifecycle=None)}
    assert runs["slow"].status == RunStatus.KILLED
    assert runs["quick"].status == RunStatus.FINISHED
    assert "cairn.pipeline.record" not in runs["slow"].tags
    # The half-written output was not cached: the next run runs the stage (quickly now).
    _slow_pipeline(project, 0)
    project.write("cairn.yaml", (project.root / "cairn.yaml").read_text())
    assert project.run()["slow"] == "ran"
    assert (project.root / "out/slow.txt").read_text() == "half and the rest\n"


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a parent that does not reap it is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def test_independent_stages_run_at_once_with_jobs(project):
    project.write("stamp.py", textwrap.dedent("""\
        import sys, time, pathlib
        t0 = time.time(); time.sleep(0.6)
        pathlib.Path(sys.argv[1]).write_text(f"{t0} {time.time()}")
        """))
    stages = "".join(f"  s{i}:\n    cmd: {PY} stamp.py s{i}.txt\n    outs: [s{i}.txt]\n"
                     for i in range(3))
    project.write("cairn.yaml", "stages:\n" + stages)
    project.run(jobs=3)
    spans = [tuple(map(float, (project.root / f"s{i}.txt").read_text().split()))
             for i in range(3)]
    assert max(a for a, _ in spans) < min(b for _, b in spans)  # all three overlapped


def test_jobs_must_be_a_positive_integer(project):
    from cairn.errors import InvalidArgument

    for bad in (0, -1, "2", True, 1.5):
        with pytest.raises(InvalidArgument, match="jobs"):
            project.run(jobs=bad)
    assert not Path(project.root / "cairn.lock").exists()
