"""One registry suite, every backend: the registry's behaviour must not depend on where it lives.

The same assertions run on a local store directory, on the server's PostgreSQL store used
directly, and through a real Cairn server (auth on) over HTTP, all through the public
``cairn.Client`` API (see tests/conformance_backends.py for how each backend is opened).
Users: alice registers and requests, bob approves, root reads the audit log.
"""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import pytest

from cairn.errors import (
    AlreadyExists, Conflict, CorruptObject, InvalidArgument, NotFound, PermissionDenied,
)
from conformance_backends import backend_fixture
from pg_fixtures import pg_database  # noqa: F401  (a fixture, used by name)

# The three backends of issue #14, and the team server's own set-up (a server on PostgreSQL)
# as a fourth: the same server code as "remote", so it runs with the slow tests.
BACKENDS = ["local", pytest.param("postgres", marks=pytest.mark.postgres), "remote",
            pytest.param("remote-postgres", marks=[pytest.mark.postgres, pytest.mark.slow])]


backend = backend_fixture(BACKENDS)


@pytest.fixture
def alice(backend):
    return backend.client("alice")


@pytest.fixture
def bob(backend):
    return backend.client("bob")


def _data(seed: int = 0, n: int = 20, features: int = 3):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, features)
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    return X, y


def _fit(C: float = 1.0, seed: int = 0, features: int = 3):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C).fit(*_data(seed, features=features))


def _tree():
    from sklearn.tree import DecisionTreeClassifier

    return DecisionTreeClassifier(max_depth=2, random_state=0).fit(*_data())


def _two_versions(client, name: str = "clf"):
    X, _ = _data()
    v1 = client.register_model(name, _fit(1.0), input_example=X[:3])
    v2 = client.register_model(name, _fit(0.1), input_example=X[:3])
    return v1, v2


# -- registering and semantic versions -------------------------------------------------
def test_versions_are_numbered_and_bumped_by_what_changed(alice):
    X, _ = _data()
    v1 = alice.register_model("clf", _fit(1.0), input_example=X[:3], description="first")
    assert (v1.name, v1.version, v1.bump, v1.stage) == ("clf", "1.0.0", "initial", "Development")
    assert v1.bump_reasons == ("first version of this model",)
    assert (v1.flavor, v1.parent, v1.description, v1.created_by) == ("sklearn", None, "first",
                                                                     "alice")
    assert v1.signature is not None and v1.signature["inputs"]

    # Retrained weights only: PATCH; changed hyperparameters: MINOR; another class or another
    # signature: MAJOR.  The default parent is the latest version.
    v2 = alice.register_model("clf", _fit(1.0, seed=1), input_example=X[:3])
    assert (v2.version, v2.bump, v2.parent) == ("1.0.1", "patch", "clf/1.0.0")
    v3 = alice.register_model("clf", _fit(0.1), input_example=X[:3])
    assert (v3.version, v3.bump) == ("1.1.0", "minor")
    assert any(r.startswith("hyperparameters changed: C 1.0 -> 0.1") for r in v3.bump_reasons)
    v4 = alice.register_model("clf", _tree(), input_example=X[:3])
    assert (v4.version, v4.bump) == ("2.0.0", "major")
    assert any("architecture changed" in r for r in v4.bump_reasons)
    X2, _ = _data(features=2)
    v5 = alice.register_model("clf", _fit(0.1, features=2), input_example=X2[:3])
    assert (v5.version, v5.bump) == ("3.0.0", "major")
    assert any(r.startswith("signature changed") for r in v5.bump_reasons)

    # Explicit numbers and bumps; the suggestion is still the first reason.
    v6 = alice.register_model("clf", _fit(0.1, features=2), version="5.0.0")
    assert (v6.version, v6.bump) == ("5.0.0", "explicit")
    assert v6.bump_reasons[0].startswith("version 5.0.0 set explicitly (suggested: ")
    v7 = alice.register_model("clf", _fit(0.1, features=2), bump="minor")
    assert (v7.version, v7.bump) == ("5.1.0", "minor")
    assert v7.bump_reasons[0].startswith("bump minor requested (suggested: ")
    # Numbers grow from the highest version, even when the parent is an older one.
    v8 = alice.register_model("clf", _fit(1.0, seed=2), input_example=X[:3], parent="1.0.0")
    assert (v8.version, v8.parent) == ("5.1.1", "clf/1.0.0")

    assert [m.version for m in alice.list_model_versions("clf")] == \
        ["1.0.0", "1.0.1", "1.1.0", "2.0.0", "3.0.0", "5.0.0", "5.1.0", "5.1.1"]
    assert alice.get_latest_model_version("clf").version == "5.1.1"
    got = alice.get_model_version("clf", "1.1.0")
    for field in ("version", "digest", "tree_oid", "flavor", "signature", "params",
                  "bump_reasons", "created_at", "created_by", "parent"):
        assert getattr(got, field) == getattr(v3, field), field
    model = alice.get_registered_model("clf")
    assert (model.name, model.latest_version, model.created_by) == ("clf", "5.1.1", "alice")
    assert [m.name for m in alice.list_registered_models()] == ["clf"]
    made = alice.create_registered_model("empty", "nothing yet", tags={"team": "risk"})
    assert (made.name, made.description, dict(made.tags), made.latest_version) == \
        ("empty", "nothing yet", {"team": "risk"}, None)
    assert alice.get_registered_model("empty") == made
    assert alice.list_model_versions("empty") == []
    with pytest.raises(NotFound, match="no versions yet"):
        alice.get_latest_model_version("empty")
    assert [m.name for m in alice.list_registered_models()] == ["clf", "empty"]
    diff = alice.diff_model_versions("clf", "1.0.0", "1.1.0")
    assert diff["suggested_bump"] == "minor" and diff["params"]["C"] == ["1.0", "0.1"]
    assert diff["files"]["changed"] == ["model/model.pkl"]


def test_a_run_gives_the_version_its_lineage(alice):
    X, _ = _data()
    exp = alice.create_experiment("train")
    run = alice.create_run(experiment_id=exp.id, name="fit", params={"C": 1.0})
    alice.log_metric(run.id, "acc", 0.75)
    mv = alice.register_model("clf", _fit(1.0), run_id=run.id, input_example=X[:3],
                              datasets=["transactions@3"])
    assert mv.source_run_id == run.id and mv.lineage["run"]["id"] == run.id
    assert mv.metrics == {"acc": 0.75} and mv.params["C"] == "1.0"
    assert mv.datasets == ({"name": "transactions", "version": "3"},)
    files = {e.path for e in alice.list_artifacts(run.id)}
    assert {"models/clf/1.0.0/cairn-model.json", "models/clf/1.0.0/model/model.pkl"} <= files
    assert [m.uri for m in alice.model_versions_of_run(run.id)] == ["clf/1.0.0"]


def test_load_model_round_trip_and_download(alice, tmp_path):
    X, _ = _data()
    first, second = _fit(1.0), _fit(0.1)
    alice.register_model("clf", first, input_example=X[:3])
    alice.register_model("clf", second, input_example=X[:3])
    for ref, model in (("clf/1.0.0", first), ("models:/clf/1.0.0", first),
                       ("clf@latest", second), ("clf/1.1.0", second)):
        loaded = alice.load_model(ref)
        assert type(loaded) is type(model)
        assert loaded.predict(X).tolist() == model.predict(X).tolist(), ref
        assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X)), ref
    # Loaded again: from the verified cache, the same model.
    assert alice.load_model("clf/1.0.0").predict(X).tolist() == first.predict(X).tolist()
    assert alice.load_model("clf/1.0.0", check_inputs=X[:5]) is not None
    with pytest.raises(InvalidArgument, match="do not match the signature"):
        alice.load_model("clf/1.0.0", check_inputs=X[:5, :2])
    out = alice.download_model("clf/1.0.0", tmp_path / "dl")
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == \
        ["cairn-model.json", "model/model.pkl"]


# -- aliases -------------------------------------------------------------------------------
def test_aliases_set_move_resolve_and_delete(alice):
    v1, v2 = _two_versions(alice)
    mv = alice.set_alias("clf", "champion", "1.0.0")
    assert mv.version == "1.0.0" and mv.aliases == ("champion",)
    assert alice.resolve_model("clf@champion").version == "1.0.0"
    assert alice.resolve_model("models:/clf@champion").version == "1.0.0"
    assert alice.get_registered_model("clf").aliases == {"champion": "1.0.0"}
    assert alice.get_model_version("clf", "1.0.0").aliases == ("champion",)

    # Moving it: it now names 1.1.0, and 1.0.0 has none.
    assert alice.set_alias("clf", "champion", "1.1.0").aliases == ("champion",)
    alice.set_alias("clf", "challenger", "1.0.0")
    assert alice.resolve_model("clf@champion").version == "1.1.0"
    assert alice.get_registered_model("clf").aliases == {"champion": "1.1.0",
                                                          "challenger": "1.0.0"}
    assert alice.get_model_version("clf", "1.0.0").aliases == ("challenger",)
    X, _ = _data()
    assert alice.load_model("clf@champion").predict(X).tolist() == \
        _fit(0.1).predict(X).tolist()

    # Pointing at a missing version fails and changes nothing.
    with pytest.raises(NotFound):
        alice.set_alias("clf", "champion", "9.9.9")
    assert alice.resolve_model("clf@champion").version == "1.1.0"

    alias_events = [(e.kind, e.alias, e.from_value, e.to_value)
                    for e in alice.model_history("clf") if e.kind.startswith("alias")]
    assert alias_events == [("alias", "champion", None, "1.0.0"),
                            ("alias", "champion", "1.0.0", "1.1.0"),
                            ("alias", "challenger", None, "1.0.0")]
    now = dt.datetime.now()
    assert alice.model_version_at("clf", "@champion", now).version == "1.1.0"
    assert alice.model_version_at("clf", "@ghost", now) is None
    assert alice.model_version_at("clf", "@champion", 0) is None
    alice.delete_alias("clf", "champion")
    assert alice.model_version_at("clf", "@champion", dt.datetime.now()) is None
    with pytest.raises(NotFound, match="no alias 'champion'"):
        alice.resolve_model("clf@champion")
    with pytest.raises(NotFound):
        alice.delete_alias("clf", "champion")
    assert alice.get_registered_model("clf").aliases == {"challenger": "1.0.0"}
    assert alice.model_history("clf")[-1].kind == "alias_deleted"
    assert v1.version == "1.0.0" and v2.version == "1.1.0"


# -- stages, history, time travel ------------------------------------------------------
def test_stage_transitions_and_their_history(alice):
    _two_versions(alice)
    t0 = dt.datetime.now()
    time.sleep(0.01)
    mv = alice.transition_model_version_stage("clf", "1.0.0", "staging", "first try")
    assert mv.stage == "Staging"
    assert alice.resolve_model("clf@staging").version == "1.0.0"
    assert alice.resolve_model("clf@Staging").version == "1.0.0"  # case-insensitive
    assert alice.transition_model_version_stage("clf", "1.0.0", "Production").stage == \
        "Production"
    time.sleep(0.01)
    t1 = dt.datetime.now()
    time.sleep(0.01)
    # Production holds one version: the next one archives it.
    alice.transition_model_version_stage("clf", "1.1.0", "PRODUCTION", "better")
    assert alice.get_model_version("clf", "1.0.0").stage == "Archived"
    assert alice.resolve_model("clf@production").version == "1.1.0"
    assert [m.version for m in alice.list_model_versions("clf", stage="production")] == ["1.1.0"]
    assert [m.version for m in alice.list_model_versions("clf", stage="archived")] == ["1.0.0"]
    assert alice.get_registered_model("clf").stages.get("Production") == ("1.1.0",)
    with pytest.raises(Conflict, match="already in Production"):
        alice.transition_model_version_stage("clf", "1.1.0", "production")
    # Staging is not exclusive: two versions at once.
    alice.transition_model_version_stage("clf", "1.0.0", "staging")
    alice.register_model("clf", _fit(0.01))
    alice.transition_model_version_stage("clf", "1.2.0", "staging")
    assert [m.version for m in alice.list_model_versions("clf", stage="staging")] == \
        ["1.0.0", "1.2.0"]
    assert alice.resolve_model("clf@staging").version == "1.2.0"  # the last to enter

    moves = [(e.version, e.kind, e.from_value, e.to_value, e.actor)
             for e in alice.model_history("clf") if e.kind in ("register", "stage")]
    assert moves == [
        ("1.0.0", "register", None, "Development", "alice"),
        ("1.1.0", "register", None, "Development", "alice"),
        ("1.0.0", "stage", "Development", "Staging", "alice"),
        ("1.0.0", "stage", "Staging", "Production", "alice"),
        ("1.0.0", "stage", "Production", "Archived", "alice"),
        ("1.1.0", "stage", "Development", "Production", "alice"),
        ("1.0.0", "stage", "Archived", "Staging", "alice"),
        ("1.2.0", "register", None, "Development", "alice"),
        ("1.2.0", "stage", "Development", "Staging", "alice"),
    ]
    assert [e.kind for e in alice.model_history("clf", "1.1.0")] == ["register", "stage"]
    assert alice.model_history("clf", "1.1.0")[-1].reason == "better"
    assert all(isinstance(e.when, dt.datetime) for e in alice.model_history("clf"))

    # What was live when.
    assert alice.model_version_at("clf", "production", t0) is None
    assert alice.model_version_at("clf", "production", t1).version == "1.0.0"
    assert alice.model_version_at("clf", "production", dt.datetime.now()).version == "1.1.0"
    assert alice.model_version_at("clf", "staging", t1) is None
    assert alice.model_version_at("clf", "production", 0) is None


# -- approvals -----------------------------------------------------------------------------
def test_approval_workflow_request_approve_reject_and_withdraw(alice, bob):
    _two_versions(alice)
    policy = alice.set_stage_policy("clf", "production", approvals=1)
    assert (policy.stage, policy.approvals, policy.approvers, policy.exclusive) == \
        ("Production", 1, None, True)
    assert policy in alice.get_stage_policies("clf")

    # No policy on Staging: a request is applied at once.
    done = alice.request_transition("clf", "1.0.0", "staging", "try it")
    assert (done.status, done.from_stage, done.to_stage) == ("applied", "Development", "Staging")
    assert alice.get_model_version("clf", "1.0.0").stage == "Staging"

    # Production needs one approval, never the requester's own.
    with pytest.raises(PermissionDenied, match="approval"):
        alice.transition_model_version_stage("clf", "1.0.0", "production")
    req = alice.request_transition("clf", "1.0.0", "production", "beats the baseline")
    assert (req.status, req.requested_by, req.comment, req.version) == \
        ("pending", "alice", "beats the baseline", "1.0.0")
    with pytest.raises(Conflict, match="already pending"):
        alice.request_transition("clf", "1.0.0", "production")
    with pytest.raises(PermissionDenied, match="cannot approve"):
        alice.approve(req.id)
    assert alice.get_transition_request(req.id).status == "pending"
    assert [r.id for r in alice.list_transition_requests("clf")] == [req.id]
    assert [r.id for r in alice.list_transition_requests()] == [req.id]
    applied = bob.approve(req.id, "lgtm")
    assert (applied.status, applied.resolved_by) == ("applied", "bob")
    assert [(a.user, a.decision, a.comment) for a in applied.approvals] == \
        [("bob", "approve", "lgtm")]
    assert alice.resolve_model("clf@production").version == "1.0.0"
    with pytest.raises(Conflict, match="already applied"):
        bob.approve(req.id)

    # An approver rejects: nothing moves.
    req2 = alice.request_transition("clf", "1.1.0", "production", "again")
    rejected = bob.reject(req2.id, "not convinced")
    assert (rejected.status, rejected.resolved_by) == ("rejected", "bob")
    assert alice.get_model_version("clf", "1.1.0").stage == "Development"
    with pytest.raises(Conflict, match="already rejected"):
        bob.approve(req2.id)

    # The requester withdraws her own request.
    req3 = alice.request_transition("clf", "1.1.0", "production")
    withdrawn = alice.reject(req3.id, "not yet")
    assert (withdrawn.status, withdrawn.resolved_by) == ("rejected", "alice")
    assert alice.get_model_version("clf", "1.1.0").stage == "Development"
    assert alice.list_transition_requests("clf") == []
    assert [(r.id, r.status) for r in alice.list_transition_requests("clf", status=None)] == \
        [(done.id, "applied"), (req.id, "applied"), (req2.id, "rejected"), (req3.id, "rejected")]
    assert [r.id for r in alice.list_transition_requests("clf", status="rejected")] == \
        [req2.id, req3.id]

    decisions = [(e.kind, e.actor, e.version, e.request_id)
                 for e in alice.model_history("clf")
                 if e.kind in ("request", "approve", "reject")]
    assert decisions == [("request", "alice", "1.0.0", done.id),
                         ("request", "alice", "1.0.0", req.id),
                         ("approve", "bob", "1.0.0", req.id),
                         ("request", "alice", "1.1.0", req2.id),
                         ("reject", "bob", "1.1.0", req2.id),
                         ("request", "alice", "1.1.0", req3.id),
                         ("reject", "alice", "1.1.0", req3.id)]


def test_a_policy_naming_approvers_and_needing_two(alice, bob, backend):
    _two_versions(alice)
    root = backend.client("root")
    with pytest.raises(InvalidArgument, match="can never be met"):
        alice.set_stage_policy("clf", "production", approvals=2, approvers=["bob"])
    pol = alice.set_stage_policy("clf", "production", approvals=2, approvers=["bob", "root"])
    assert pol.approvers == ("bob", "root") and pol.approvals == 2
    req = alice.request_transition("clf", "1.0.0", "production")
    assert bob.approve(req.id).status == "pending"  # one of two
    with pytest.raises(Conflict, match="already decided"):
        bob.approve(req.id)
    done = root.approve(req.id)
    assert done.status == "applied" and [a.user for a in done.approvals] == ["bob", "root"]
    assert alice.get_model_version("clf", "1.0.0").stage == "Production"


# -- rollback ------------------------------------------------------------------------------
def test_rollback_puts_back_the_previous_version(alice):
    _two_versions(alice)
    alice.register_model("clf", _fit(0.01))
    with pytest.raises(Conflict, match="nothing to roll back to"):
        alice.rollback("clf", reason="too early")
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        alice.transition_model_version_stage("clf", version, "production")
    back = alice.rollback("clf", "production", reason="latency regression")
    assert (back.version, back.stage) == ("1.1.0", "Production")
    assert alice.get_model_version("clf", "1.2.0").stage == "Archived"
    assert alice.resolve_model("clf@production").version == "1.1.0"
    last = alice.model_history("clf")[-1]
    assert (last.kind, last.version, last.to_value, last.reason) == \
        ("rollback", "1.1.0", "Production", "latency regression")
    X, _ = _data()
    assert alice.load_model("clf@production").predict(X).tolist() == \
        _fit(0.1).predict(X).tolist()

    # To a named version that was there before; not to one that never was or is there now.
    assert alice.rollback("clf", to="1.0.0", reason="back to the start").version == "1.0.0"
    assert [m.version for m in alice.list_model_versions("clf", stage="production")] == ["1.0.0"]
    with pytest.raises(Conflict, match="already in Production"):
        alice.rollback("clf", to="1.0.0")
    alice.register_model("clf", _fit(0.001))
    with pytest.raises(InvalidArgument, match="never in Production"):
        alice.rollback("clf", to="1.3.0")
    assert alice.model_version_at("clf", "production", dt.datetime.now()).version == "1.0.0"


# -- integrity and audit -------------------------------------------------------------------
def test_verification_finds_a_flipped_byte(alice, backend):
    X, _ = _data()
    alice.register_model("clf", _fit(1.0), input_example=X[:3])
    alice.register_model("clf", _fit(0.1), input_example=X[:3])
    reports = alice.verify_model("clf")
    assert [(r.version, r.ok, r.files) for r in reports] == [("1.0.0", True, 2), ("1.1.0", True, 2)]
    assert [r.version for r in alice.verify_model("clf", "1.1.0")] == ["1.1.0"]

    mv = alice.get_model_version("clf", "1.1.0")
    pkl = _model_pickle_oid(alice, mv)
    backend.corrupt(pkl)
    report = alice.verify_model("clf", "1.1.0")[0]
    assert not report.ok
    assert report.problems[0].startswith("model/model.pkl: object ")
    assert alice.verify_model("clf", "1.0.0")[0].ok
    with pytest.raises(CorruptObject, match=r"clf/1.1.0: file model/model.pkl is corrupt"):
        alice.load_model("clf/1.1.0")
    assert alice.load_model("clf/1.0.0").predict(X).tolist() == _fit(1.0).predict(X).tolist()


def _model_pickle_oid(client, mv) -> str:
    """The object holding the version's model/model.pkl."""
    return next(e.digest for e in client.store.objects.get_tree(mv.tree_oid)
                if e.path == "model/model.pkl")


def test_every_change_is_in_a_verifiable_audit_chain(alice, bob, backend):
    _two_versions(alice)
    alice.set_stage_policy("clf", "production", approvals=1)
    req = alice.request_transition("clf", "1.0.0", "production")
    bob.approve(req.id)
    req = alice.request_transition("clf", "1.1.0", "production")
    bob.approve(req.id)
    alice.set_alias("clf", "champion", "1.1.0")
    alice.delete_alias("clf", "champion")
    alice.rollback("clf", reason="regression")
    backend.settle()

    root = backend.admin
    report = root.verify_audit_log()
    assert report.ok, report.problems
    events = root.audit_log(target="model:clf")
    assert report.checked >= len(events) > 0
    made = root.audit_log(target="model:clf", action="model_version.create")
    assert sorted((e.after["version"], e.actor) for e in made) == \
        [("1.0.0", "alice"), ("1.1.0", "alice")]
    actions = {e.action for e in root.audit_log()}
    for action in ("model_version.create", "model.policy", "transition.request",
                   "transition.approve", "model_version.stage", "model.alias",
                   "model.alias_delete", "model.rollback"):
        assert action in actions, action
    approvals = root.audit_log(action="transition.approve")
    assert [e.actor for e in approvals] == ["bob", "bob"]
    rollback = root.audit_log(action="model.rollback")
    assert [(e.target, e.after["stage"], e.after["reason"]) for e in rollback] == \
        [("model:clf/1.0.0", "Production", "regression")]
    seqs = [e.seq for e in root.audit_log()]  # newest first
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == len(seqs)


# -- errors: the same class on every backend, and nothing changes --------------------------
def _error_cases(c):
    model = _fit(1.0)
    return [
        # unknown models, versions, aliases, requests
        (NotFound, "no registered model named 'nope'", lambda: c.get_registered_model("nope")),
        (NotFound, None, lambda: c.get_model_version("clf", "9.9.9")),
        (NotFound, None, lambda: c.get_model_version("nope", "1.0.0")),
        (NotFound, None, lambda: c.list_model_versions("nope")),
        (NotFound, None, lambda: c.get_latest_model_version("nope")),
        (NotFound, None, lambda: c.resolve_model("nope@latest")),
        (NotFound, None, lambda: c.resolve_model("clf/9.9.9")),
        (NotFound, "no alias 'ghost'", lambda: c.resolve_model("clf@ghost")),
        (NotFound, "no version in Production", lambda: c.resolve_model("clf@production")),
        (NotFound, None, lambda: c.load_model("nope/1.0.0")),
        (NotFound, None, lambda: c.load_model("clf@ghost")),
        (NotFound, None, lambda: c.model_history("nope")),
        (NotFound, None, lambda: c.get_stage_policies("nope")),
        (NotFound, None, lambda: c.list_transition_requests("nope")),
        (NotFound, None, lambda: c.transition_model_version_stage("clf", "9.9.9", "staging")),
        (NotFound, None, lambda: c.transition_model_version_stage("nope", "1.0.0", "staging")),
        (NotFound, None, lambda: c.request_transition("clf", "9.9.9", "staging")),
        (NotFound, None, lambda: c.set_alias("nope", "champion", "1.0.0")),
        (NotFound, None, lambda: c.set_alias("clf", "champion", "9.9.9")),
        (NotFound, None, lambda: c.delete_alias("clf", "ghost")),
        (NotFound, None, lambda: c.approve("000000000000")),
        (NotFound, None, lambda: c.reject("000000000000")),
        (NotFound, None, lambda: c.get_transition_request("000000000000")),
        (NotFound, None, lambda: c.rollback("nope")),
        (NotFound, None, lambda: c.rollback("clf", to="9.9.9")),
        (NotFound, None, lambda: c.model_version_at("nope", "production", 0)),
        (NotFound, None, lambda: c.verify_model("nope")),
        (NotFound, None, lambda: c.diff_model_versions("clf", "1.0.0", "9.9.9")),
        (NotFound, None, lambda: c.register_model("clf", model, parent="9.9.9")),
        (NotFound, None, lambda: c.register_model("clf", model, run_id="f" * 32)),
        # what exists already
        (AlreadyExists, "immutable", lambda: c.register_model("clf", model, version="1.0.0")),
        (AlreadyExists, None, lambda: c.create_registered_model("clf")),
        # bad names, versions, stages, aliases and options
        (InvalidArgument, "model name", lambda: c.register_model("bad name", model)),
        (InvalidArgument, "model name", lambda: c.register_model("-clf", model)),
        (InvalidArgument, "model name", lambda: c.register_model("a/b", model)),
        (InvalidArgument, "model name", lambda: c.register_model("", model)),
        (InvalidArgument, "model name", lambda: c.create_registered_model("x@y")),
        (InvalidArgument, "not a semantic version", lambda: c.get_model_version("clf", "1.0")),
        (InvalidArgument, "not a semantic version", lambda: c.get_model_version("clf", "v1.0.0")),
        (InvalidArgument, "not a semantic version",
         lambda: c.get_model_version("clf", "1.0.0-rc1")),
        (InvalidArgument, "not a semantic version", lambda: c.get_model_version("clf", "01.0.0")),
        (InvalidArgument, "not a semantic version",
         lambda: c.register_model("clf", model, version="2")),
        (InvalidArgument, "not a semantic version", lambda: c.resolve_model("clf/latest")),
        (InvalidArgument, "does not say which version", lambda: c.resolve_model("clf")),
        (InvalidArgument, "does not say which version", lambda: c.load_model("clf")),
        (InvalidArgument, "version= or bump=",
         lambda: c.register_model("clf", model, version="2.0.0", bump="major")),
        (InvalidArgument, "bump must be", lambda: c.register_model("clf", model, bump="huge")),
        (InvalidArgument, "unknown stage",
         lambda: c.transition_model_version_stage("clf", "1.0.0", "prod")),
        (InvalidArgument, "unknown stage", lambda: c.request_transition("clf", "1.0.0", "live")),
        (InvalidArgument, "unknown stage", lambda: c.list_model_versions("clf", stage="prod")),
        (InvalidArgument, "unknown stage", lambda: c.set_stage_policy("clf", "prod", 1)),
        (InvalidArgument, "unknown stage", lambda: c.rollback("clf", "prod")),
        (InvalidArgument, "unknown stage", lambda: c.model_version_at("clf", "prod", 0)),
        (InvalidArgument, "approvals must be",
         lambda: c.set_stage_policy("clf", "production", approvals=-1)),
        (InvalidArgument, "status must be",
         lambda: c.list_transition_requests("clf", status="bogus")),
        (InvalidArgument, "when must be",
         lambda: c.model_version_at("clf", "production", "yesterday")),
        (InvalidArgument, "reserved", lambda: c.set_alias("clf", "latest", "1.0.0")),
        (InvalidArgument, "reserved", lambda: c.set_alias("clf", "production", "1.0.0")),
        (InvalidArgument, "alias", lambda: c.set_alias("clf", "1champion", "1.0.0")),
        (InvalidArgument, "alias", lambda: c.set_alias("clf", "bad alias", "1.0.0")),
        (InvalidArgument, "signature must be",
         lambda: c.register_model("clf", model, signature={"outputs": []})),
        (InvalidArgument, "flavor", lambda: c.register_model("clf", object(), flavor="sklearn")),
        # workflow conflicts
        (Conflict, "already in Development",
         lambda: c.transition_model_version_stage("clf", "1.0.0", "development")),
        (Conflict, "already in Development",
         lambda: c.request_transition("clf", "1.0.0", "development")),
        (Conflict, "nothing to roll back to", lambda: c.rollback("clf")),
    ]


def test_errors_are_the_same_classes_on_every_backend_and_change_nothing(alice, backend):
    X, _ = _data()
    alice.register_model("clf", _fit(1.0), input_example=X[:3])
    backend.settle()
    before_audit = backend.admin.audit_log(target="model:clf")
    before = [(m.version, m.stage, m.digest) for m in alice.list_model_versions("clf")]
    failures = []
    for cls, message, call in _error_cases(alice):
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - compared below
            if type(exc) is not cls and not isinstance(exc, cls):
                failures.append(f"{_src(call)}: {cls.__name__} expected, got {type(exc).__name__}: {exc}")
            elif message is not None and message not in str(exc):
                failures.append(f"{_src(call)}: {cls.__name__} without {message!r}: {exc}")
        else:
            failures.append(f"{_src(call)}: {cls.__name__} expected, nothing raised")
    assert failures == []
    # Policies are for a model's admins (on a server: its creator and server admins).
    with pytest.raises(NotFound):
        backend.admin.set_stage_policy("nope", "production", approvals=1)
    # Nothing above registered, moved or recorded anything.
    assert [(m.version, m.stage, m.digest) for m in alice.list_model_versions("clf")] == before
    assert [m.name for m in alice.list_registered_models()] == ["clf"]
    model = alice.get_registered_model("clf")
    assert model.aliases == {} and model.latest_version == "1.0.0"
    assert alice.get_stage_policies("clf") == [] or all(
        p.approvals == 0 for p in alice.get_stage_policies("clf"))
    assert alice.list_transition_requests("clf", status=None) == []
    assert [e.kind for e in alice.model_history("clf")] == ["create", "register"]
    backend.settle()
    # (Objects a refused registration stored first may stay, unreferenced: as documented.)
    assert backend.admin.audit_log(target="model:clf") == before_audit
    assert not [e for e in backend.admin.audit_log() if e.target.startswith("model:nope")]


def test_approving_own_request_and_bad_approvers_are_refused(alice, bob):
    _two_versions(alice)
    alice.set_stage_policy("clf", "production", approvals=1, approvers=["bob"])
    req = alice.request_transition("clf", "1.0.0", "production")
    with pytest.raises(PermissionDenied, match="cannot approve"):
        alice.approve(req.id)
    assert alice.reject(req.id).status == "rejected"  # withdrawing is allowed
    req = alice.request_transition("clf", "1.1.0", "production")
    assert bob.approve(req.id).status == "applied"
    with pytest.raises(PermissionDenied, match="approvers"):
        alice.rollback("clf", to="1.0.0")


def test_names_and_ids_with_odd_characters_are_simply_not_found(alice):
    """A name with '/' (or an empty one) names no model: NotFound, as for any unknown name."""
    alice.register_model("clf", _fit(1.0))
    calls = [lambda: alice.get_registered_model("a/b"),
             lambda: alice.get_registered_model(""),
             lambda: alice.get_model_version("a/b", "1.0.0"),
             lambda: alice.list_model_versions("a/b"),
             lambda: alice.model_history("a/b"),
             lambda: alice.set_alias("a/b", "champion", "1.0.0"),
             lambda: alice.delete_alias("a/b", "champion"),
             lambda: alice.transition_model_version_stage("a/b", "1.0.0", "staging"),
             lambda: alice.get_transition_request("a/b"),
             lambda: alice.approve(""),
             # more names and ids no model or request can have, through every other call
             lambda: alice.get_registered_model(".."),
             lambda: alice.get_registered_model("x" * 300),
             lambda: alice.get_registered_model("a b?c#d"),
             lambda: alice.get_stage_policies("a/b"),
             lambda: alice.set_stage_policy("a/b", "production", approvals=1),
             lambda: alice.list_transition_requests("a/b"),
             lambda: alice.request_transition("a/b", "1.0.0", "staging"),
             lambda: alice.rollback("a/b"),
             lambda: alice.model_version_at("a/b", "production", 0),
             lambda: alice.reject("a/b"),
             lambda: alice.get_transition_request("x" * 100),
             lambda: alice.delete_alias("clf", "a/b"),
             lambda: alice.delete_alias("clf", "production"),
             lambda: alice.delete_alias("a/b", "a/b"),
             lambda: alice.model_versions_of_run("a/b")]
    failures = []
    for call in calls:
        try:
            call()
        except NotFound:
            pass
        except Exception as exc:  # noqa: BLE001 - any other error is a failure to report
            failures.append(f"{_src(call)}: NotFound expected, got {type(exc).__name__}: {exc}")
        else:
            failures.append(f"{_src(call)}: NotFound expected, nothing raised")
    assert failures == []
    assert [m.name for m in alice.list_registered_models()] == ["clf"]


def test_model_versions_of_an_unknown_run(alice):
    exp = alice.create_experiment("e")
    run = alice.create_run(experiment_id=exp.id, name="r")
    assert alice.model_versions_of_run(run.id) == []
    with pytest.raises(NotFound):
        alice.model_versions_of_run("f" * 32)


def _src(call) -> str:
    """The case's lambda as written, to name it in a failure."""
    import inspect

    text = " ".join(inspect.getsource(call).split())
    return text[text.index("lambda"):].rstrip("),")
