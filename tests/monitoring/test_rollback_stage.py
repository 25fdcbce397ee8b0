"""A rule's rollback rolls back the stage the rule follows (fraud@staging), not production."""

import numpy as np
from sklearn.linear_model import LogisticRegression

import cairn
from cairn.monitoring.alert_facts import Facts
from cairn.monitoring.alerts import Alerts

T0 = 1_767_000_000_000  # ms


def always_bad(rule, now_ms):
    f = Facts()
    f.values.update({name: 0.1 for name in rule.parsed().facts})
    f.versions["model"] = "x"
    f.requests = 1000
    return f


def test_rollback_of_the_stage_the_rule_follows(tracking):
    client = cairn.Client(str(tracking))
    X = np.random.default_rng(0).normal(size=(50, 2))
    versions = []
    for C in (1.0, 0.5, 0.25):
        mv = client.register_model("fraud", LogisticRegression(C=C).fit(X, X[:, 0] > 0))
        versions.append(mv.version)
    first, second, third = versions
    client.transition_model_version_stage("fraud", first, "production")
    client.transition_model_version_stage("fraud", second, "staging")
    client.transition_model_version_stage("fraud", second, "archived")   # replaced by the third
    client.transition_model_version_stage("fraud", third, "staging")
    alerts = Alerts(client, facts=always_bad)
    alerts.apply("""
rules:
  - name: staging-bad
    model: models:/fraud@Staging
    condition: live.accuracy < 0.5
    actions: [rollback]
""")
    alerts.evaluate(now=T0)
    (done,) = alerts.act(now=T0)
    assert done.result["stage"] == "Staging" and done.result["rolled_back_to"] == second
    assert client.resolve_model("fraud@staging").version == second
    assert client.resolve_model("fraud@production").version == first    # untouched
