"""cairn.registry.compliance: one definition of approval, signature and lineage."""

from cairn.registry.compliance import approval_problem, approvals
from cairn.registry.entities import Approval, TransitionRequest


def req(version, to, status, *decisions):
    return TransitionRequest(f"r-{version}-{to}-{status}", "m", version, "Development", to,
                             status, "", "alice", 0,
                             approvals=tuple(Approval(u, d, "", 1) for u, d in decisions))


REQUESTS = [
    req("1.0.0", "Production", "applied", ("bob", "approve")),
    req("1.1.0", "Production", "applied"),  # no policy: applied with no approval
    req("1.2.0", "Production", "rejected", ("bob", "approve"), ("carol", "reject")),
    req("1.3.0", "Production", "pending", ("bob", "approve")),
    req("1.4.0", "Staging", "applied", ("bob", "approve")),
]


def test_approvals_by_default_are_applied_moves_to_production():
    assert set(approvals(REQUESTS)) == {"1.0.0"}
    assert approval_problem(REQUESTS, "1.0.0") is None
    assert approval_problem(REQUESTS, "1.1.0") == "no approved request to move it to Production"


def test_pending_and_other_stages_when_asked():
    found = approvals(REQUESTS, stages=("staging", "production"), pending=True)
    assert set(found) == {"1.0.0", "1.3.0", "1.4.0"}
    [(r, a)] = found["1.3.0"]
    assert (r.status, a.user) == ("pending", "bob")
    assert approval_problem(REQUESTS, "1.2.0", stages=("Staging", "Production"), pending=True) \
        == "no approved request to move it to Staging or Production"


def test_lineage_by_role(client):
    import numpy as np

    from cairn.registry.compliance import data_inputs, lineage_problem
    from world import train

    ds = client.data.add_array(np.zeros((4, 2)), "transactions")
    t = train(client, noise=0.5, seeds=(1,), dataset=ds.ref)  # logged with role "train"
    mv = client.get_model_version("fraud", t.version)
    assert data_inputs(client, mv) == data_inputs(client, mv, "train") == [ds.ref]
    assert data_inputs(client, mv, "val") == []
    assert lineage_problem(client, mv, "train") is None
    assert lineage_problem(client, mv, "val") == (
        f"its run {t.run_ids[0]} logged no data set input with role 'val' "
        "(cairn.log_input(ref, role='val')) and it lists none")
    alone = client.register_model("fraud", fit_only(), datasets=[f"{ds.ref}"])
    assert data_inputs(client, alone) == [ds.ref]  # listed at registration, no run
    bare = client.register_model("fraud", fit_only())
    assert lineage_problem(client, bare).startswith("it was registered without a source run")


def fit_only():
    from world import fit

    return fit(0, 1.0)[0]


def test_an_approval_by_the_requester_does_not_count():
    # alice requested; her own "approve" (written around the registry's refusal) is not one.
    own = [req("2.0.0", "Production", "applied", ("alice", "approve"))]
    assert approvals(own) == {}
    assert approval_problem(own, "2.0.0") == "no approved request to move it to Production"
    both = [req("2.0.0", "Production", "applied", ("alice", "approve"), ("bob", "approve"))]
    [(_, a)] = approvals(both)["2.0.0"]
    assert a.user == "bob"
