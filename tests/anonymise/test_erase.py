"""`cairn admin erase-user`: one person's data erased, the audit chain still verifiable."""

from __future__ import annotations

import json
import sqlite3

import pytest
from click.testing import CliRunner

import cairn
from cairn.lifecycle.erase import ERASED, erase_user
from cairn.cas.odb import ObjectStore
from cairn.cli.main import cli
from cairn.errors import Conflict, InvalidArgument
from cairn.registry import audit
from cairn.store.sql.store import SqlStore
from tests.pg_fixtures import pg_database, pg_url  # noqa: F401


def _world(uri: str | None = None, store=None):
    """Alice's and Bob's runs and registry events; returns (alice's run, bob's run, clients)."""
    alice = cairn.Client(uri, user="alice", store=store)
    bob = cairn.Client(uri, user="bob", store=store)
    a = alice.create_run(params={"data": "/home/alice/d.csv", "lr": "0.1"},
                         tags={"mlflow.user": "alice", "note": "ask Alice"})
    alice.log_metric(a.id, "loss", 0.25)
    alice.set_terminated(a.id)
    b = bob.create_run(params={"data": "/home/bob/d.csv"}, tags={"mlflow.user": "bob"})
    bob.set_terminated(b.id)
    alice.create_registered_model("churn")
    bob.create_registered_model("fraud", description="reviewed with alice")
    bob.create_registered_model("other")
    return a, b, alice, bob


def _run(store_dir, *args):
    return CliRunner().invoke(cli, ["--store", str(store_dir), *args])


@pytest.fixture
def world(tracking):
    return (tracking, *_world(str(tracking)))


def test_data_sets_and_comments_are_erased(world, tmp_path):
    from cairn.collab import collab_for

    store_dir, a, b, alice, bob = world
    files = tmp_path / "files"
    files.mkdir()
    (files / "x.csv").write_text("a,b\n1,2\n")
    alice.data.add(files, "survey")
    collab_for(alice, "alice").add_comment("run", a.id, "looks good, @bob?")
    collab_for(bob, "bob").add_comment("run", a.id, "thanks @alice")
    report = erase_user(alice.store, "alice", actor="dpo")
    assert report.rows["datasets.created_by"] == 1
    assert report.rows["dataset_versions.created_by"] == 1
    assert report.rows["comments.author"] == 1 and report.rows["comments.body"] == 1
    c = cairn.Client(str(store_dir))
    comments = collab_for(c, "dpo").comments("run", a.id)
    assert sorted((x.author, x.body) for x in comments) == [
        (ERASED, "looks good, @bob?"), ("bob", f"thanks @{ERASED}")]
    assert c.data.version("survey@1").created_by == ERASED
    conn = sqlite3.connect(str(store_dir / "index.db"))
    try:
        assert conn.execute("SELECT count(*) FROM comment_mentions WHERE user_name = 'alice'"
                            ).fetchone() == (0,)
    finally:
        conn.close()
    assert c.verify_audit_log().ok


def test_dry_run_lists_and_changes_nothing(world):
    store_dir, a, b, alice, bob = world
    before = {p: p.read_bytes() for p in store_dir.rglob("*.cjl")}
    out = _run(store_dir, "admin", "erase-user", "alice", "--dry-run", "--json")
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert report["dry_run"] and report["runs"] == [a.id]
    assert report["audit_events"] == [1, 2]  # alice's model, and bob's event naming her
    assert report["erase_event"] is None
    assert {p: p.read_bytes() for p in store_dir.rglob("*.cjl")} == before
    assert alice.get_run(a.id).user == "alice"


def test_erase_on_a_local_store(world):
    store_dir, a, b, alice, bob = world
    refused = _run(store_dir, "admin", "erase-user", "alice")  # not a terminal: no prompt
    assert refused.exit_code == 1 and "--yes" in refused.output
    out = _run(store_dir, "admin", "erase-user", "alice", "--yes", "--json")
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert report["runs"] == [a.id] and report["erase_event"] == 4

    c = cairn.Client(str(store_dir))
    run = c.get_run(a.id)
    assert run.user == ERASED and run.tags["mlflow.user"] == ERASED
    assert run.params == {"data": f"/home/{ERASED}/d.csv", "lr": "0.1"}
    assert run.tags["note"] == f"ask {ERASED}"
    assert c.get_metric_history(a.id, "loss").values[0] == 0.25
    assert c.get_run(b.id).user == "bob"  # someone else's run untouched
    assert c.get_registered_model("churn").created_by == ERASED
    for path in store_dir.rglob("*.cjl"):
        assert b"alice" not in path.read_bytes().lower()

    assert c.verify_audit_log().ok
    events = {e.seq: e for e in c.audit_log()}
    assert events[1].actor == ERASED and events[3].actor == "bob"
    erase = events[4]
    assert erase.action == "user.erase" and "alice" not in json.dumps(erase.after).lower()
    assert [x["seq"] for x in erase.after["erased"]] == [1, 2]
    assert _run(store_dir, "audit", "verify").exit_code == 0
    doctor = _run(store_dir, "doctor", "--skip", "objects")  # the index matches the journals
    assert doctor.exit_code == 0, doctor.output

    # The journals are the truth: a rebuilt index does not bring her back.
    assert _run(store_dir, "reindex").exit_code == 0
    again = cairn.Client(str(store_dir)).get_run(a.id)
    assert again.user == ERASED and "alice" not in json.dumps(again.params).lower()
    assert _run(store_dir, "doctor", "--skip", "objects").exit_code == 0
    # Erasing again finds nothing and appends nothing.
    second = json.loads(_run(store_dir, "admin", "erase-user", "alice", "--yes", "--json").output)
    assert second["runs"] == [] and second["erase_event"] is None


def _tamper(store_dir, sql):
    conn = sqlite3.connect(str(store_dir / "index.db"), isolation_level=None)
    try:
        conn.execute(sql)
    finally:
        conn.close()


@pytest.mark.parametrize("sql, seq", [
    ("UPDATE audit_events SET actor = 'mallory' WHERE seq = 1", 1),  # an edited tombstone
    ("UPDATE audit_events SET erased = '{\"by_seq\": 9}' WHERE seq = 1", 1),  # not vouched for
    # A forged tombstone: content changed and marked erased, but no erasure lists it.
    ("UPDATE audit_events SET actor = 'x', erased = '{\"at\":1,\"by_seq\":4,\"fields\":[]}' "
     "WHERE seq = 3", 3),
    ("UPDATE audit_events SET actor = 'eve' WHERE seq = 3", 3),  # any other row
    ("UPDATE audit_events SET after = '{\"erased\":[]}' WHERE seq = 4", 4),  # the erasure
    ("DELETE FROM audit_events WHERE seq = 2", 2),
])
def test_tampering_after_erasure_is_found(world, sql, seq):
    store_dir = world[0]
    assert _run(store_dir, "admin", "erase-user", "alice", "--yes").exit_code == 0
    _tamper(store_dir, sql)
    report = cairn.Client(str(store_dir)).verify_audit_log()
    assert not report.ok and seq in [p.seq for p in report.problems]
    assert _run(store_dir, "audit", "verify").exit_code == 1


def test_a_running_run_is_refused_by_name(tracking):
    alice = cairn.Client(str(tracking), user="alice")
    run = alice.create_run(tags={"mlflow.user": "alice"})
    with pytest.raises(Conflict, match=run.id):
        erase_user(alice.store, "alice", actor="admin")
    assert alice.get_run(run.id).user == "alice"


@pytest.mark.parametrize("name", ["", "  ", ERASED, "al\ud800ice"])
def test_bad_names_are_refused(tracking, name):
    with pytest.raises(InvalidArgument):
        erase_user(cairn.Client(str(tracking)).store, name, actor="admin")


def test_an_unreachable_team_server_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("CAIRN_SPOOL_DIR", str(tmp_path / "spool"))
    out = CliRunner().invoke(cli, ["--store", "http://127.0.0.1:9", "admin", "erase-user",
                                   "alice", "--yes"])
    assert out.exit_code == 1 and "127.0.0.1:9" in out.output and "Traceback" not in out.output


def test_erase_on_postgresql(pg_url, tmp_path):  # noqa: F811
    store = SqlStore(pg_url, ObjectStore.local(tmp_path / "objects")).open()
    try:
        a, b, alice, bob = _world(store=store)
        report = erase_user(store, "alice", actor="admin")
        assert report.runs == [a.id] and report.journals == []
        c = cairn.Client(store=store)
        run = c.get_run(a.id)
        assert run.user == ERASED and run.params["data"] == f"/home/{ERASED}/d.csv"
        assert c.get_run(b.id).user == "bob"
        assert c.verify_audit_log().ok
        with store.index.session(write=True) as conn:
            conn.exec_driver_sql("UPDATE audit_events SET actor = 'mallory' WHERE seq = 1")
        assert [p.seq for p in c.verify_audit_log().problems] == [1]
    finally:
        store.close()


def test_tombstone_hash_is_the_erased_content(world):
    store_dir = world[0]
    _run(store_dir, "admin", "erase-user", "alice", "--yes")
    conn = sqlite3.connect(str(store_dir / "index.db"))
    conn.row_factory = sqlite3.Row
    try:
        row = conn.execute("SELECT * FROM audit_events WHERE seq = 1").fetchone()
        erase = conn.execute("SELECT after FROM audit_events WHERE seq = 4").fetchone()[0]
    finally:
        conn.close()
    listed = json.loads(erase)["erased"][0]
    assert json.loads(row["erased"])["by_seq"] == 4
    assert listed["hash"] == row["hash"]  # the stored hash is kept: the chain still links
    assert listed["tombstone"] == audit.event_hash(row["seq"], row["time"], row["actor"],
                                                   row["action"], row["target"], row["before"],
                                                   row["after"], row["prev_hash"])


def test_a_failed_erasure_leaves_journals_and_index_as_they_were(world, monkeypatch):
    import cairn.lifecycle.erase as erase_mod

    store_dir, a, *_ = world
    before = {p: p.read_bytes() for p in store_dir.rglob("*.cjl")}

    def fail(*args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(erase_mod, "_erase_audit", fail)
    with pytest.raises(RuntimeError):
        erase_user(cairn.Client(str(store_dir)).store, "alice", actor="dpo")
    assert {p: p.read_bytes() for p in store_dir.rglob("*.cjl")} == before
    assert not [p for p in store_dir.rglob("*") if p.name.endswith((".erase", ".pre-erase"))]
    assert cairn.Client(str(store_dir)).get_run(a.id).user == "alice"
