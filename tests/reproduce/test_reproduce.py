"""`cairn reproduce` end to end: real git repositories, scripts run in child processes, reruns
in worktrees, verdicts recorded as runs that lineage and `cairn kpi` read."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from cairn import Client

from .conftest import cairn, cairn_json, commit, git, needs_git, run_script, runs

pytestmark = [needs_git, pytest.mark.slow]

SEEDED = """\
import random, sys
import cairn
from helper import SCALE

cairn.set_experiment("exp")
for seed in (0, 1):
    random.seed(seed)
    with cairn.start_run(params={"seed": seed, "lr": sys.argv[1]}):
        for step in range(4):
            cairn.log_metric("loss", SCALE * random.random() / (step + 1), step=step)
"""


def _one(store: Path, experiment: str = "exp", seed: str = "1") -> dict:
    return next(r for r in runs(store, experiment)
                if r["params"].get("seed") == seed and "cairn.reproduces" not in r["tags"])


def test_a_clean_tree_run_reproduces_and_is_linked(repo, tmp_path):
    (repo / "train.py").write_text(SEEDED)
    (repo / "helper.py").write_text("SCALE = 1.0\n")
    commit(repo)
    store = tmp_path / "store"
    run_script(repo, store, "train.py", "0.1")
    original = _one(store)

    body = cairn_json(store, "reproduce", original["id"][:8])
    [report] = body["reports"]
    assert report["verdict"] == "reproduced", report
    assert report["environment"] == "here"
    assert [m["key"] for m in report["metrics"]] == ["loss"]
    loss = report["metrics"][0]
    assert loss["ok"] and loss["max_diff"] == 0 and loss["points"] == 4
    assert loss["tolerance"] == "exact"  # a seeded run: exact by default
    assert report["plan"]["command"] == ["train.py", "0.1"]

    rerun = cairn_json(store, "runs", "show", report["rerun"])
    assert rerun["tags"]["cairn.reproduces"] == original["id"]
    assert rerun["tags"]["cairn.reproduce.verdict"] == "reproduced"
    assert rerun["params"] == original["params"]
    assert rerun["status"] == "FINISHED"
    # Only the rerun of the original joins the experiment: not the script's other run.
    assert len(runs(store, "exp")) == 3
    up = cairn_json(store, "lineage", f"run:{report['rerun']}")
    assert {"source": f"run:{original['id']}", "target": f"run:{report['rerun']}",
            "relation": "reproduced", "role": None} in up["edges"]
    down = cairn_json(store, "lineage", f"run:{original['id']}", "--downstream")
    assert any(e["relation"] == "reproduced" and e["target"] == f"run:{report['rerun']}"
               for e in down["edges"])
    assert git(repo, "worktree", "list").count("\n") == 1  # the rerun's worktree is gone
    kpi = cairn_json(store, "kpi")
    assert kpi["reproducibility_rate"] == 1.0 and kpi["reproducibility"]["runs"] == 1


def test_a_dirty_tree_run_reproduces_through_its_patch(repo, tmp_path):
    (repo / "train.py").write_text(SEEDED)
    (repo / "helper.py").write_text("SCALE = 1.0\n")
    commit(repo)
    # Uncommitted: a tracked change and a new, untracked module the script imports.
    (repo / "helper.py").write_text("from extra import FACTOR\nSCALE = 1000.0 * FACTOR\n")
    (repo / "extra.py").write_text("FACTOR = 3\n")
    (repo / "notes.log").write_text("x" * 50)
    (repo / ".gitignore").write_text(".cairn/\n*.log\n")
    before = git(repo, "status", "--porcelain")
    store = tmp_path / "store"
    run_script(repo, store, "train.py", "0.1")
    original = _one(store)
    shown = cairn_json(store, "runs", "show", original["id"])
    env_git = shown["env"]["git"]
    assert env_git["dirty"] and env_git["patch"] == env_git["diff_digest"]
    assert set(env_git["untracked"]) == {"extra.py"}  # .gitignore is tracked: in the patch
    assert "notes.log" not in env_git["untracked"]  # .gitignore is honoured

    body = cairn_json(store, "reproduce", original["id"])
    [report] = body["reports"]
    assert report["verdict"] == "reproduced", report
    assert report["metrics"][0]["original"] > 100  # the dirty code ran, not the commit's
    assert report["plan"]["patch"] == env_git["patch"]
    assert report["plan"]["untracked"] == env_git["untracked"]
    # The user's working tree is as it was.
    assert git(repo, "status", "--porcelain") == before
    assert (repo / "helper.py").read_text().startswith("from extra import")
    assert git(repo, "worktree", "list").count("\n") == 1


def test_dry_run_lists_what_a_run_recorded_without_the_capture_lacks(repo, tmp_path):
    (repo / "train.py").write_text(SEEDED)
    (repo / "helper.py").write_text("SCALE = 1.0\n")
    commit(repo)
    store = tmp_path / "store"
    run_script(repo, store, "train.py", "0.1", CAIRN_CAPTURE_ENV="0")
    original = _one(store)

    out = cairn(store, "reproduce", original["id"], "--dry-run")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "missing" in out.stdout and "CAIRN_CAPTURE_ENV" in out.stdout
    body = cairn_json(store, "reproduce", original["id"], "--dry-run", ok=(1,))
    [report] = body["reports"]
    assert report["verdict"] == "planned" and not report["plan"]["complete"]
    assert any("environment" in m for m in report["plan"]["missing"])
    assert len(runs(store, "exp")) == 2  # a dry run records nothing

    failed = cairn_json(store, "reproduce", original["id"], ok=(1,))["reports"][0]
    assert failed["verdict"] == "failed" and "CAIRN_CAPTURE_ENV" in failed["why"][0]
    rerun = cairn_json(store, "runs", "show", failed["rerun"])
    assert rerun["status"] == "FAILED" and rerun["tags"]["cairn.reproduce.verdict"] == "failed"


def test_a_complete_plan_exits_zero(repo, tmp_path):
    (repo / "train.py").write_text(SEEDED)
    (repo / "helper.py").write_text("SCALE = 1.0\n")
    commit(repo)
    store = tmp_path / "store"
    run_script(repo, store, "train.py", "0.1")
    out = cairn(store, "reproduce", _one(store)["id"], "--dry-run")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "plan complete" in out.stdout and "train.py 0.1" in out.stdout


def test_a_commit_no_longer_in_the_repository_fails_with_why(repo, tmp_path):
    (repo / "train.py").write_text(SEEDED)
    (repo / "helper.py").write_text("SCALE = 1.0\n")
    commit(repo)
    store = tmp_path / "store"
    run_script(repo, store, "train.py", "0.1")
    original = _one(store)
    gone = cairn_json(store, "runs", "show", original["id"])["env"]["git"]["commit"]
    # History rewritten: the commit is amended away and garbage-collected.
    git(repo, "commit", "-q", "--amend", "-m", "rewritten")
    git(repo, "reflog", "expire", "--expire=now", "--all")
    git(repo, "gc", "-q", "--prune=now")

    dry = cairn_json(store, "reproduce", original["id"], "--dry-run", ok=(1,))["reports"][0]
    assert f"commit {gone} is not in the repository at {repo}" in dry["plan"]["missing"]
    [report] = cairn_json(store, "reproduce", original["id"], ok=(1,))["reports"]
    assert report["verdict"] == "failed"
    assert report["why"] == [f"missing commit {gone} is not in the repository at {repo}"]


def test_a_package_that_is_not_installable_fails_naming_it(repo, tmp_path):
    pytest.importorskip("uv")
    (repo / "train.py").write_text(SEEDED)
    (repo / "helper.py").write_text("SCALE = 1.0\n")
    commit(repo)
    # The original ran with one more package than this interpreter has.
    site = tmp_path / "extra-site"
    dist = site / "cairn_fake_pkg-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: cairn-fake-pkg\nVersion: 1.0\n")
    store = tmp_path / "store"
    run_script(repo, store, "train.py", "0.1", PYTHONPATH=str(site))
    original = _one(store)
    assert cairn_json(store, "runs", "show", original["id"])["env"]["packages"][
        "cairn-fake-pkg"] == "1.0"

    # No network: uv is offline with an empty cache.
    [report] = cairn_json(store, "reproduce", original["id"], ok=(1,),
                          UV_OFFLINE="1", UV_CACHE_DIR=str(tmp_path / "uv-cache"),
                          UV_NO_CONFIG="1")["reports"]
    assert report["verdict"] == "failed"
    assert "package not installable: cairn-fake-pkg==1.0" in report["why"][0], report["why"]
    assert git(repo, "worktree", "list").count("\n") == 1

    # --env here runs it with this interpreter anyway, and says how it differs.
    [here] = cairn_json(store, "reproduce", original["id"], "--env", "here")["reports"]
    assert here["verdict"] == "reproduced"
    assert any("cairn-fake-pkg: 1.0 recorded, - here" in n for n in here["notes"])


UNSEEDED = """\
import random
import cairn

cairn.set_experiment("noisy")
with cairn.start_run(params={"n": 3}):
    cairn.log_metric("score", random.random())
    cairn.log_metric("const", 1.5)
"""


def test_an_unseeded_run_differs_and_a_tolerance_reproduces_it(repo, tmp_path):
    (repo / "noisy.py").write_text(UNSEEDED)
    commit(repo)
    store = tmp_path / "store"
    run_script(repo, store, "noisy.py")
    [original] = runs(store, "noisy")

    out = cairn(store, "reproduce", original["id"])
    assert out.returncode == 3, out.stdout + out.stderr
    assert "differs" in out.stdout and "score differs by" in out.stdout
    [report] = cairn_json(store, "reproduce", original["id"], ok=(3,))["reports"]
    assert report["verdict"] == "differs"
    rows = {m["key"]: m for m in report["metrics"]}
    assert not rows["score"]["ok"] and rows["score"]["max_diff"] > 0
    assert rows["score"]["tolerance"] == "1e-06 relative"  # unseeded: a small default
    assert rows["const"]["ok"]
    assert report["summary"].startswith("score differs by")
    assert cairn_json(store, "kpi")["reproducibility_rate"] == 0.0

    [tolerant] = cairn_json(store, "reproduce", original["id"], "--tolerance", "score=1",
                            "--tolerance", "*=0")["reports"]
    assert tolerant["verdict"] == "reproduced"
    assert {m["key"]: m["tolerance"] for m in tolerant["metrics"]} == {"score": "1", "const": "exact"}
    # The latest attempt per original counts.
    kpi = cairn_json(store, "kpi", "-e", "noisy")
    assert kpi["reproducibility_rate"] == 1.0 and kpi["reproducibility"]["runs"] == 1
    # Reruns are never sampled.
    sampled = cairn_json(store, "reproduce", "--sample", "5", "-e", "noisy", "--tolerance",
                         "score=ignore")
    assert [r["original"] for r in sampled["reports"]] == [original["id"]]
    assert sampled["rate"] == 1.0


def test_bad_input_is_one_clear_line(repo, tmp_path):
    (repo / "noisy.py").write_text(UNSEEDED)
    commit(repo)
    store = tmp_path / "store"
    run_script(repo, store, "noisy.py")
    [original] = runs(store, "noisy")
    for args, text in [
        ((original["id"], "--tolerance", "score"), "a tolerance is KEY=TOL"),
        ((original["id"], "--tolerance", "score=abc"), "is not a number"),
        ((original["id"], "--tolerance", "score=-1"), "non-negative"),
        (("--sample", "3"), "--sample needs the experiment"),
        (("--sample", "0", "-e", "noisy"), "positive integer"),
        ((), "give a run id"),
        (("ffffffff",), "no run id starts with"),
    ]:
        out = cairn(store, "reproduce", *args)
        assert out.returncode == 1, (args, out.stdout, out.stderr)
        assert text in out.stderr and "Traceback" not in out.stderr, (args, out.stderr)


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_every_run_of_make_demo_reproduces(tmp_path):
    """`make demo`'s three examples, in a git repository of their own, against a fresh store:
    every run they made reproduces exactly, and nothing but the reruns is added."""
    pytest.importorskip("sklearn")
    repo = tmp_path / "demo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    subprocess.run(["cp", "-r", str(EXAMPLES), str(repo / "examples")], check=True)
    commit(repo, "the examples")
    store = tmp_path / ".cairn-demo"
    run_script(repo, store, "examples/quickstart.py", CAIRN_QUICKSTART_HINT="0")
    run_script(repo, store, "examples/quickstart_registry.py")
    run_script(repo, store, "examples/quickstart_data.py")
    models = cairn_json(store, "models", "ls")
    experiments = ["quickstart", "quickstart-registry", "Default"]
    made = sum(len(runs(store, e)) for e in experiments)
    assert made == 9 + 2 + 2

    args = ["reproduce", "--sample", "100"] + [a for e in experiments for a in ("-e", e)]
    body = cairn_json(store, *args)
    verdicts = {r["name"]: r["verdict"] for r in body["reports"]}
    assert len(body["reports"]) == made
    assert set(verdicts.values()) == {"reproduced"}, [
        (r["name"], r["summary"]) for r in body["reports"] if r["verdict"] != "reproduced"]
    assert body["rate"] == 1.0
    train = next(r for r in body["reports"] if r["name"] == "train")
    assert {i["role"] for i in train["plan"]["inputs"]} == {"train", "eval"}
    assert all(m["tolerance"] == "exact" for r in body["reports"]
               if r["experiment"] == "quickstart" for m in r["metrics"])
    # Only the reruns were added: no other runs, model versions or data sets.
    assert sum(len(runs(store, e)) for e in experiments) == 2 * made
    assert cairn_json(store, "models", "ls") == models
    kpi = cairn_json(store, "kpi")
    assert kpi["reproducibility_rate"] == 1.0 and kpi["reproducibility"]["runs"] == made
    assert json.dumps(kpi["models"]["digits-sgd"]["reproducibility_rate"]) == "1.0"


def test_through_a_team_server(repo, tmp_path, cairn_server):
    """The patch and untracked files reach the server from the recording process's spool,
    and a run recorded there is reproduced from another machine's point of view (an empty
    spool)."""
    (repo / "train.py").write_text(SEEDED)
    (repo / "helper.py").write_text("SCALE = 1.0\n")
    commit(repo)
    (repo / "helper.py").write_text("SCALE = 7.0\n")
    (repo / "extra.py").write_text("X = 1\n")
    spool = tmp_path / "recording-spool"
    run_script(repo, cairn_server, "train.py", "0.1", CAIRN_SPOOL_DIR=str(spool))
    client = Client(cairn_server)
    original = next(r for r in client.search_runs() if r.params["seed"] == "1")
    env_git = client.get_run(original.id).env["git"]
    oids = [env_git["patch"], *env_git["untracked"].values()]
    deadline = time.monotonic() + 30  # sent in the background by the recording process
    while client.store.missing_objects(oids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not client.store.missing_objects(oids)

    other = {"CAIRN_SPOOL_DIR": str(tmp_path / "other-spool")}
    [report] = cairn_json(cairn_server, "reproduce", original.id, **other)["reports"]
    assert report["verdict"] == "reproduced", report
    assert report["metrics"][0]["original"] > 0.3  # SCALE 7 (the patch), not 1: 0.06
    rerun = client.get_run(report["rerun"])
    assert rerun.tags["cairn.reproduces"] == original.id


def test_without_git_the_stored_snapshot_is_the_code(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text(SEEDED)
    (code / "helper.py").write_text("SCALE = 5.0\n")
    store = tmp_path / "store"
    run_script(code, store, "train.py", "0.1", GIT_CEILING_DIRECTORIES=str(tmp_path.parent))
    original = _one(store)
    (code / "helper.py").write_text("SCALE = 0.0\n")  # changed since: the snapshot is used
    [report] = cairn_json(store, "reproduce", original["id"],
                          GIT_CEILING_DIRECTORIES=str(tmp_path.parent))["reports"]
    assert report["verdict"] == "reproduced", report
    assert report["plan"]["commit"] is None
    assert sorted(report["plan"]["snapshot"]) == ["helper.py", "train.py"]
    assert report["metrics"][0]["original"] > 0.2


NESTED = """\
import cairn

cairn.set_experiment("sweep")
for outer in range(2):
    with cairn.start_run(params={"sweep": "grid"}):
        for fold in range(3):  # same params in every child: told apart by their order
            with cairn.start_run(nested=True, params={"k": 3}):
                cairn.log_metric("score", outer * 10 + fold)
"""


def test_nested_runs_with_equal_params_are_matched_by_their_order(repo, tmp_path):
    (repo / "sweep.py").write_text(NESTED)
    commit(repo)
    store = tmp_path / "store"
    run_script(repo, store, "sweep.py")
    made = runs(store, "sweep")
    children = sorted((r for r in made if r["parent_id"]), key=lambda r: r["metrics"]["score"])
    assert len(children) == 6
    picked = [children[4], children[1]]  # outer 1 fold 1, outer 0 fold 1
    body = cairn_json(store, "reproduce", *[c["id"] for c in picked])
    assert [r["verdict"] for r in body["reports"]] == ["reproduced", "reproduced"]
    assert [r["metrics"][0]["rerun"] for r in body["reports"]] == [11.0, 1.0]


SLOW = """\
import time
import cairn

with cairn.start_run(params={"seed": 0}):
    cairn.log_metric("x", 1.0)
    if __import__("os").environ.get("STARTED"):  # a test waits for the rerun to be under way
        open(__import__("os").environ["STARTED"], "w").close()
    time.sleep(float(__import__("os").environ.get("NAP", "0")))
"""


def test_a_rerun_past_the_timeout_fails(repo, tmp_path):
    (repo / "slow.py").write_text(SLOW)
    commit(repo)
    store = tmp_path / "store"
    run_script(repo, store, "slow.py")
    [original] = runs(store, "Default")
    [report] = cairn_json(store, "reproduce", original["id"], "--timeout", "2", ok=(1,),
                          NAP="60")["reports"]
    assert report["verdict"] == "failed"
    assert "was stopped at the timeout" in report["why"][0]


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_an_interrupted_reproduce_leaves_no_worktree_temp_dir_or_process(repo, tmp_path, sig):
    import os
    import signal
    import sys

    from procs import _default_signals

    from .conftest import CAIRN, clean_env

    (repo / "slow.py").write_text(SLOW)
    commit(repo)
    store = tmp_path / "store"
    run_script(repo, store, "slow.py")
    [original] = runs(store, "Default")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    started = tmp_path / "started"
    # Ctrl-C must reach it even when the suite runs in the background (which ignores SIGINT).
    proc = subprocess.Popen([str(CAIRN), "--store", str(store), "reproduce", original["id"]],
                            env=clean_env(NAP="120", TMPDIR=str(tmp), STARTED=str(started)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=_default_signals)
    deadline = time.monotonic() + 120
    while not started.exists() and time.monotonic() < deadline:  # the rerun is under way
        assert proc.poll() is None, proc.communicate(timeout=5)
        time.sleep(0.1)
    rerun = None
    while rerun is None and time.monotonic() < deadline:  # and this is its process
        time.sleep(0.05)
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmd[:2] == [sys.executable.encode(), b"slow.py"] and int(pid) != proc.pid:
                rerun = int(pid)
    assert rerun is not None, proc.communicate(timeout=5)
    proc.send_signal(getattr(signal, sig))
    proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert git(repo, "worktree", "list").count("\n") == 1
    assert not list(tmp.iterdir()), list(tmp.iterdir())
    time.sleep(0.2)
    assert not Path(f"/proc/{rerun}").exists() or \
        Path(f"/proc/{rerun}/stat").read_text().split(") ")[1][0] == "Z"


def test_a_quick_script_leaves_its_code_on_the_team_server(repo, tmp_path, cairn_server):
    """The upload of the patch and untracked files outlives a script that ends at once."""
    (repo / "train.py").write_text("import cairn\nwith cairn.start_run():\n    pass\n")
    (repo / "helper.py").write_text("X = 1\n")
    commit(repo)
    (repo / "helper.py").write_text("X = 2\n")
    for n in range(20):
        (repo / f"extra{n}.py").write_text(f"Y = {n}\n" * 2000)
    run_script(repo, cairn_server, "train.py", CAIRN_SPOOL_DIR=str(tmp_path / "spool"))
    client = Client(cairn_server)
    env_git = client.get_run(client.search_runs()[0].id).env["git"]
    oids = [env_git["patch"], *env_git["untracked"].values()]
    assert len(oids) == 21
    assert not client.store.missing_objects(oids)  # at once: no waiting here
