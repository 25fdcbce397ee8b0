"""The gate on a team store: PostgreSQL used directly, as the server's own Client does."""

import pytest

from cairn.gate import GateSpec, check
from conformance_backends import open_backend
from pg_fixtures import pg_database  # noqa: F401  (the session's database)
from world import train

pytestmark = pytest.mark.postgres


@pytest.fixture
def backend(tmp_path, request, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    b = open_backend("postgres", tmp_path, request)
    yield b
    b.close()


@pytest.mark.slow
def test_the_gate_on_postgres(backend):
    alice, bob = backend.client("alice"), backend.client("bob")
    base = train(alice, noise=3.0, seeds=(0, 1, 2))
    alice.transition_model_version_stage("fraud", base.version, "production")
    cand = train(alice, noise=0.5, seeds=(10, 11, 12))
    alice.set_alias("fraud", "candidate", cand.version)
    spec = GateSpec().merged(rules=["val_auc > baseline"], significance=0.05,
                             require=["approval"])
    r = check(alice, "models:/fraud@candidate", spec)
    assert [c.verdict for c in r.checks] == ["pass", "fail"]
    assert r.checks[0].test.p_value < 0.05 and len(r.baseline.runs) == 3
    req = alice.request_transition("fraud", cand.version, "staging")
    alice.set_stage_policy("fraud", "production", approvals=1)
    assert req.status == "applied"  # no policy on Staging: no approval, so still a fail
    assert not check(alice, "fraud@candidate", spec).passed
    req = alice.request_transition("fraud", cand.version, "production")
    bob.approve(req.id)
    r = check(alice, f"fraud/{cand.version}", spec.merged(against="@champion"))
    # Approved, and now in Production itself: against a missing alias there is no baseline.
    assert r.passed and r.baseline is None


@pytest.fixture
def server(tmp_path, request, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    b = open_backend("remote-postgres", tmp_path, request)
    yield b
    b.close()


@pytest.mark.slow
def test_the_gate_through_a_server_as_a_viewer(server):
    """CI holds a viewer's token: that is enough to evaluate every rule and requirement."""
    import numpy as np

    alice, bob, vera = server.client("alice"), server.client("bob"), server.client("vera")
    ds = alice.data.add_array(np.zeros((4, 2)), "transactions")
    base = train(alice, noise=3.0, seeds=(0, 1, 2))
    alice.transition_model_version_stage("fraud", base.version, "production")
    from cairn.registry import signing

    _, pem = signing.create_key_files("default")  # alice's key pair; an admin trusts it
    server.admin.trust_signing_key(pem, "alice")
    cand = train(alice, noise=0.5, seeds=(10, 11, 12), dataset=ds.ref)
    alice.set_alias("fraud", "candidate", cand.version)
    alice.set_stage_policy("fraud", "staging", approvals=1)
    bob.approve(alice.request_transition("fraud", cand.version, "staging").id)
    spec = GateSpec().merged(rules=["val_auc > baseline"], significance=0.05,
                             require=["approval,signature,lineage"])
    r = check(vera, "models:/fraud@candidate", spec)
    assert [(c.kind, c.verdict) for c in r.checks] == [
        ("metric", "pass"), ("approval", "pass"), ("signature", "pass"), ("lineage", "pass")]
    assert r.checks[0].test.n_baseline == 3 and r.checks[3].detail == f"trained on {ds.ref}"
