"""`cairn runs rename|delete|restore` and `cairn experiments rename|delete|restore` on a
local store (#17).

A run's name and lifecycle lived only in its index row, so `cairn reindex` (which
rebuilds the index from the journals) undid a rename and brought a deleted run back.
They are journalled now (the reserved tags ``cairn.run.name`` / ``cairn.run.lifecycle``),
and an experiment's lifecycle is kept in its experiment file.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

import cairn
from cairn.cli.main import cli
from cairn.store import close_store

RUN_NAME_TAG = "cairn.run.name"


def invoke(store, *args, code=0):
    result = CliRunner().invoke(cli, [*map(str, args), "--store", str(store)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == code, (result.output, result.stderr)
    assert "Traceback" not in result.output
    return result


def as_json(store, *args):
    return json.loads(invoke(store, *args, "--json").stdout)


@pytest.fixture
def runs(tracking):
    """Two finished runs in experiment "exp" (a rename and a delete work on finished runs)."""
    client = cairn.Client(str(tracking))
    exp = client.create_experiment("exp")
    ids = []
    for name in ("first", "second"):
        run = client.create_run(exp.id, name=name, params={"lr": "0.1"})
        client.log_metric(run.id, "acc", 0.5)
        client.set_terminated(run.id)
        ids.append(run.id)
    return tracking, ids


def _fresh_process_view(store) -> dict:
    """What another process reads: names and lifecycles of every run, and experiments."""
    code = ("import json, sys, cairn\n"
            "c = cairn.Client(sys.argv[1])\n"
            "runs = c.search_runs(None, lifecycle=None)\n"
            "print(json.dumps({'runs': {r.id: [r.name, r.lifecycle, sorted(r.tags)] "
            "for r in runs}, 'experiments': {e.id: [e.name, e.lifecycle] "
            "for e in c.list_experiments()}}))\n")
    out = subprocess.run([sys.executable, "-c", code, str(store)], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)


def test_a_rename_and_a_delete_survive_reindex_and_a_new_process(runs):
    store, (a, b) = runs
    assert as_json(store, "runs", "rename", a[:8], "renamed") == \
        {"run_id": a, "name": "renamed", "lifecycle": "active"}
    assert as_json(store, "runs", "delete", b) == \
        {"run_id": b, "name": "second", "lifecycle": "deleted"}
    assert "restore with" in invoke(store, "runs", "delete", b).stdout

    def check():
        listed = as_json(store, "runs", "ls")["runs"]
        assert [(r["id"], r["name"], r["lifecycle"]) for r in listed] == [(a, "renamed", "active")]
        every = {r["id"]: r for r in as_json(store, "runs", "ls", "--all")["runs"]}
        assert every[b]["lifecycle"] == "deleted" and every[a]["name"] == "renamed"
        assert [r["id"] for r in as_json(store, "runs", "ls", "--lifecycle", "deleted")["runs"]] \
            == [b]
        # The reserved tags are attributes, never shown among the run's tags.
        assert RUN_NAME_TAG not in every[a]["tags"] and every[b]["tags"] == {}
        assert as_json(store, "runs", "show", b[:8])["lifecycle"] == "deleted"  # a prefix finds it

    check()
    close_store(str(store))
    assert as_json(store, "reindex")["runs"] == 2
    check()
    view = _fresh_process_view(store)
    assert view["runs"] == {a: ["renamed", "active", []], b: ["second", "deleted", []]}
    # Restored, and that survives a reindex too.
    assert as_json(store, "runs", "restore", b[:8])["lifecycle"] == "active"
    as_json(store, "reindex")
    assert {r["id"] for r in as_json(store, "runs", "ls")["runs"]} == {a, b}


def test_experiment_rename_and_delete_survive_reindex(runs):
    store, (a, b) = runs
    assert as_json(store, "experiments", "rename", "exp", "exp-2")["name"] == "exp-2"
    got = as_json(store, "experiments", "delete", "exp-2")
    assert got["lifecycle"] == "deleted"
    for _ in range(2):  # before and after a rebuild of the index
        assert as_json(store, "experiments", "ls") == []
        [e] = as_json(store, "experiments", "ls", "--all")
        assert (e["name"], e["lifecycle"]) == ("exp-2", "deleted")
        assert as_json(store, "runs", "ls")["runs"] == []  # its runs went with it
        assert len(as_json(store, "runs", "ls", "--all")["runs"]) == 2
        close_store(str(store))
        as_json(store, "reindex")
    assert _fresh_process_view(store)["experiments"] == {e["id"]: ["exp-2", "deleted"]}
    assert as_json(store, "experiments", "restore", e["id"])["lifecycle"] == "active"
    as_json(store, "reindex")
    assert len(as_json(store, "runs", "ls")["runs"]) == 2
    assert "restored" in invoke(store, "experiments", "restore", "exp-2").stdout


@pytest.mark.parametrize("name, says", [("", "non-empty"), ("x" * 501, "the limit is 500"),
                                        ("\ud800", "lone surrogate"), ("   ", "non-empty")])
def test_a_bad_name_is_a_clear_error_and_changes_nothing(runs, name, says):
    store, (a, _b) = runs
    journal_bytes = sum(p.stat().st_size for p in (store / "runs").rglob("*") if p.is_file())
    err = invoke(store, "runs", "rename", a, name, code=1).stderr
    assert err.startswith("Error: ") and says in err, err
    err = invoke(store, "experiments", "rename", "exp", name, code=1).stderr
    assert err.startswith("Error: ") and says in err, err
    assert sum(p.stat().st_size for p in (store / "runs").rglob("*") if p.is_file()) \
        == journal_bytes
    assert as_json(store, "runs", "show", a)["name"] == "first"
    assert [e["name"] for e in as_json(store, "experiments", "ls")] == ["exp"]


def test_unknown_ids_and_taken_names(runs):
    store, _ = runs
    for cmd in (["runs", "rename", "0" * 32, "x"], ["runs", "delete", "0" * 32],
                ["runs", "restore", "0" * 32], ["experiments", "delete", "nope"],
                ["experiments", "rename", "nope", "x"]):
        err = invoke(store, *cmd, code=1).stderr
        assert err.startswith("Error: ") and ("does not exist" in err or "no experiment" in err)
    invoke(store, "experiments", "create", "other")
    err = invoke(store, "experiments", "rename", "exp", "other", code=1).stderr
    assert "already exists" in err
    assert sorted(e["name"] for e in as_json(store, "experiments", "ls")) == ["exp", "other"]


def test_the_reserved_tags_refuse_bad_values_and_deletion(runs):
    store, (a, _b) = runs
    client = cairn.Client(str(store))
    with pytest.raises(cairn.InvalidArgument, match="must be one of"):
        client.set_tag(a, "cairn.run.lifecycle", "gone")
    with pytest.raises(cairn.InvalidArgument, match="cannot be deleted"):
        client.delete_tag(a, "cairn.run.name")
    assert client.get_run(a).lifecycle == "active"


def test_memory_store_renames_and_deletes_alike():
    client = cairn.Client("memory://lifecycle-cli")
    exp = client.create_experiment("m")
    run = client.create_run(exp.id, name="a")
    client.set_terminated(run.id)
    assert client.rename_run(run.id, "b").name == "b"
    assert client.delete_run(run.id).lifecycle == "deleted"
    assert client.get_run(run.id).tags == {}
    assert list(client.search_runs()) == []
    assert [r.id for r in client.search_runs(lifecycle="deleted")] == [run.id]
    assert client.restore_run(run.id).lifecycle == "active"
    assert client.delete_experiment(exp.id).lifecycle == "deleted"
    assert client.get_run(run.id).lifecycle == "deleted"
    assert client.rename_experiment(exp.id, "m2").name == "m2"
    assert client.restore_experiment(exp.id).lifecycle == "active"


def test_a_journal_with_a_bad_reserved_value_replays_harmlessly(tracking, monkeypatch):
    """A record no current client writes (an empty name, an unknown lifecycle: set as
    plain tags by an older Cairn) changes neither the run's name nor its lifecycle."""
    import cairn.store.local as local
    from cairn.entities import RecordBatch

    client = cairn.Client(str(tracking))
    run = client.create_run(client.create_experiment("old").id, name="kept")
    monkeypatch.setattr(local, "check_batch_text", lambda batch: None)
    client.store.write(RecordBatch(run_id=run.id, writer_id="0123456789abcdef", seq=1, time=1,
                                   tags={"cairn.run.lifecycle": "gone", "cairn.run.name": ""}))
    for _ in range(2):
        got = client.get_run(run.id)
        assert (got.name, got.lifecycle) == ("kept", "active")
        client.store.reindex()
