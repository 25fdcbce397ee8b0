"""``predlog.dropped``: requests the prediction log of a serving process dropped reach an alert
rule evaluated by another process, through the serving runs, counted over the rule's window."""

import time

import numpy as np
import pandas as pd
import pytest

import cairn
from cairn.monitoring.alerts import Alerts
from cairn.serving.events import PRIMARY, Scored
from cairn.serving.predlog import PredictionLog
from cairn.serving.predlog_runs import RunSink

RULES = """\
rules:
  - name: log-drops
    model: {model}
    condition: predlog.dropped > 2
    window: 10m
"""


class Failing(RunSink):
    """Uploads of ``version`` fail: the store refuses that version's segments."""

    def __init__(self, client, version):
        super().__init__(client)
        self.version = version

    def upload(self, model, version, directory, local):
        if version == self.version:
            raise OSError("the store is down")
        super().upload(model, version, directory, local)


def serve_and_drop(client, version, dropped, kept=1, kept_version="9.9.9"):
    plog = PredictionLog(sink=Failing(client, version), retry_seconds=0.05)
    X = pd.DataFrame({"x": [1.0]})
    for i in range(dropped):
        plog.scored(Scored(f"d{i}", "fraud", version, PRIMARY, "/invocations", 200, None,
                           time.time(), 0.001, 1, X, np.array([1])))
    for i in range(kept):
        plog.scored(Scored(f"k{i}", "fraud", kept_version, PRIMARY, "/invocations", 200, None,
                           time.time(), 0.001, 1, X, np.array([1])))
    plog.close()
    assert plog.stats()["dropped"] == dropped


@pytest.fixture
def client(tracking):
    from sklearn.linear_model import LogisticRegression

    c = cairn.Client(str(tracking))
    X = np.random.default_rng(0).normal(size=(50, 1))
    for _ in range(2):
        mv = c.register_model("fraud", LogisticRegression().fit(X, X[:, 0] > 0))
    c.transition_model_version_stage("fraud", mv.version, "production")
    return c


def judge(client, model, at_ms):
    alerts = Alerts(client)
    alerts.apply(RULES.format(model=model))
    alerts.evaluate(now=at_ms)
    (state,) = alerts.states()
    return state


def test_drops_over_the_window_fire_and_age_out(client):
    serve_and_drop(client, "2.0.0", 3)
    now = int(time.time() * 1000)
    state = judge(client, "fraud", now + 1000)
    assert state.state == "firing"
    assert state.value["facts"]["predlog.dropped"] == 3
    # Eleven minutes later the drops are out of the 10-minute window: resolved.
    alerts = Alerts(client)
    alerts.evaluate(now=now + 11 * 60_000)
    (state,) = alerts.states()
    assert state.state == "resolved" and state.value["facts"]["predlog.dropped"] == 0


def test_a_rule_on_a_stage_counts_that_versions_drops_only(client):
    serve_and_drop(client, "1.0.0", 5, kept_version="1.0.1")   # production logged all it got
    state = judge(client, "models:/fraud@production", int(time.time() * 1000) + 1000)
    assert state.state == "inactive" and state.value["facts"]["predlog.dropped"] == 0


def test_a_model_never_served_with_a_log_is_unknown_not_zero(client):
    state = judge(client, "fraud", int(time.time() * 1000))
    assert state.state == "inactive"
    assert "predlog.dropped" in state.value["missing"]
    assert any("not been served" in n for n in state.value["notes"])
