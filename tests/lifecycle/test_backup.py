"""`cairn backup` / `cairn restore` of a local store: a snapshot taken while four writer
processes log, restored and checked; incremental backups; refusals and damaged backups."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from procs import reap_processes, spawn, wait_for_line  # noqa: F401  (the fixture reaps them)

import cairn
from cairn.cli.main import cli
from cairn.doctor import diagnose
from cairn.errors import Conflict, CorruptObject, InvalidArgument
from cairn.lifecycle.backup import backup
from cairn.lifecycle.restore import restore
from cairn.store.local import LocalStore

# The module's store is written by four processes for a few seconds before its tests run.
pytestmark = pytest.mark.slow

STEPS, ARTIFACT_EVERY = 30, 5

# A writer: runs one after another, each with STEPS metric points, a param per step and an
# artifact every ARTIFACT_EVERY steps, until the stop file appears.
WRITER = """
import os, sys, time, cairn
stop, tag = sys.argv[1], sys.argv[2]
cairn.set_experiment("load")
n = 0
print("STARTED", flush=True)
while not os.path.exists(stop):
    with cairn.start_run() as run:
        for i in range(%(steps)d):
            cairn.log_metric("loss", 1.0 / (i + 1), step=i)
            cairn.log_param(f"p{i}", str(i))
            if i == 0:  # in the index as RUNNING now, not only once its buffer flushes
                cairn.flush()
            if i %% %(every)d == 0:
                path = f"{stop}.{tag}.{n}.{i}.txt"
                with open(path, "w") as f:
                    f.write(f"{tag} run {n} step {i} " * 50)
                cairn.log_artifact(path)
                os.unlink(path)
            time.sleep(0.02)
    n += 1
print("RUNS", n, flush=True)
""" % {"steps": STEPS, "every": ARTIFACT_EVERY}


def _register(store: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    c = cairn.Client(str(store))
    X = np.random.RandomState(0).randn(40, 3)
    y = (X[:, 0] > 0).astype(int)
    c.register_model("fraud", LogisticRegression().fit(X, y))
    c.register_model("fraud", LogisticRegression(C=0.3).fit(X, y))
    c.set_alias("fraud", "champion", "1.0.0")


@pytest.fixture(scope="module")
def under_load(tmp_path_factory):
    """A store with a registered model, backed up twice while four writers log."""
    base = tmp_path_factory.mktemp("backup")
    store, dest = base / "store", base / "bk"
    _register(store)
    stop = base / "stop"
    writers = [spawn(store, WRITER, stop, f"w{k}") for k in range(4)]
    for w in writers:
        wait_for_line(w, "STARTED")
    time.sleep(2.0)
    first = backup(LocalStore(store), dest)
    snapshot = _snapshot(dest)
    early = base / "early"
    restore(dest, str(early))  # before the second backup brings DEST up to date
    time.sleep(1.0)
    stop.touch()
    for w in writers:
        out, err = w.communicate(timeout=120)
        assert w.returncode == 0, err
    second = backup(LocalStore(store), dest)  # writers done: incremental, up to date
    yield {"store": store, "dest": dest, "first": first, "second": second,
           "snapshot": snapshot, "early": early}
    for w in writers:
        if w.poll() is None:
            w.kill()


def _snapshot(dest: Path) -> dict:
    """What the first backup's index holds: runs, their status and point counts."""
    conn = sqlite3.connect(dest / "index.db")
    try:
        runs = dict(conn.execute("SELECT id, status FROM runs"))
        points = dict(conn.execute("SELECT run_id, count FROM latest_metrics WHERE key='loss'"))
        arts = dict(conn.execute("SELECT run_id, count(*) FROM artifacts GROUP BY run_id"))
    finally:
        conn.close()
    return {"runs": runs, "points": points, "artifacts": arts,
            "manifest": json.loads((dest / "manifest.json").read_text())}


def _check_store(path: Path, snapshot: dict, *, complete: bool) -> None:
    report = diagnose(LocalStore(path))
    assert report.ok, report.to_dict()
    c = cairn.Client(str(path))
    runs = {r.id: r for r in c.search_runs(None, max_results=10_000, lifecycle=None)}
    assert set(snapshot["runs"]) <= set(runs)
    for rid, status in snapshot["runs"].items():
        hist = c.get_metric_history(rid, "loss")
        steps = [p.step for p in hist]
        arts = c.list_artifacts(rid)
        # Every run is whole: its points from step 0 on without a gap, at least what the
        # snapshot had; a run finished at the snapshot has all of them.
        assert steps == list(range(len(steps)))
        assert len(steps) >= snapshot["points"].get(rid, 0)
        assert len(arts) >= snapshot["artifacts"].get(rid, 0)
        if status == "FINISHED" or complete:
            assert len(steps) == STEPS and len(arts) == STEPS // ARTIFACT_EVERY
        assert c.verify_artifacts(rid).ok  # its artifacts' objects there and re-hashed
    assert c.verify_audit_log().ok
    assert c.get_model_version("fraud", "1.0.0") is not None


def test_backup_under_load_restores_whole(under_load, tmp_path):
    snap = under_load["snapshot"]
    first = under_load["first"]
    assert first.ok and first.source_kind == "local"
    assert len(snap["runs"]) >= 4, "the writers had started runs before the snapshot"
    assert "RUNNING" in snap["runs"].values(), "the snapshot was taken while runs were logging"
    m = snap["manifest"]
    assert m["format"] == "cairn-backup" and m["schema_revision"] == "0010_lifecycle"
    assert m["counts"]["runs"] == len(snap["runs"]) and m["audit_head"]["seq"] >= 3
    # Restore the second (final) backup: everything the writers logged.
    target = tmp_path / "restored"
    report = restore(under_load["dest"], str(target))
    assert report.target_kind == "local" and not report.replaced
    _check_store(target, snap, complete=True)
    # Same runs as the source store, and the audit chain's head as the backup recorded.
    src = cairn.Client(str(under_load["store"]))
    dst = cairn.Client(str(target))
    assert {r.id for r in src.search_runs(None, max_results=10_000)} == \
        {r.id for r in dst.search_runs(None, max_results=10_000)}
    head = under_load["second"]
    assert dst.audit_log(limit=1)[0].hash == \
        json.loads((under_load["dest"] / "manifest.json").read_text())["audit_head"]["hash"]
    assert head.ok


def test_snapshot_taken_mid_write_restores_whole(under_load):
    """The backup taken while the writers ran (journals copied mid-record perhaps) gives a
    store that doctor passes and where each run has at least what the index snapshot had."""
    _check_store(under_load["early"], under_load["snapshot"], complete=False)


def test_second_backup_is_incremental(under_load):
    first, second = under_load["first"], under_load["second"]
    assert first.objects_copied > 0
    assert second.objects_reused >= first.objects, "objects already there are not copied again"
    assert second.objects_copied == second.objects - second.objects_reused
    assert second.objects_copied < second.objects


def test_restore_refuses_a_store_that_is_not_empty(under_load, tmp_path):
    dest = under_load["dest"]
    runner = CliRunner()
    target = tmp_path / "busy"
    cairn.Client(str(target)).create_experiment("mine")
    res = runner.invoke(cli, ["--store", str(target), "restore", str(dest), "--json"])
    assert res.exit_code == 1 and "not an empty store" in res.output and "--force" in res.output
    assert cairn.Client(str(target)).get_experiment_by_name("mine") is not None
    res = runner.invoke(cli, ["--store", str(target), "restore", str(dest), "--force", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["replaced"] is True and out["target_kind"] == "local"
    cairn.store.close_stores()
    c = cairn.Client(str(target))
    assert c.get_experiment_by_name("mine") is None, "--force replaces, it does not merge"
    assert len(c.search_runs(None, max_results=10_000)) >= out["counts"]["runs"]
    # A store that was only opened (an empty index) is empty: no --force needed.
    fresh = tmp_path / "fresh"
    LocalStore(fresh).open().close()
    assert restore(dest, str(fresh)).replaced is False


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("damage", ["object missing", "object changed", "manifest edited",
                                    "journal truncated", "no manifest", "object list edited",
                                    "path outside"])
def test_damaged_backup_is_refused(under_load, tmp_path, damage):
    bk = _copy(under_load["dest"], tmp_path / "bk")
    m = json.loads((bk / "manifest.json").read_text())
    oid = (bk / "objects.txt").read_text().split()[0]
    obj = bk / "objects" / oid[:2] / oid[2:]
    if damage == "object missing":
        obj.unlink()
    elif damage == "object changed":
        os.chmod(obj, 0o644)
        obj.write_bytes(obj.read_bytes() + b"x")
    elif damage == "manifest edited":
        m["objects"]["count"] += 1
        (bk / "manifest.json").write_text(json.dumps(m))
    elif damage == "journal truncated":
        journal = next(k for k in m["files"] if k.endswith(".cjl"))
        path = bk / journal
        path.write_bytes(path.read_bytes()[:-7])
    elif damage == "no manifest":
        (bk / "manifest.json").unlink()
    elif damage == "object list edited":
        with open(bk / "objects.txt", "a") as f:
            f.write("0" * 64 + " 1 " + "0" * 64 + "\n")
    elif damage == "path outside":
        m["files"]["../escape"] = {"size": 1, "sha256": "0" * 64}
        (bk / "manifest.json").write_text(json.dumps(m))
    target = tmp_path / "restored"
    with pytest.raises(CorruptObject) as err:
        restore(bk, str(target))
    assert "damaged" in err.value.message or "not a complete" in err.value.message
    assert not target.exists(), "nothing half-restored is left claiming to be a store"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    res = CliRunner().invoke(cli, ["--store", str(target), "restore", str(bk)])
    assert res.exit_code == 1 and res.output.startswith("Error: ")


def test_backup_cli_json_and_bad_destinations(under_load, tmp_path):
    store = under_load["store"]
    runner = CliRunner()
    res = runner.invoke(cli, ["--store", str(store), "backup", str(tmp_path / "b"), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["ok"] and out["counts"]["runs"] >= 4 and out["objects_copied"] == out["objects"]
    for key in ("dest", "source_kind", "schema_revision", "objects_reused", "bytes_copied",
                "files", "seconds", "missing_objects"):
        assert key in out
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    res = runner.invoke(cli, ["--store", str(store), "backup", str(other)])
    assert res.exit_code == 1 and "not empty and holds no Cairn backup" in res.output
    assert (other / "notes.txt").read_text() == "mine"
    res = runner.invoke(cli, ["--store", str(store), "backup", str(store / "inside")])
    assert res.exit_code == 1 and "outside the store" in res.output
    res = runner.invoke(cli, ["--store", str(tmp_path / "nowhere"), "backup", str(tmp_path / "x")])
    assert res.exit_code == 1 and "no Cairn store" in res.output
    with pytest.raises(InvalidArgument):
        restore(under_load["dest"], str(tmp_path / "t"), objects=str(tmp_path / "o"))


def test_restore_refuses_a_newer_schema(under_load, tmp_path):
    bk = _copy(under_load["dest"], tmp_path / "bk")
    m = json.loads((bk / "manifest.json").read_text())
    m["schema_revision"] = "0099_future"
    (bk / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(InvalidArgument, match="revision"):
        restore(bk, str(tmp_path / "t"))
    with pytest.raises(Conflict):
        restore(under_load["dest"], str(under_load["store"]))


def test_a_journal_replaced_since_the_last_backup_is_copied_whole(tmp_path):
    """An erasure rewrites a journal and renames it over the old one: the next backup must
    not append to the old copy (that would keep the erased bytes and tear the journal)."""
    store = tmp_path / "store"
    c = cairn.Client(str(store))
    run = c.create_run(c.create_experiment("e").id)
    c.log_param(run.id, "who", "alice@example.com")
    c.set_terminated(run.id)
    dest = tmp_path / "bk"
    backup(c.store, dest)
    [journal] = (store / "runs" / run.id / "journal").glob("*.cjl")
    rewritten = journal.read_bytes().replace(b"alice@example.com", b"[erased]@example") + b"\0" * 64
    tmp = journal.with_name("new.tmp")
    tmp.write_bytes(rewritten)
    os.replace(tmp, journal)
    backup(c.store, dest)
    copied = dest / journal.relative_to(store)
    assert copied.read_bytes() == rewritten
