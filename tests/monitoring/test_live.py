"""Live quality: a real served model (primary and canary), labels sent back through
POST /v1/feedback, joined with the prediction log; numbers checked against scikit-learn."""

import asyncio
import datetime as dt
import json
import time

import httpx
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn import metrics as skm

import cairn
from cairn.cli.main import cli
from cairn.errors import InvalidArgument, NotFound
from cairn.monitoring.feedback import record_feedback
from cairn.monitoring.live import (Group, LiveMetrics, binary_auc, classification_metrics,
                                   live_metrics, live_report, regression_metrics)
from cairn.monitoring.results import EXPERIMENT, MODEL_TAG, VERSION_TAG
from cairn.serving.events import CANARY, PRIMARY, Scored
from cairn.serving.feedback_log import FeedbackLog
from cairn.serving.predlog import PredictionLog

UTC = dt.timezone.utc
T0 = dt.datetime(2025, 1, 31, 10, 0, tzinfo=UTC)


# -- the metrics, against scikit-learn ---------------------------------------------------

def test_binary_metrics_match_sklearn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    score = np.round(np.clip(y * 0.3 + rng.normal(0.35, 0.25, 500), 0, 1), 2)  # with ties
    pred = (score >= 0.5).astype(int)
    got = classification_metrics(list(y), list(pred), score)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert got["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert got["auc"] == pytest.approx(skm.roc_auc_score(y, score))
    assert binary_auc([True, False], [0.5, 0.5]) == 0.5
    assert binary_auc([True, True], [0.1, 0.2]) is None  # one class: no AUC


def test_text_and_multiclass_metrics_match_sklearn():
    rng = np.random.default_rng(2)
    y = rng.choice(["no", "yes"], 300)
    p = np.where(rng.random(300) < 0.8, y, rng.choice(["no", "yes"], 300))
    got = classification_metrics(list(y), list(p))
    assert got["f1"] == pytest.approx(skm.f1_score(y, p, pos_label="yes"))
    assert "auc" not in got
    classes = [0, 1, 2]
    y = rng.integers(0, 3, 400)
    proba = rng.dirichlet([1, 1, 1], 400)
    proba[np.arange(400), y] += 0.5
    proba /= proba.sum(axis=1, keepdims=True)
    pred = proba.argmax(axis=1)
    got = classification_metrics(list(y), list(pred), proba={c: proba[:, c] for c in classes})
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert got["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert got["auc"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr"))


def test_regression_metrics_match_sklearn():
    rng = np.random.default_rng(3)
    y, p = rng.normal(size=200), rng.normal(size=200)
    got = regression_metrics(y, p)
    assert got["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, p)))
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, p))


# -- a real served model, primary and canary ---------------------------------------------

def frame(n, seed):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})


def truth(X):
    return ((X["a"] + 0.8 * X["b"]) > 0.2).astype(int)


@pytest.fixture
def served(tracking):
    """``fraud`` 1.0.0 @production (registered with accuracy 0.9) and 2.0.0 @challenger,
    served with a 30% canary, a prediction log and a feedback log."""
    from sklearn.linear_model import LogisticRegression

    from cairn.serving import deploy
    from cairn.services import registry_for

    c = cairn.Client(str(tracking))
    X = frame(300, 0)
    exp = c.get_or_create_experiment("training")
    models = {}
    for alias, C, acc in [("production", 1.0, 0.9), ("challenger", 0.01, 0.8)]:
        run = c.create_run(exp.id)
        c.log_metric(run.id, "accuracy", acc)
        model = LogisticRegression(C=C).fit(X[["a"]].assign(b=0.0), truth(X))
        mv = c.register_model("fraud", model, run_id=run.id, input_example=X[:3])
        c.set_terminated(run.id)
        if alias == "production":
            c.transition_model_version_stage("fraud", mv.version, alias)
        else:
            c.set_alias("fraud", alias, mv.version)
        models[mv.version] = model
    plog, fb = PredictionLog(c), FeedbackLog(c)
    d = deploy(registry_for(c), "models:/fraud@production", follow=False,
               canary="models:/fraud@challenger=30%", observers=[plog], feedback=fb)
    yield c, d, models
    d.close()


async def traffic(app, X, ids, arms):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://cairn") as http:
        out = []
        for rid, arm, i in zip(ids, arms, range(len(X))):
            r = await http.post("/v1/predict", json={"dataframe_split": {
                "columns": ["a", "b"], "data": X[i:i + 1].values.tolist()}},
                headers={"Cairn-Request-Id": rid, "Cairn-Arm": arm})
            assert r.status_code == 200, r.text
            out.append(r.json())
        rows = X[:3]  # one request of three rows: labelled as batch#0, #1, #2
        r = await http.post("/v1/predict", json={"dataframe_split": {
            "columns": ["a", "b"], "data": rows.values.tolist()}},
            headers={"Cairn-Request-Id": "batch", "Cairn-Arm": "primary"})
        assert r.status_code == 200
        bad = await http.post("/v1/predict", json={"dataframe_split": {
            "columns": ["a"], "data": [[1.0]]}},
            headers={"Cairn-Request-Id": "bad", "Cairn-Arm": "primary"})
        assert bad.status_code == 400
        labels = [{"request_id": rid, "label": int(y)} for rid, y in zip(ids, truth(X))]
        labels += [{"request_id": f"batch#{k}", "label": int(y)}
                   for k, y in enumerate(truth(rows))]
        labels += [{"request_id": "ghost", "label": 1}, {"request_id": "", "label": 1}]
        fb = await http.post("/v1/feedback", json=labels)
        assert fb.status_code == 200
        assert fb.json()["accepted"] == len(labels) - 1
        return out


def test_live_metrics_per_arm_and_version_match_sklearn(served, tracking):
    c, d, models = served
    X = frame(80, 7)
    ids = [f"r{i}" for i in range(80)]
    arms = [CANARY if i % 4 == 0 else PRIMARY for i in range(80)]
    since = time.time() - 1
    answers = asyncio.run(traffic(d.app, X, ids, arms))
    d.close()  # the prediction log and the feedback are written
    live = live_metrics(cairn.Client(str(tracking)), "fraud", since, time.time() + 1)
    assert isinstance(live, LiveMetrics) and isinstance(live.overall, Group)
    assert live.kind == "classification"
    assert live.overall.requests == 82 and live.overall.labelled == 83
    assert live.overall.errors == 0 and live.overall.error_rate == 0.0  # a 400 is no error
    assert live.overall.latency_p99_ms > 0
    assert live.unknown_ids == 1 and live.labels == 84
    assert set(live.by_arm) == {PRIMARY, CANARY} and set(live.by_version) == {"1.0.0", "1.1.0"}
    canary = np.array(arms) == CANARY
    y = truth(X).to_numpy()
    pred = np.array([a["predictions"][0] for a in answers])
    assert live.by_arm[CANARY].requests == canary.sum() == live.by_version["1.1.0"].requests
    got = live.by_arm[CANARY].metrics
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y[canary], pred[canary]))
    assert got["f1"] == pytest.approx(skm.f1_score(y[canary], pred[canary]))
    rows = X[:3]
    primary_y = np.concatenate([y[~canary], truth(rows)])
    primary_p = np.concatenate([pred[~canary], models["1.0.0"].predict(rows)])
    got = live.by_version["1.0.0"].metrics
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(primary_y, primary_p))
    assert got["f1"] == pytest.approx(skm.f1_score(primary_y, primary_p))
    assert live.overall.metrics["accuracy"] == pytest.approx(
        skm.accuracy_score(np.concatenate([primary_y, y[canary]]),
                           np.concatenate([primary_p, pred[canary]])))
    doc = json.loads(json.dumps(live.to_dict()))
    assert doc["by_arm"]["canary"]["labelled"] == canary.sum()

    # The report: per window, each version's registered accuracy alongside, stored once.
    report = live_report(c, "models:/fraud@production", "1d", since=since, until=time.time() + 1,
                         now=dt.datetime.now(UTC) + dt.timedelta(days=2))
    assert report.train == {"1.0.0": {"accuracy": 0.9}, "1.1.0": {"accuracy": 0.8}}
    w = [w for w in report.windows if w.live.overall.requests][0]
    assert sorted(w.stored) == ["1.0.0", "1.1.0"]
    run = c.get_run(report.run_ids["1.1.0"])
    assert run.experiment == EXPERIMENT
    assert (run.tags[MODEL_TAG], run.tags[VERSION_TAG]) == ("fraud", "1.1.0")
    got_canary = live.by_arm[CANARY].metrics["accuracy"]
    assert run.metrics["live.accuracy"] == pytest.approx(got_canary)
    assert run.metrics["train.accuracy"] == 0.8 and run.metrics["live.requests"] == canary.sum()
    assert run.metrics["live.error_rate"] == 0.0 and run.metrics["live.labelled"] == canary.sum()
    again = live_report(c, "fraud", "1d", since=since, until=time.time() + 1,
                        now=dt.datetime.now(UTC) + dt.timedelta(days=2))
    assert all(not w.stored for w in again.windows)
    assert len(c.get_metric_history(report.run_ids["1.1.0"], "live.accuracy")) == 1
    assert got_canary < 1.0


def test_cli_live_table_and_json(served, tracking):
    c, d, _ = served
    X = frame(20, 9)
    asyncio.run(traffic(d.app, X, [f"q{i}" for i in range(20)], [PRIMARY] * 20))
    d.close()
    runner = CliRunner()
    res = runner.invoke(cli, ["--store", str(tracking), "monitor", "live",
                              "models:/fraud@production", "--window", "1d", "--no-store"])
    assert res.exit_code == 0, res.output
    out = res.output
    assert "fraud: live quality in windows of 1d" in out
    assert "registered with: 1.0.0: accuracy 0.9" in out
    assert "22 requests, 23 labelled, 24 label(s) received, 1 for unknown request ids" in out
    assert "version 1.0.0" in out and "arm primary" in out and "(train 0.9, " in out
    res = runner.invoke(cli, ["--store", str(tracking), "monitor", "live", "fraud",
                              "--window", "1d", "--json", "--no-store"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    w = [w for w in doc["windows"] if w["overall"]["requests"]][0]
    assert w["overall"]["labelled"] == 23 and w["unknown_ids"] == 1 and doc["run_ids"] == {}
    assert "accuracy" in w["by_version"]["1.0.0"]["metrics"]


@pytest.mark.parametrize("args,message", [
    (["models:/nobody@production"], "nobody"),
    (["fraud", "--window", "1hour"], "is not a duration"),
    (["fraud", "--since", "2025-01-02", "--until", "2025-01-01"], "must be after"),
    (["fraud", "--since", "soon"], "ISO 8601"),
])
def test_cli_live_bad_input(served, tracking, args, message):
    res = CliRunner().invoke(cli, ["--store", str(tracking), "monitor", "live", *args])
    assert res.exit_code == 1 and message in res.output, res.output


def test_live_metrics_bad_input(served):
    c = served[0]
    with pytest.raises(InvalidArgument, match="must be after"):
        live_metrics(c, "fraud", T0, T0)
    with pytest.raises(InvalidArgument):
        live_metrics(c, "", T0, T0 + dt.timedelta(hours=1))
    with pytest.raises(NotFound):
        live_report(c, "nobody")
    empty = live_metrics(c, "fraud", T0, T0 + dt.timedelta(hours=1))
    assert empty.overall == Group(0, 0, 0.0, None, 0, {}) and empty.kind is None


# -- scores, errors and regression from the log itself ------------------------------------

def log_events(client, events):
    plog = PredictionLog(client, flush_rows=100_000, flush_seconds=3600)
    for e in events:
        plog.scored(e)
    plog.close()


def test_auc_from_probabilities_and_error_rate(tracking):
    c = cairn.Client(str(tracking))
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 120)
    score = np.clip(0.3 * y + rng.random(120) * 0.7, 0, 1)
    base = T0.timestamp()
    events = [Scored(f"p{i}", "fraud", "1.0.0", PRIMARY, "/v1/predict", 200, None,
                     base + i, 0.001 * (i + 1), 1, pd.DataFrame({"x": [1.0]}),
                     np.array([score[i]])) for i in range(120)]
    events += [Scored(f"e{i}", "fraud", "1.0.0", PRIMARY, "/v1/predict", 500, "INTERNAL_ERROR",
                      base + 200 + i, 0.5, 0) for i in range(5)]
    # Another model's log: probabilities per class as columns prediction.0 and prediction.1.
    events += [Scored(f"m{i}", "multi", "1.0.0", PRIMARY, "/v1/predict", 200, None, base + i,
                      0.001, 1, pd.DataFrame({"x": [1.0]}),
                      pd.DataFrame({"0": [1 - score[i]], "1": [score[i]]}))
               for i in range(120)]
    log_events(c, events)
    for name, prefix in (("fraud", "p"), ("multi", "m")):
        c.create_registered_model(name)
        record_feedback(c, name, [{"request_id": f"{prefix}{i}", "label": int(y[i])}
                                  for i in range(120)])
    live = live_metrics(c, "fraud", T0, T0 + dt.timedelta(hours=1))
    assert live.overall.requests == 125 and live.overall.errors == 5
    assert live.overall.error_rate == pytest.approx(5 / 125)
    lat = np.array([0.001 * (i + 1) for i in range(120)] + [0.5] * 5) * 1000
    assert live.overall.latency_p99_ms == pytest.approx(np.percentile(lat, 99))
    assert live.overall.metrics["auc"] == pytest.approx(skm.roc_auc_score(y, score))
    pred = (score >= 0.5).astype(int)
    assert live.overall.metrics["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert live.unknown_ids == 0 and live.labels == 0  # received now, not in this span
    multi = live_metrics(c, "multi", T0, T0 + dt.timedelta(hours=1))
    assert multi.overall.metrics["auc"] == pytest.approx(skm.roc_auc_score(y, score))
    assert multi.overall.metrics["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))


def test_regression_from_a_served_model(tracking):
    from sklearn.linear_model import LinearRegression

    from cairn.serving import deploy
    from cairn.services import registry_for

    c = cairn.Client(str(tracking))
    X = frame(50, 5)
    target = 2 * X["a"] - X["b"] + 0.5
    mv = c.register_model("price", LinearRegression().fit(X, target), input_example=X[:3])
    c.set_alias("price", "prod", mv.version)
    plog, fb = PredictionLog(c), FeedbackLog(c)
    d = deploy(registry_for(c), "models:/price@prod", follow=False, observers=[plog], feedback=fb)
    Y = frame(30, 6)
    actual = 2 * Y["a"] - Y["b"] + np.random.default_rng(0).normal(0, 0.3, 30) + 0.5
    answers = asyncio.run(traffic_regression(d.app, Y, actual))
    d.close()
    live = live_metrics(c, "price", time.time() - 60, time.time() + 1)
    assert live.kind == "regression" and live.overall.labelled == 30
    assert live.overall.metrics["rmse"] == pytest.approx(
        np.sqrt(skm.mean_squared_error(actual, answers)))
    assert live.overall.metrics["mae"] == pytest.approx(skm.mean_absolute_error(actual, answers))


async def traffic_regression(app, X, actual):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://cairn") as http:
        out = []
        for i in range(len(X)):
            r = await http.post("/v1/predict", json={"dataframe_split": {
                "columns": ["a", "b"], "data": X[i:i + 1].values.tolist()}},
                headers={"Cairn-Request-Id": f"s{i}"})
            out.append(r.json()["predictions"][0])
        r = await http.post("/v1/feedback", json=[{"request_id": f"s{i}", "label": float(v)}
                                                  for i, v in enumerate(actual)])
        assert r.json()["accepted"] == len(X)
        return out


def test_feedback_and_live_quality_through_a_team_server(cairn_server):
    """Labels stored by one client and the log by another are joined by a third, all over
    the server's REST API; the results are stored there."""
    from sklearn.linear_model import LogisticRegression

    writer = cairn.Client(cairn_server)
    X = frame(40, 8)
    run = writer.create_run(writer.get_or_create_experiment("training").id)
    writer.log_metric(run.id, "accuracy", 0.75)
    model = LogisticRegression().fit(X, truth(X))
    writer.register_model("fraud", model, run_id=run.id, input_example=X[:3])
    pred = model.predict(X)
    base = T0.timestamp()
    log_events(writer, [Scored(f"t{i}", "fraud", "1.0.0", PRIMARY, "/v1/predict", 200, None,
                               base + i, 0.002, 1, X[i:i + 1].reset_index(drop=True),
                               pred[i:i + 1]) for i in range(40)])
    res = record_feedback(cairn.Client(cairn_server), "fraud",
                          [{"request_id": f"t{i}", "label": int(y)}
                           for i, y in enumerate(truth(X))])
    assert res.stored == 40
    reader = cairn.Client(cairn_server)
    report = live_report(reader, "fraud", "1h", since=T0, until=T0 + dt.timedelta(hours=1),
                         now=T0 + dt.timedelta(days=1))
    g = report.windows[0].live.overall
    assert g.requests == g.labelled == 40
    assert g.metrics["accuracy"] == pytest.approx(skm.accuracy_score(truth(X), pred))
    assert report.train == {"1.0.0": {"accuracy": 0.75}}
    stored = cairn.Client(cairn_server).get_run(report.run_ids["1.0.0"]).metrics
    assert stored["live.accuracy"] == pytest.approx(g.metrics["accuracy"])
    assert stored["train.accuracy"] == 0.75


def test_rows_of_a_request_are_labelled_one_by_one_and_reused_ids_share_a_label(tracking):
    c = cairn.Client(str(tracking))
    c.create_registered_model("fraud")
    base = T0.timestamp()
    x = pd.DataFrame({"x": [1.0, 2.0, 3.0]})

    def event(rid, t, rows, preds, version="1.0.0"):
        return Scored(rid, "fraud", version, PRIMARY, "/v1/predict", 200, None, base + t,
                      0.001, rows, x[:rows], np.array(preds))

    log_events(c, [event("a", 1, 3, [1, 0, 1]),          # rows a#0, a#1, a#2
                   event("b", 2, 1, [1]), event("b", 3, 1, [0]),  # one id reused
                   event("a", 4, 1, [1], "2.0.0")])      # another version: its own request
    record_feedback(c, "fraud", [{"request_id": "a#0", "label": 1},
                                 {"request_id": "a#2", "label": 0},
                                 {"request_id": "b", "label": 1},
                                 {"request_id": "a", "label": 1}])
    live = live_metrics(c, "fraud", T0, T0 + dt.timedelta(minutes=1))
    assert live.overall.requests == 4
    v1, v2 = live.by_version["1.0.0"], live.by_version["2.0.0"]
    assert (v1.requests, v1.labelled, v1.metrics["accuracy"]) == (3, 4, 0.5)
    assert (v2.requests, v2.labelled, v2.metrics["accuracy"]) == (1, 1, 1.0)
