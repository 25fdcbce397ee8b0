"""The hash-chained audit log: one event per mutation, in its transaction; forgery is found."""

import pytest
from click.testing import CliRunner

import cairn
from cairn.cli.main import cli

from .conftest import fit_logreg


@pytest.fixture
def busy(tracking, data, as_user):
    c = cairn.Client()
    c.register_model("fraud", fit_logreg(data))
    c.register_model("fraud", fit_logreg(data, C=0.3))
    c.set_stage_policy("fraud", "production", approvals=1)
    req = c.request_transition("fraud", "1.0.0", "production", comment="go")
    as_user("bob").approve(req.id, comment="ok")
    c.set_alias("fraud", "champion", "1.0.0")
    c.set_naming_policy(template="{team}-{task}")
    return c


def test_every_mutation_appends_one_event(busy):
    events = busy.audit_log()
    actions = [e.action for e in reversed(events)]
    assert actions == ["model.create", "model_version.create", "model_version.create",
                       "model.policy", "transition.request", "transition.approve",
                       "model_version.stage", "model.alias", "registry.naming_policy"]
    assert [e.seq for e in reversed(events)] == list(range(1, 10))
    stage = next(e for e in events if e.action == "model_version.stage")
    assert (stage.actor, stage.target, stage.before, stage.after["stage"]) == \
        ("bob", "model:fraud/1.0.0", {"stage": "Development"}, "Production")
    assert [e.action for e in busy.audit_log(target="model:fraud/1.0.0")] == \
        ["model_version.stage", "transition.approve", "transition.request", "model_version.create"]
    assert len(busy.audit_log(target="model:fraud")) == 8
    assert busy.audit_log(actor="bob", limit=1)[0].action == "model_version.stage"
    assert busy.verify_audit_log().ok
    # A refused mutation writes nothing.
    with pytest.raises(cairn.NotFound):
        busy.set_alias("fraud", "champion", "7.0.0")
    assert len(busy.audit_log()) == 9


def test_a_forged_audit_row_is_named_by_cairn_audit_verify(busy, tracking, db):
    runner = CliRunner()
    ok = runner.invoke(cli, ["--store", str(tracking), "audit", "verify"])
    assert ok.exit_code == 0 and "9 event(s), chain intact" in ok.output
    # Someone with database access rewrites who approved.
    db().execute("UPDATE audit_events SET actor = 'mallory' WHERE seq = 6")
    bad = runner.invoke(cli, ["--store", str(tracking), "audit", "verify"])
    assert bad.exit_code == 1
    assert "audit event #6 (transition.approve model:fraud/1.0.0) was edited" in bad.output
    report = busy.verify_audit_log()
    assert [p.seq for p in report.problems] == [6]


def test_rehashed_forgeries_and_deletions_are_found(busy, db):
    from cairn.registry.audit import event_hash

    conn = db()
    row = conn.execute("SELECT seq, time, actor, action, target, before, after, prev_hash "
                       "FROM audit_events WHERE seq = 4").fetchone()
    # A careful forger recomputes the edited row's own hash: the next row no longer links.
    forged = event_hash(row[0], row[1], "mallory", *row[3:])
    conn.execute("UPDATE audit_events SET actor = 'mallory', hash = ? WHERE seq = 4", (forged,))
    problems = busy.verify_audit_log().problems
    assert [p.seq for p in problems] == [5]
    assert "event #4 was rewritten" in problems[0].message


def test_deleted_events_are_found(busy, db):
    conn = db()
    conn.execute("DELETE FROM audit_events WHERE seq = 3")
    (p,) = busy.verify_audit_log().problems
    assert p.seq == 3 and "audit event #3 is missing" in p.message


def test_deleting_the_newest_events_is_found(busy, db):
    db().execute("DELETE FROM audit_events WHERE seq >= 8")
    (p,) = busy.verify_audit_log().problems
    assert "newest audit events were deleted" in p.message and "#9" in p.message


def test_json_output_and_log_listing(busy, tracking):
    import json

    runner = CliRunner()
    out = runner.invoke(cli, ["--store", str(tracking), "audit", "log", "--json", "-n", "3"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    assert [r["seq"] for r in rows] == [9, 8, 7]
    out = runner.invoke(cli, ["--store", str(tracking), "audit", "verify", "--json"])
    assert json.loads(out.output) == {"ok": True, "checked": 9, "problems": []}
