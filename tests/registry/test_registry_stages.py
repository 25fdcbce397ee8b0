"""Stages, approval gates, aliases, history, time travel and rollback."""

import datetime as dt
import time

import pytest

import cairn
from cairn import Conflict, InvalidArgument, NotFound, PermissionDenied
from cairn.registry import repo as registry_repo

from .conftest import fit_logreg


@pytest.fixture
def three(tracking, data):
    c = cairn.Client()
    for C in (1.0, 0.5, 0.25):
        c.register_model("fraud", fit_logreg(data, C=C))
    return c  # versions 1.0.0, 1.1.0, 1.2.0, acting as alice


def _tick():
    time.sleep(0.005)  # history has millisecond times
    moment = dt.datetime.now()
    time.sleep(0.005)
    return moment


def test_approval_gate_needs_two_other_people(three, as_user):
    alice, bob, carol = three, as_user("bob"), as_user("carol")
    pol = alice.set_stage_policy("fraud", "production", approvals=2)
    assert (pol.stage, pol.approvals, pol.exclusive) == ("Production", 2, True)
    with pytest.raises(PermissionDenied, match=r"needs 2 approval\(s\).*request_transition"):
        alice.transition_model_version_stage("fraud", "1.0.0", "production")
    req = alice.request_transition("fraud", "1.0.0", "Production", comment="beats baseline")
    assert (req.status, req.required, req.from_stage) == ("pending", 2, "Development")
    with pytest.raises(Conflict, match="already pending"):
        alice.request_transition("fraud", "1.0.0", "production")
    with pytest.raises(PermissionDenied, match="alice requested this transition and cannot approve"):
        alice.approve(req.id)
    req = bob.approve(req.id, comment="ok")
    assert req.status == "pending" and [a.user for a in req.approvals] == ["bob"]
    assert alice.get_model_version("fraud", "1.0.0").stage == "Development"
    with pytest.raises(Conflict, match="bob already decided"):
        bob.approve(req.id)
    req = carol.approve(req.id, comment="lgtm")
    assert req.status == "applied" and req.resolved_by == "carol"
    assert alice.get_model_version("fraud", "1.0.0").stage == "Production"
    with pytest.raises(Conflict, match="already applied"):
        as_user("dave").approve(req.id)
    assert [r.id for r in alice.list_transition_requests("fraud", status="applied")] == [req.id]
    assert alice.list_transition_requests("fraud") == []


def test_named_approvers_and_rejection(three, as_user):
    alice = three
    alice.set_stage_policy("fraud", "staging", approvals=1, approvers=["ann"])
    req = alice.request_transition("fraud", "1.1.0", "staging")
    with pytest.raises(PermissionDenied, match="the policy names approvers: ann"):
        as_user("bob").approve(req.id)
    with pytest.raises(PermissionDenied):
        as_user("bob").reject(req.id)
    done = as_user("ann").reject(req.id, comment="holdout AUC dropped")
    assert done.status == "rejected" and done.approvals[0].comment == "holdout AUC dropped"
    assert alice.get_model_version("fraud", "1.1.0").stage == "Development"
    # The requester may withdraw a request the same way.
    req = alice.request_transition("fraud", "1.1.0", "staging")
    assert alice.reject(req.id).status == "rejected"
    with pytest.raises(InvalidArgument, match="can never be met"):
        alice.set_stage_policy("fraud", "staging", approvals=2, approvers=["ann"])
    with pytest.raises(NotFound, match="no transition request"):
        alice.approve("nope")


def test_requests_without_a_policy_apply_at_once_and_production_is_exclusive(three):
    c = three
    req = c.request_transition("fraud", "1.0.0", "production")
    assert req.status == "applied"
    c.transition_model_version_stage("fraud", "1.1.0", "production", comment="better")
    states = {mv.version: mv.stage for mv in c.list_model_versions("fraud")}
    assert states == {"1.0.0": "Archived", "1.1.0": "Production", "1.2.0": "Development"}
    # Staging is not exclusive by default: two versions may be there at once.
    c.transition_model_version_stage("fraud", "1.2.0", "staging")
    c.transition_model_version_stage("fraud", "1.0.0", "staging")
    assert [mv.version for mv in c.list_model_versions("fraud", stage="staging")] == ["1.0.0", "1.2.0"]
    with pytest.raises(Conflict, match="already in Staging"):
        c.transition_model_version_stage("fraud", "1.2.0", "Staging")
    with pytest.raises(InvalidArgument, match="unknown stage 'prod'"):
        c.transition_model_version_stage("fraud", "1.2.0", "prod")
    assert cairn.models.get("fraud@production").version == "1.1.0"
    assert cairn.models.get("fraud@staging").version == "1.0.0"  # the latest to enter


def test_aliases(three):
    c = three
    mv = c.set_alias("fraud", "champion", "1.1.0")
    assert mv.aliases == ("champion",)
    assert cairn.models.get("fraud@champion").version == "1.1.0"
    c.set_alias("fraud", "champion", "1.2.0")
    assert c.get_registered_model("fraud").aliases == {"champion": "1.2.0"}
    with pytest.raises(NotFound, match=r"cannot point alias 'champion' at fraud/9.0.0: no such version"):
        c.set_alias("fraud", "champion", "9.0.0")
    assert c.get_registered_model("fraud").aliases == {"champion": "1.2.0"}  # unchanged
    for bad in ("production", "latest", "1.0.0", "has space"):
        with pytest.raises(InvalidArgument, match="alias"):
            c.set_alias("fraud", bad, "1.0.0")
    c.delete_alias("fraud", "champion")
    with pytest.raises(NotFound, match="has no alias 'champion'"):
        c.delete_alias("fraud", "champion")
    with pytest.raises(NotFound):
        cairn.models.load("fraud@champion")


def test_history_time_travel_and_rollback(three, as_user):
    c = three
    t0 = _tick()
    c.transition_model_version_stage("fraud", "1.0.0", "production", comment="first launch")
    c.set_alias("fraud", "champion", "1.0.0")
    t1 = _tick()
    as_user("bob").transition_model_version_stage("fraud", "1.1.0", "production", comment="retrain")
    c.set_alias("fraud", "champion", "1.1.0")
    t2 = _tick()
    assert c.model_version_at("fraud", "production", t0) is None
    assert c.model_version_at("fraud", "production", t1).version == "1.0.0"
    assert c.model_version_at("fraud", "production", t2).version == "1.1.0"
    assert c.model_version_at("fraud", "@champion", t1).version == "1.0.0"
    assert c.model_version_at("fraud", "archived", t2).version == "1.0.0"

    rolled = c.rollback("fraud", "production", reason="latency regression")
    assert (rolled.version, rolled.stage) == ("1.0.0", "Production")
    assert c.get_model_version("fraud", "1.1.0").stage == "Archived"
    t3 = _tick()
    assert c.model_version_at("fraud", "production", t3).version == "1.0.0"
    assert c.model_version_at("fraud", "production", t2).version == "1.1.0"  # the past is kept

    events = c.model_history("fraud")
    last = events[-1]
    assert (last.kind, last.version, last.from_value, last.to_value, last.actor, last.reason) == \
        ("rollback", "1.0.0", "Archived", "Production", "alice", "latency regression")
    assert events[-2].reason == "replaced in Production by 1.0.0: latency regression"
    bob_move = next(e for e in events if e.kind == "stage" and e.version == "1.1.0")
    assert (bob_move.actor, bob_move.reason) == ("bob", "retrain")
    alias_moves = [(e.alias, e.from_value, e.to_value) for e in events if e.kind == "alias"]
    assert alias_moves == [("champion", None, "1.0.0"), ("champion", "1.0.0", "1.1.0")]
    assert isinstance(last.when, dt.datetime)

    # Roll back again: the previous production version is 1.1.0 now; what the registry
    # tells the model page it may offer, default first, is what rollback does.
    assert c._registry.rollback_targets("fraud", "Production") == ["1.1.0"]
    assert c._registry.rollback_targets("fraud", "staging") == []
    assert c.rollback("fraud", reason="undo").version == "1.1.0"
    assert c._registry.rollback_targets("fraud") == ["1.0.0"]
    assert c.rollback("fraud", to="1.0.0", reason="again").version == "1.0.0"
    with pytest.raises(InvalidArgument, match="was never in Production"):
        c.rollback("fraud", to="1.2.0")
    with pytest.raises(Conflict, match="already in Production"):
        c.rollback("fraud", to="1.0.0")


def test_rollback_with_nothing_before_and_approver_only_rollback(three, as_user):
    c = three
    with pytest.raises(Conflict, match="nothing to roll back to"):
        c.rollback("fraud")
    c.transition_model_version_stage("fraud", "1.0.0", "production")
    assert c._registry.rollback_targets("fraud") == []
    with pytest.raises(Conflict, match="nothing to roll back to"):
        c.rollback("fraud")
    c.transition_model_version_stage("fraud", "1.1.0", "production")
    c.set_stage_policy("fraud", "production", approvals=1, approvers=["ann", "bob"])
    with pytest.raises(PermissionDenied, match="only the approvers"):
        c.rollback("fraud", reason="x")
    assert as_user("ann").rollback("fraud", reason="x").version == "1.0.0"


def test_a_failure_mid_transaction_leaves_nothing_half_applied(three, as_user, monkeypatch):
    c = three
    c.transition_model_version_stage("fraud", "1.0.0", "production")
    c.set_stage_policy("fraud", "production", approvals=1)
    req = c.request_transition("fraud", "1.1.0", "production")
    before_audit = len(c.audit_log())
    before_history = len(c.model_history("fraud"))
    real = registry_repo.record
    calls = []

    def failing(conn, actor, action, *a, **kw):
        calls.append(action)
        if action == "model_version.stage" and len(calls) > 2:
            raise RuntimeError("disk full")  # after 1.0.0 was archived, before 1.1.0 moved
        return real(conn, actor, action, *a, **kw)

    monkeypatch.setattr(registry_repo, "record", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        as_user("bob").approve(req.id)
    monkeypatch.setattr(registry_repo, "record", real)
    states = {mv.version: mv.stage for mv in c.list_model_versions("fraud")}
    assert states["1.0.0"] == "Production" and states["1.1.0"] == "Development"
    assert c.get_transition_request(req.id).status == "pending"
    assert c.get_transition_request(req.id).approvals == ()
    assert len(c.audit_log()) == before_audit and len(c.model_history("fraud")) == before_history
    assert as_user("bob").approve(req.id).status == "applied"  # and it works once the fault is gone
