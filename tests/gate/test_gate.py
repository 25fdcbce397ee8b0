"""cairn.gate.check on prepared candidates: real scikit-learn models registered through
the real registry from real runs, on a local store."""

import pytest

import cairn
from cairn.errors import InvalidArgument, NotFound
from cairn.gate import GateSpec, check
from world import train


def spec(**kw):
    return GateSpec().merged(**kw)


def only(result, kind="metric"):
    [c] = [c for c in result.checks if c.kind == kind]
    return c


def test_a_better_candidate_passes(client, fraud):
    base, cand = fraud
    r = check(client, "models:/fraud@candidate",
              spec(rules=["val_auc >= baseline - 0.005", "val_auc >= 0.9"]))
    assert r.passed and r.exit_code == 0
    assert (r.candidate.version, r.baseline.version) == (cand.version, base.version)
    first = r.checks[0]
    assert first.verdict == "pass" and first.candidate == pytest.approx(cand.aucs[0])
    assert first.baseline == pytest.approx(base.aucs[0])
    assert first.threshold == pytest.approx(base.aucs[0] - 0.005)
    assert first.candidate_source == first.baseline_source == "version"


def test_a_worse_candidate_fails_naming_the_rule_and_the_numbers(client, fraud):
    worse = train(client, noise=6.0, seeds=(40,))
    client.set_alias("fraud", "candidate", worse.version)
    r = check(client, "fraud@candidate", spec(rules=["val_auc >= baseline - 0.005"]))
    assert not r.passed and r.exit_code == 1
    [c] = r.failures
    assert c.rule == "val_auc >= baseline - 0.005"
    assert c.reason == (f"val_auc {worse.aucs[0]:.6g} is not >= "
                        f"{fraud[0].aucs[0] - 0.005:.6g} (baseline {fraud[0].aucs[0]:.6g})")
    assert "fails 1 of 1 checks" in r.summary()


def test_significance_across_seeds(client, fraud):
    """Three seeds a side: the clearly better candidate passes a one-sided test; one whose
    registered value is better by seed noise alone does not pass `> baseline`."""
    base, cand = fraud
    r = check(client, "fraud@candidate", spec(rules=["val_auc > baseline"], significance=0.05))
    c = only(r)
    assert c.verdict == "pass", c.reason
    assert c.test.p_value < 0.05 and (c.test.n_candidate, c.test.n_baseline) == (3, 3)
    assert c.test.alternative == "greater" and c.test.method == "welch"
    assert set(r.candidate.runs) == set(cand.run_ids) and set(r.baseline.runs) == set(base.run_ids)

    lucky = train(client, noise=3.0, C=0.5, seeds=(6, 7, 8))
    assert lucky.aucs[0] > base.aucs[0]  # the registered value alone says "better"
    client.set_alias("fraud", "candidate", lucky.version)
    plain = check(client, "fraud@candidate", spec(rules=["val_auc > baseline"]))
    assert plain.passed
    r = check(client, "fraud@candidate", spec(rules=["val_auc > baseline"], significance=0.05))
    c = only(r)
    assert c.verdict == "fail" and c.test.p_value > 0.05
    assert c.reason.startswith("not significant: the candidate's val_auc is not above the "
                               "threshold beyond seed noise (one-sided welch p = ")
    assert "3 vs 3 runs" in c.reason


def test_lower_is_better_rules_test_the_other_side(client):
    base = train(client, noise=3.0, seeds=(0, 1, 2),
                 per_run=[{"loss": 1.0}, {"loss": 1.1}, {"loss": 0.9}])
    client.transition_model_version_stage("fraud", base.version, "production")
    cand = train(client, noise=0.5, seeds=(10, 11, 12),
                 per_run=[{}, {"loss": 0.52}, {"loss": 0.48}], late={"loss": 0.5})
    r = check(client, f"fraud/{cand.version}",
              spec(rules=["loss <= baseline * 0.9"], significance=0.05))
    c = only(r)
    assert c.verdict == "pass" and c.test.alternative == "less" and c.test.p_value < 0.01
    assert (c.candidate, c.baseline, c.threshold) == (0.5, 1.0, 0.9)
    # The candidate's loss was logged by its run after registration: that value is used.
    assert c.candidate_source == f"run {cand.run_ids[0]}" and c.baseline_source == "version"


def test_one_run_a_side_the_threshold_alone_decides(client):
    base = train(client, noise=3.0, seeds=(0,))
    client.transition_model_version_stage("fraud", base.version, "production")
    cand = train(client, noise=0.5, seeds=(10,))
    ref = f"fraud/{cand.version}"
    r = check(client, ref, spec(rules=["val_auc > baseline"], significance=0.05))
    c = only(r)
    assert c.verdict == "pass" and c.test is None
    assert c.test_note == "not applicable (1 vs 1 runs)"
    r = check(client, ref, spec(rules=["val_auc > baseline"], significance=0.05,
                                require_significance=True))
    assert only(r).verdict == "fail"
    assert only(r).reason == "not applicable (1 vs 1 runs) (--require-significance)"


def test_runs_without_a_seed_param_are_not_replicates(client):
    exp = client.get_or_create_experiment("fraud-training")
    from world import fit

    versions = []
    for noise in (3.0, 0.5):
        for _ in range(2):  # identical params, but no seed: not taken for seed runs
            model, auc, X = fit(0, noise)
            run = client.create_run(exp.id)
            client.log_batch(run.id, params={"noise": noise})
            client.log_metric(run.id, "val_auc", auc)
            client.set_terminated(run.id)
        versions.append(client.register_model("fraud", model, run_id=run.id).version)
    client.transition_model_version_stage("fraud", versions[0], "production")
    r = check(client, f"fraud/{versions[1]}", spec(rules=["val_auc > baseline"],
                                                   significance=0.05))
    assert only(r).test_note == ("not applicable (1 vs 1 runs; candidate: its run has no param "
                                 "seed; baseline: its run has no param seed)")


def test_rules_of_every_shape(client, fraud):
    train(client, noise=0.5, seeds=(15,), late={"latency_ms": 12.0})
    client.set_alias("fraud", "candidate", "1.2.0")
    r = check(client, "fraud@candidate", spec(rules=[
        "val_auc >= 0.5", "latency_ms <= baseline * 1.1", "val_auc == 0.5", "missing >= 1",
        "val_auc >= 1 / (baseline - baseline)"]))
    by = {c.rule: c for c in r.checks}
    assert by["val_auc >= 0.5"].verdict == "pass"
    assert by["latency_ms <= baseline * 1.1"].reason == \
        "the baseline fraud 1.0.0 has no metric 'latency_ms' (neither registered nor logged by its run)"
    assert by["val_auc == 0.5"].verdict == "fail"
    assert by["missing >= 1"].reason == \
        "the candidate fraud 1.2.0 has no metric 'missing' (neither registered nor logged by its run)"
    assert "divides by zero" in by["val_auc >= 1 / (baseline - baseline)"].reason


def test_no_baseline_skips_relative_rules_unless_required(client):
    first = train(client, noise=0.5, seeds=(10,))
    rules = ["val_auc >= baseline - 0.005", "val_auc >= 0.9"]
    r = check(client, f"fraud/{first.version}", spec(rules=rules))
    assert r.passed and r.baseline is None
    assert [(c.kind, c.verdict) for c in r.checks] == [
        ("baseline", "skipped"), ("metric", "skipped"), ("metric", "pass")]
    assert r.checks[0].reason.startswith("no baseline: fraud has no version in Production")
    r = check(client, f"fraud/{first.version}", spec(rules=rules, require_baseline=True))
    assert not r.passed
    assert [(c.kind, c.verdict) for c in r.checks] == [
        ("baseline", "fail"), ("metric", "fail"), ("metric", "pass")]


def test_baseline_references(client, fraud):
    base, cand = fraud
    other = train(client, noise=3.0, seeds=(50,), name="fraud-v2")
    client.set_alias("fraud", "champion", base.version)
    for against, expected in (("@production", ("fraud", base.version)),
                              ("Production", ("fraud", base.version)),
                              ("@champion", ("fraud", base.version)),
                              ("@latest", ("fraud", cand.version)),
                              (f"models:/fraud-v2/{other.version}", ("fraud-v2", other.version)),
                              ("fraud-v2@latest", ("fraud-v2", other.version))):
        r = check(client, "fraud@candidate", spec(rules=["val_auc >= 0"], against=against))
        assert (r.baseline.name, r.baseline.version) == expected, against
    r = check(client, "fraud@candidate", spec(rules=["val_auc >= 0"], against="@staging"))
    assert r.baseline is None and "no version in Staging" in r.checks[0].reason
    r = check(client, "fraud@candidate", spec(rules=["val_auc >= 0"], against="@nope"))
    assert r.baseline is None and "no alias 'nope'" in r.checks[0].reason
    r = check(client, f"fraud/{base.version}", spec(rules=["val_auc >= baseline"]))
    assert r.notes == (f"the candidate is the baseline (@production is fraud {base.version})",)


def test_unknown_models_and_bad_references_are_errors(client, fraud):
    with pytest.raises(NotFound, match="nope"):
        check(client, "models:/nope@candidate", spec(rules=["val_auc >= 0"]))
    with pytest.raises(NotFound, match="no alias 'gone'"):
        check(client, "fraud@gone", spec(rules=["val_auc >= 0"]))
    with pytest.raises(NotFound, match="other"):
        check(client, "fraud@candidate", spec(rules=["val_auc >= 0"], against="models:/other/1.0.0"))
    with pytest.raises(NotFound):
        check(client, "fraud@candidate", spec(rules=["val_auc >= 0"], against="fraud/9.0.0"))
    with pytest.raises(InvalidArgument, match="does not say which version"):
        check(client, "fraud", spec(rules=["val_auc >= 0"]))
    with pytest.raises(InvalidArgument, match="does not say which version"):
        check(client, "fraud@candidate", spec(rules=["val_auc >= 0"], against="champion"))
    with pytest.raises(InvalidArgument, match="lone surrogate"):
        check(client, "fraud@cand\ud800", spec(rules=["val_auc >= 0"]))


def test_required_approval(client, fraud, tmp_path):
    bob = cairn.Client(str(client.uri), user="bob")
    r = check(client, "fraud@candidate", spec(require=["approval"]))
    assert only(r, "approval").reason == \
        "fraud 1.1.0: no approved request to move it to Staging or Production"
    # A request nobody approved yet, and one that was rejected, do not count.
    client.set_stage_policy("fraud", "staging", approvals=1)
    req = client.request_transition("fraud", "1.1.0", "staging", comment="better AUC")
    assert only(check(client, "fraud@candidate", spec(require=["approval"])),
                "approval").verdict == "fail"
    bob.reject(req.id, comment="not yet")
    assert only(check(client, "fraud@candidate", spec(require=["approval"])),
                "approval").verdict == "fail"
    req = client.request_transition("fraud", "1.1.0", "staging", comment="retry")
    bob.approve(req.id, comment="ok")
    c = only(check(client, "fraud@candidate", spec(require=["approval"])), "approval")
    assert c.verdict == "pass"
    assert c.detail == f"approved by bob (request {req.id} to Staging, applied)"


def test_an_approval_still_waiting_for_more_counts(client, fraud):
    client.set_stage_policy("fraud", "production", approvals=2)
    req = client.request_transition("fraud", "1.1.0", "production")
    cairn.Client(str(client.uri), user="bob").approve(req.id)
    c = only(check(client, "fraud@candidate", spec(require=["approval"])), "approval")
    assert c.verdict == "pass" and c.detail.endswith("to Production, pending)")


def test_required_signature(client, fraud, tmp_path):
    r = check(client, "fraud@candidate", spec(require=["signature"]))
    assert only(r, "signature").reason == "fraud 1.1.0: not signed"
    key = client.create_signing_key()
    signed = train(client, noise=0.5, seeds=(13,))
    client.set_alias("fraud", "candidate", signed.version)
    c = only(check(client, "fraud@candidate", spec(require=["signature"])), "signature")
    assert c.verdict == "pass" and c.detail == f"signed by trusted key {key.key_id}"
    client.revoke_signing_key(key.key_id)
    c = only(check(client, "fraud@candidate", spec(require=["signature"])), "signature")
    assert c.reason == (f"fraud {signed.version}: signed by key {key.key_id}, which this "
                        "registry does not trust")


def test_required_lineage(client, fraud, tmp_path):
    import numpy as np

    r = check(client, "fraud@candidate", spec(require=["lineage"]))
    assert only(r, "lineage").reason.startswith(
        f"fraud 1.1.0: its run {fraud[1].run_ids[0]} logged no data set input")
    ds = client.data.add_array(np.zeros((4, 2)), "transactions")
    traced = train(client, noise=0.5, seeds=(14,), dataset=ds.ref)
    client.set_alias("fraud", "candidate", traced.version)
    c = only(check(client, "fraud@candidate", spec(require=["lineage"])), "lineage")
    assert c.verdict == "pass" and c.detail == f"trained on {ds.ref}"


def test_to_dict_keys(client, fraud):
    r = check(client, "fraud@candidate", spec(rules=["val_auc > baseline"], significance=0.05,
                                              require=["approval"]))
    d = r.to_dict()
    assert set(d) == {"passed", "summary", "candidate", "baseline", "against", "significance",
                      "across", "test", "checks", "notes"}
    assert set(d["candidate"]) == {"ref", "name", "version", "stage", "run_id", "runs"}
    assert set(d["checks"][0]) == {
        "kind", "rule", "verdict", "reason", "detail", "metric", "candidate",
        "candidate_source", "baseline", "baseline_source", "threshold", "test", "test_note"}
    assert set(d["checks"][0]["test"]) == {"method", "alternative", "p_value", "statistic",
                                           "n_candidate", "n_baseline", "note"}
    assert d["passed"] is False and d["across"] == ["seed"]


def test_a_forged_record_or_signature_fails(client, fraud, tracking):
    import sqlite3

    client.create_signing_key()
    signed = train(client, noise=0.5, seeds=(16,))
    client.set_alias("fraud", "candidate", signed.version)
    conn = sqlite3.connect(str(tracking / "index.db"), isolation_level=None)
    try:
        conn.execute("UPDATE model_versions SET signature_bytes = ? WHERE version = ?",
                     (b"\0" * 64, signed.version))
        c = only(check(client, "fraud@candidate", spec(require=["signature"])), "signature")
        assert c.reason == f"fraud {signed.version}: the signature does not verify"
        conn.execute("UPDATE model_versions SET metrics = ? WHERE version = ?",
                     ('{"val_auc": 0.999}', signed.version))
        c = only(check(client, "fraud@candidate", spec(require=["signature"])), "signature")
        assert c.reason == (f"fraud {signed.version}: its record was changed after "
                            "registration (digest mismatch)")
        # Nor are its metrics believed.
        c = only(check(client, "fraud@candidate", spec(rules=["val_auc >= 0.5"])))
        assert c.verdict == "fail" and c.reason == (
            f"the registry record of fraud {signed.version} was changed after registration "
            "(its digest does not match): its metrics cannot be trusted")
    finally:
        conn.close()


def test_seed_groups_are_found_across_pages(client, monkeypatch):
    from cairn.gate import seeds

    monkeypatch.setattr(seeds, "PAGE", 2)
    mine = train(client, noise=3.0, seeds=(0, 1, 2, 3, 4))
    train(client, noise=1.0, seeds=(0, 1, 2))  # other params: another group
    group = seeds.seed_group(client, mine.run_ids[0], ("seed",))
    assert sorted(group.run_ids) == sorted(mine.run_ids) and group.note == ""
    assert sorted(group.values("val_auc")) == sorted(mine.aucs)


def test_a_rerun_by_cairn_reproduce_is_not_another_seed(client):
    """`cairn reproduce` records its rerun beside the original, same params and seed: the
    same result again, not a new sample, so it must not swell the seed group."""
    from cairn.gate.seeds import seed_group
    from cairn.lineage import REPRODUCES_TAG

    trained = train(client, noise=0.5, seeds=(10, 11))
    exp = client.get_or_create_experiment("fraud-training")
    original = client.get_run(trained.run_ids[0])
    rerun = client.create_run(exp.id, tags={REPRODUCES_TAG: original.id})
    client.log_batch(rerun.id, params=dict(original.params))
    client.log_metric(rerun.id, "val_auc", original.metrics["val_auc"])
    client.set_terminated(rerun.id)
    group = seed_group(client, original.id, ["seed"])
    assert sorted(group.run_ids) == sorted(trained.run_ids)
