"""The one-sided tests of the gate against scipy's, both directions, both methods."""

import numpy as np
import pytest

from cairn.gate.seeds import one_sided

scipy_stats = pytest.importorskip("scipy.stats")


@pytest.mark.parametrize("greater", [True, False])
def test_one_sided_p_values_match_scipy(greater):
    rng = np.random.default_rng(0)
    alternative = "greater" if greater else "less"
    samples = [(rng.normal(0.5, 0.1, 5), rng.normal(0.45, 0.1, 4)) for _ in range(8)]
    samples += [([1, 2, 3, 4, 5, 6, 7, 8, 9, 10.0], [3, 4, 5, 6, 7, 8, 9, 10, 11, 12.5]),
                ([0.9, 0.91, 0.92], [0.9, 0.93, 0.95]),  # ties: the normal approximation
                ([1.0, 2.0, 3.0], [1.5, 2.5, 3.5, 4.5])]
    for a, b in samples:
        a, b = list(map(float, a)), list(map(float, b))
        w = one_sided(a, b, greater, "welch")
        assert w.p_value == pytest.approx(
            scipy_stats.ttest_ind(a, b, equal_var=False, alternative=alternative).pvalue)
        u = one_sided(a, b, greater, "mann-whitney")
        assert u.p_value == pytest.approx(
            scipy_stats.mannwhitneyu(a, b, alternative=alternative).pvalue), (a, b)
        assert u.alternative == w.alternative == alternative


def test_a_lower_is_better_rule_is_tested_below_the_threshold():
    low, high = [0.10, 0.11, 0.12], [0.20, 0.21, 0.22]
    assert one_sided(low, high, greater=False).p_value < 0.05
    assert one_sided(low, high, greater=True).p_value > 0.95
    assert one_sided(low, high, greater=False, method="mann-whitney").p_value == \
        pytest.approx(0.05)  # 1 of the 20 orderings of 3 + 3 values


def test_one_grouping_rule_for_the_gate_the_cli_and_the_ui():
    from types import SimpleNamespace

    from cairn import stats
    from cairn.server.ui.aggregate import group_runs

    params = [{"lr": "0.1", "seed": "0"}, {"lr": "0.1", "seed": "1"}, {"lr": "0.2", "seed": "0"},
              {"lr": "0.1", "seed": "2", "extra": "x"}, {"lr": "0.1"}]
    assert stats.group_key(params[0], "seed") == stats.group_key(params[1], ["seed"]) == \
        (("lr", "0.1"),)
    assert stats.group_key(params[0], ()) != stats.group_key(params[1], ())
    runs = [SimpleNamespace(params=p, id=str(i)) for i, p in enumerate(params)]
    ui = [[r.id for r in g["runs"]] for g in group_runs(runs, ["seed"])]
    keyed: dict = {}
    for r in runs:
        keyed.setdefault(stats.group_key(r.params, "seed"), []).append(r.id)
    assert ui == list(keyed.values()) == [["0", "1", "4"], ["2"], ["3"]]


@pytest.mark.parametrize("how", ["running", "deleted"])
def test_a_source_run_that_is_not_a_finished_result_is_not_a_seed(client, how):
    from world import EXPERIMENT, train

    from cairn.gate.seeds import seed_group

    others = train(client, noise=0.5, seeds=(11, 12), register=False)
    run = client.create_run(client.get_or_create_experiment(EXPERIMENT).id)
    client.log_batch(run.id, params={"noise": 0.5, "C": 1.0, "seed": 10})
    client.log_metric(run.id, "val_auc", 0.5)
    if how == "deleted":
        client.set_terminated(run.id)
        client.delete_run(run.id)
    g = seed_group(client, run.id, ("seed",))
    assert set(g.run_ids) == set(others.run_ids)
    assert run.id in g.note and ("deleted" if how == "deleted" else "RUNNING") in g.note
