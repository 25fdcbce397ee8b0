"""Review of `cairn admin erase-user`: names inside other words, and a log tampered before."""

from __future__ import annotations

import sqlite3

import pytest

import cairn
from cairn.errors import Conflict
from cairn.lifecycle.erase import ERASED, erase_user


def _finished(client, **fields):
    run = client.create_run(**fields)
    client.log_metric(run.id, "val_loss", 0.5)
    client.set_terminated(run.id)
    return run


def test_a_name_inside_other_words_names_no_run(tracking):
    """Erasing "al" touches al's run only: not alice's, not a run with "algorithm" or a
    metric "val_loss" in its journal, and a running run of bob's does not block it."""
    al = cairn.Client(str(tracking), user="al")
    alice = cairn.Client(str(tracking), user="alice")
    mine = _finished(al, params={"data": "/home/al/d.csv"})
    hers = _finished(alice, params={"algo": "algorithm"}, tags={"mlflow.user": "alice"})
    bob = cairn.Client(str(tracking), user="bob")
    open_run = bob.create_run(params={"lr": "0.1"})
    bob.log_metric(open_run.id, "val_loss", 1.0)  # still RUNNING

    report = erase_user(al.store, "al", actor="officer")

    assert report.runs == [mine.id]
    assert all(mine.id in p for p in report.journals) and report.journals
    got = al.get_run(mine.id)
    assert got.user == ERASED and got.params["data"] == f"/home/{ERASED}/d.csv"
    assert alice.get_run(hers.id).params == {"algo": "algorithm"}
    assert alice.get_run(hers.id).user == "alice"
    assert bob.get_run(open_run.id).status.value == "RUNNING"
    # Nothing is left to erase: a second erasure changes nothing and appends no event.
    again = erase_user(al.store, "al", actor="officer")
    assert again.runs == [] and again.journals == [] and again.erase_event is None
    assert al.verify_audit_log().ok


def test_a_running_run_that_names_them_still_blocks(tracking):
    al = cairn.Client(str(tracking), user="al")
    running = al.create_run(params={"x": "1"})
    with pytest.raises(Conflict, match=running.id):
        erase_user(al.store, "al", actor="officer")
    assert al.get_run(running.id).user == "al"


def test_erasure_does_not_hide_an_event_edited_before(tracking):
    """An event edited in the database (content no longer matches its hash) is evidence;
    an erasure that made it a vouched-for tombstone would launder it."""
    bob = cairn.Client(str(tracking), user="bob")
    bob.create_registered_model("churn")
    bob.create_registered_model("fraud")
    db = sqlite3.connect(str(tracking / "index.db"), isolation_level=None)
    try:
        db.execute("UPDATE audit_events SET actor = 'alice' WHERE seq = 1")
    finally:
        db.close()
    assert not bob.verify_audit_log().ok

    with pytest.raises(Conflict, match="#1"):
        erase_user(bob.store, "alice", actor="officer")
    report = bob.verify_audit_log()
    assert not report.ok and 1 in [p.seq for p in report.problems]
    assert [e.action for e in bob.audit_log()] == ["model.create", "model.create"]


def test_a_run_name_that_names_them_is_erased_and_doctor_passes(tracking):
    from click.testing import CliRunner

    from cairn.cli.main import cli

    alice = cairn.Client(str(tracking), user="alice")
    named = _finished(alice, name="run of alice")
    renamed = _finished(alice, name="first")
    alice.rename_run(renamed.id, "renamed by Alice")

    report = erase_user(alice.store, "alice", actor="officer")

    assert sorted(report.runs) == sorted([named.id, renamed.id])
    assert alice.get_run(named.id).name == f"run of {ERASED}"
    assert alice.get_run(renamed.id).name == f"renamed by {ERASED}"
    doctor = CliRunner().invoke(cli, ["--store", str(tracking), "doctor", "--skip", "objects"])
    assert doctor.exit_code == 0, doctor.output
    assert CliRunner().invoke(cli, ["--store", str(tracking), "reindex"]).exit_code == 0
    assert alice.get_run(named.id).name == f"run of {ERASED}"


def test_experiment_tags_that_name_them_are_erased(tracking):
    """Deleting an experiment records `cairn.deleted_by` in its tags (index and the
    experiment's file): who did something, so erased like the rest."""
    from click.testing import CliRunner

    from cairn.cli.main import cli

    alice = cairn.Client(str(tracking), user="alice")
    exp = alice.create_experiment("exp-a", tags={"owner": "alice", "team": "ml"})
    alice.delete_experiment(exp.id)

    report = erase_user(alice.store, "alice", actor="officer")

    tags = alice.get_experiment(exp.id).tags
    assert tags["cairn.deleted_by"] == ERASED and tags["owner"] == ERASED
    assert tags["team"] == "ml"
    assert report.rows["experiments.tags"] == 1
    assert b"alice" not in (tracking / "experiments" / f"{exp.id}.json").read_bytes()
    assert CliRunner().invoke(cli, ["--store", str(tracking), "reindex"]).exit_code == 0
    assert alice.get_experiment(exp.id).tags["owner"] == ERASED
    doctor = CliRunner().invoke(cli, ["--store", str(tracking), "doctor", "--skip", "objects"])
    assert doctor.exit_code == 0, doctor.output


@pytest.mark.parametrize("recorded, asked", [("Émile", "Émile"), ("ÉMILE", "émile"),
                                              ("Øyvind", "øyvind")])
def test_a_name_with_letters_beyond_ascii_is_erased(tracking, recorded, asked):
    """SQLite's lower() and bytes.lower() fold ASCII only: a name such as Émile was found
    nowhere, and the erasure reported success with nothing erased."""
    from click.testing import CliRunner

    from cairn.cli.main import cli

    c = cairn.Client(str(tracking), user=recorded)
    run = _finished(c, params={"p": f"/home/{recorded}/x"}, tags={"mlflow.user": recorded})
    c.create_registered_model("m")

    report = erase_user(c.store, asked, actor="officer")

    assert report.runs == [run.id] and report.audit_events == [1]
    got = c.get_run(run.id)
    assert (got.user, got.params["p"], got.tags["mlflow.user"]) == \
        (ERASED, f"/home/{ERASED}/x", ERASED)
    assert c.get_registered_model("m").created_by == ERASED
    assert c.audit_log()[-1].actor == ERASED and c.verify_audit_log().ok
    assert CliRunner().invoke(cli, ["--store", str(tracking), "reindex"]).exit_code == 0
    assert c.get_run(run.id).user == ERASED


def test_a_write_after_the_erasure_by_an_open_writer_is_kept(tracking):
    """A finished run still takes tags; a process that wrote one keeps its journal open.
    The erasure replaces that journal with its rewritten copy: the next write must land in
    the new file, not in the replaced one (lost on reindex, index DAMAGED)."""
    from click.testing import CliRunner

    from cairn.cli.main import cli
    from cairn.store.local import LocalStore

    alice = cairn.Client(str(tracking), user="alice")
    run = _finished(alice, params={"p": "/home/alice/x"})
    alice.set_tag(run.id, "after", "1")  # its journal stays open in this client's store
    other = LocalStore(tracking)
    try:
        erase_user(other, "alice", actor="officer")
    finally:
        other.close()
    alice.set_tag(run.id, "later", "2")
    doctor = CliRunner().invoke(cli, ["--store", str(tracking), "doctor", "--skip", "objects"])
    assert doctor.exit_code == 0, doctor.output
    alice.store.close()
    assert CliRunner().invoke(cli, ["--store", str(tracking), "reindex"]).exit_code == 0
    got = cairn.Client(str(tracking)).get_run(run.id)
    assert got.tags["later"] == "2" and got.params["p"] == f"/home/{ERASED}/x"
