"""The trash on a store directory: the CLI, deletion times that survive a reindex, purging by
age, bad input, and a purge SIGKILLed half-way that the next purge finishes."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from click.testing import CliRunner
from procs import reap_processes, spawn, wait_for_line  # noqa: F401  (a fixture)

import cairn
from cairn.cli.main import cli
from cairn.errors import InvalidArgument
from cairn.lifecycle import trash


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("CAIRN_CAPTURE_ENV", "0")


def _cli(store, *args, code=0):
    result = CliRunner().invoke(cli, ["--store", str(store), *map(str, args)])
    assert result.exit_code == code, result.output
    return result


def _json(store, *args):
    return json.loads(_cli(store, *args, "--json").stdout)


def test_the_cli_deletes_restores_lists_and_empties(tmp_path):
    store = tmp_path / "s"
    client = cairn.Client(str(store), user="alice")
    src = tmp_path / "d"
    src.mkdir()
    (src / "x.csv").write_text("a\n1\n")
    client.data.add(src, "tx")
    exp = client.create_experiment("e")
    run = client.create_run(exp.id)
    client.set_terminated(run.id)
    mv = client.register_model("m", {"w": 1}, flavor="pickle", run_id=run.id,
                               datasets=["tx@1"])

    assert "input of registered model version m/1.0.0" in _cli(
        store, "data", "delete", "tx@1", code=1).output
    assert "source run of registered model version" in _cli(
        store, "runs", "delete", run.id, code=1).output
    assert _json(store, "data", "delete", "tx@1", "--force")["trashed"] is True
    assert "is in the trash" in _cli(store, "data", "show", "tx@1", code=1).output
    _cli(store, "models", "delete", "m", mv.version)
    listed = _json(store, "trash", "ls")
    assert [(i["kind"], i["identifier"], i["restore"]) for i in listed] == [
        ("dataset_version", "tx@1", "cairn data restore tx@1"),
        ("model_version", "m/1.0.0", "cairn models restore m 1.0.0")]
    assert _json(store, "models", "restore", "m", "1.0.0")["stage"] == "Development"
    assert _json(store, "data", "restore", "tx@1")["ref"] == "tx@1"
    assert _json(store, "trash", "ls") == []

    _cli(store, "runs", "delete", run.id, "--force")
    _cli(store, "data", "delete", "tx@1", "--force")
    dry = _json(store, "trash", "empty", "--dry-run")
    assert dry["dry_run"] is True and dry["purged"] == []
    assert {k["kind"] for k in dry["kept"]} == {"run", "dataset_version"}
    _cli(store, "models", "delete", "m", "1.0.0")
    # Without a terminal, emptying asks for --yes instead of prompting.
    assert "--yes" in _cli(store, "trash", "empty", code=1).output
    assert len(_json(store, "trash", "ls")) == 3  # nothing was purged
    assert _json(store, "trash", "empty", "--older-than", "1", "--yes")["purged"] == []
    done = _json(store, "trash", "empty", "--yes")
    assert sorted(i["kind"] for i in done["purged"]) == ["dataset_version", "model_version", "run"]
    assert "the trash is empty" in _cli(store, "trash", "ls").output
    assert "Invalid value" in _cli(store, "trash", "empty", "--older-than", "-1", code=2).output


def test_deletion_times_survive_a_reindex_and_purging_goes_by_age(tmp_path):
    store_dir = tmp_path / "s"
    client = cairn.Client(str(store_dir), user="alice")
    old = client.create_experiment("old")
    lone_exp = client.create_experiment("live")
    run = client.create_run(lone_exp.id)
    client.set_terminated(run.id)
    client.delete_experiment(old.id)
    client.delete_run(run.id)
    tags = client.get_experiment(old.id).tags
    assert tags[trash.DELETED_BY_TAG] == "alice" and int(tags[trash.DELETED_AT_TAG]) > 0
    before = {i.identifier: i.deleted_at for i in client.list_trash()}
    client.store.reindex()  # the index is derived: the times come back from files and journals
    assert {i.identifier: i.deleted_at for i in client.list_trash()} == before
    exp_time, run_time = before[old.id], before[run.id]
    assert exp_time is not None and run_time is not None
    report = trash.purge(client.store, older_than_ms=10_000, now_ms=exp_time + 9_999,
                         dry_run=False, actor="alice")
    assert report.purged == [] and len(client.list_trash()) == 2
    report = trash.purge(client.store, older_than_ms=10_000, now_ms=max(exp_time, run_time)
                         + 10_000, dry_run=False, actor="alice")
    assert {i.identifier for i in report.purged} == {old.id, run.id}
    # A restore drops the deletion tags.
    again = client.create_experiment("again")
    client.delete_experiment(again.id)
    assert trash.DELETED_AT_TAG not in client.restore_experiment(again.id).tags


def test_a_run_a_writer_still_logs_to_is_not_purged(tmp_path):
    client = cairn.Client(str(tmp_path / "s"), user="alice")
    exp = client.create_experiment("e")
    live = client.create_run(exp.id)  # RUNNING, with a fresh heartbeat
    client.delete_run(live.id)
    now = int(time.time() * 1000)
    report = trash.purge(client.store, older_than_ms=None, now_ms=now, dry_run=False,
                         actor="alice")
    [(item, why)] = report.kept
    assert item.identifier == live.id and "still logging" in why
    # Once its heartbeat is stale the writer is presumed dead, and the run goes.
    report = trash.purge(client.store, older_than_ms=None, now_ms=now + 3_600_000,
                         dry_run=False, actor="alice")
    assert [i.identifier for i in report.purged] == [live.id]


def test_lineage_leaves_out_what_is_in_the_trash(tmp_path):
    client = cairn.Client(str(tmp_path / "s"), user="alice")
    src, out = tmp_path / "raw", tmp_path / "clean"
    src.mkdir()
    out.mkdir()
    (src / "x.csv").write_text("a\n1\n2\n")
    (out / "y.csv").write_text("a\n1\n")
    client.data.add(src, "raw")
    client.data.derive(["raw@1"], out, "clean")
    mv = client.register_model("m", {"w": 1}, flavor="pickle", datasets=["raw@1"])

    def below():
        return set(client.lineage("raw@1", direction="downstream").nodes)  # node ids

    assert {"dataset:clean@1", f"model:m@{mv.version}"} <= below()
    client.delete_dataset_version("clean@1")
    client.delete_model_version("m", mv.version)
    assert not {"dataset:clean@1", f"model:m@{mv.version}"} & below()
    client.restore_dataset_version("clean@1")
    assert "dataset:clean@1" in below()


def test_bad_input_is_refused_before_anything_changes(tmp_path):
    client = cairn.Client(str(tmp_path / "s"), user="alice")
    exp = client.create_experiment("e")
    client.delete_experiment(exp.id)
    now = int(time.time() * 1000)
    for kwargs in ({"older_than_ms": -1}, {"older_than_ms": 1.5}, {"older_than_ms": True},
                   {"now_ms": "now"}, {"dry_run": "no"}, {"actor": ""},
                   {"actor": "x\ud800y"}):
        args = {"older_than_ms": None, "now_ms": now, "dry_run": False, "actor": "alice",
                **kwargs}
        with pytest.raises(InvalidArgument):
            trash.purge(client.store, **args)
    for bad in (-1, "7", float("nan"), True):
        with pytest.raises(InvalidArgument):
            client.empty_trash(bad)
    with pytest.raises(InvalidArgument):
        client.delete_run("0" * 32, force="yes")
    with pytest.raises(InvalidArgument):
        client.delete_dataset_version("tx@1\ud800")
    assert [i.identifier for i in client.list_trash()] == [exp.id]  # still there


PURGE = """
import time
import cairn
from cairn.lifecycle import trash
client = cairn.Client(user="alice")
print("purging", flush=True)
trash.purge(client.store, older_than_ms=None, now_ms=int(time.time() * 1000), dry_run=False,
            actor="alice")
print("done", flush=True)
"""


@pytest.mark.slow
def test_a_purge_killed_half_way_is_finished_by_the_next(tmp_path):
    store_dir = tmp_path / "s"
    client = cairn.Client(str(store_dir), user="alice")
    exp = client.create_experiment("many")
    keep = client.create_run(exp.id, name="keep")
    client.log_metric(keep.id, "loss", 0.25)
    client.set_terminated(keep.id)
    doomed = []
    for i in range(300):
        run = client.create_run(exp.id, name=f"r{i}", params={"i": str(i)})
        client.set_terminated(run.id)
        client.delete_run(run.id)
        doomed.append(run.id)
    assert len(client.list_trash()) == 300
    from cairn.store import close_store

    close_store(str(store_dir))
    runs_dir = store_dir / "runs"
    proc = spawn(store_dir, PURGE)
    wait_for_line(proc, "purging")
    deadline = time.time() + 60
    while len(os.listdir(runs_dir)) > 250 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.002)
    assert proc.poll() is None, "the purge finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    client = cairn.Client(str(store_dir), user="alice")
    left = {i.identifier for i in client.list_trash()}
    assert 0 < len(left) < 300, "killed half-way"
    # Every run is whole or gone: one still in the trash has its journal (in runs/, or set
    # aside in purging/ by the killed purge); one that left the index has no journal where a
    # replay looks (at most a directory in purging/ that the next purge deletes first).
    aside = set(os.listdir(store_dir / "purging")) if (store_dir / "purging").exists() else set()
    for rid in doomed:
        here = (runs_dir / rid).exists()
        assert not (here and rid in aside), rid
        if rid in left:
            assert here or rid in aside, rid
        else:
            assert not here, rid
    report = client.empty_trash()
    assert {i.identifier for i in report.purged} == left
    assert client.list_trash() == []
    assert os.listdir(runs_dir) == [keep.id]
    assert not aside or os.listdir(store_dir / "purging") == []
    assert client.get_run(keep.id).metrics["loss"] == 0.25
    client.store.reindex()  # nothing comes back from a journal
    assert [r.id for r in client.search_runs([exp.id], lifecycle=None)] == [keep.id]
    assert client.verify_audit_log().ok
