"""XGBoost: per-round metrics, importance, model and data, through autolog and the callback."""

import json

import numpy as np
import pytest

import cairn
from cairn.autolog import _common

xgb = pytest.importorskip("xgboost", reason="needs xgboost: pip install 'cairn[xgboost]'")
from cairn.autolog.xgboost import CairnCallback  # noqa: E402


# One thread: OpenMP pools fight over a loaded 2-core CI machine and turn ms into seconds.
@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    y = 2 * X[:, 0] - X[:, 1] + rng.normal(size=200) * 0.1
    return X, y


def test_train_logs_each_round_importance_model_and_data(tracking, data, tmp_path):
    X, y = data
    dtrain = xgb.DMatrix(X[:150], label=y[:150], feature_names=["a", "b", "c", "d"])
    dvalid = xgb.DMatrix(X[150:], label=y[150:], feature_names=["a", "b", "c", "d"])
    cairn.autolog.xgboost.autolog()
    booster = xgb.train({"max_depth": 2, "eta": 0.3, "nthread": 1}, dtrain, num_boost_round=12,
                        evals=[(dtrain, "train"), (dvalid, "eval")], verbose_eval=False)
    c = cairn.Client()
    [r] = c.search_runs()
    assert r.status is cairn.RunStatus.FINISHED
    assert r.params == {"max_depth": "2", "eta": "0.3", "nthread": "1", "num_boost_round": "12"}
    for key in ("train-rmse", "eval-rmse"):
        h = c.get_metric_history(r.id, key)
        assert h.steps.tolist() == list(range(12))
    rmse = c.get_metric_history(r.id, "train-rmse").values
    assert rmse[-1] < rmse[0]  # it learned
    assert r.tags["cairn.input.shape"] == "[150, 4]"
    assert r.tags["cairn.input.type"] == "xgboost.core.DMatrix"
    assert r.tags["cairn.input.digest"].startswith("sha256:")
    paths = [e.path for e in c.list_artifacts(r.id)]
    assert paths == ["feature_importance_cover.json", "feature_importance_gain.json",
                     "feature_importance_weight.json", "model/cairn_model.json", "model/model.json"]
    out = c.download_artifacts(r.id, "", tmp_path)
    gain = json.loads((out / "feature_importance_gain.json").read_text())
    assert list(gain)[0] == "a"  # the strongest feature ranks first
    restored = xgb.Booster(model_file=str(out / "model" / "model.json"))
    np.testing.assert_allclose(restored.predict(dvalid), booster.predict(dvalid), rtol=1e-6)


def test_the_same_data_gives_the_same_digest(tracking, data):
    X, y = data
    cairn.autolog.xgboost.autolog(log_models=False)
    for _ in range(2):
        xgb.train({"max_depth": 1, "nthread": 1}, xgb.DMatrix(X, label=y), num_boost_round=2)
    xgb.train({"max_depth": 1, "nthread": 1}, xgb.DMatrix(X, label=y + 1), num_boost_round=2)
    digests = [r.tags["cairn.input.digest"] for r in
               sorted(cairn.Client().search_runs(), key=lambda r: r.start_time)]
    assert digests[0] == digests[1] != digests[2]


def test_early_stopping_records_the_best_round(tracking, data):
    X, y = data
    cairn.autolog.xgboost.autolog(log_models=False)
    dtrain, dvalid = xgb.DMatrix(X[:150], label=y[:150]), xgb.DMatrix(X[150:], label=y[150:])
    booster = xgb.train({"eta": 0.9, "max_depth": 6, "nthread": 1}, dtrain, num_boost_round=200,
                        evals=[(dvalid, "eval")], early_stopping_rounds=3, verbose_eval=False)
    [r] = cairn.Client().search_runs()
    assert r.params["early_stopping_rounds"] == "3"
    assert r.metrics["best_iteration"] == booster.best_iteration < 199
    assert r.metrics["best_score"] == pytest.approx(booster.best_score)
    assert len(cairn.Client().get_metric_history(r.id, "eval-rmse")) == booster.best_iteration + 4


def test_sklearn_wrapper_logs_params_eval_history_and_model(tracking, data):
    X, y = data
    labels = (y > 0).astype(int)
    cairn.autolog.xgboost.autolog()
    model = xgb.XGBClassifier(n_estimators=8, max_depth=2, eval_metric="logloss", n_jobs=1)
    model.fit(X, labels, eval_set=[(X, labels)], verbose=False)
    c = cairn.Client()
    [r] = c.search_runs()  # the inner xgboost.train is not a second run
    assert r.params["n_estimators"] == "8" and r.params["max_depth"] == "2"
    assert "learning_rate" not in r.params  # None: the booster's default, not logged
    h = c.get_metric_history(r.id, "validation_0-logloss")
    assert h.steps.tolist() == list(range(8))
    assert h.values.tolist() == pytest.approx(model.evals_result()["validation_0"]["logloss"])
    assert r.tags["cairn.input.digest"] == _common.digest(X, labels)
    assert "model/model.json" in [e.path for e in c.list_artifacts(r.id)]


def test_the_callback_alone_logs_into_the_active_run(tracking, data):
    X, y = data
    with cairn.start_run() as run:
        xgb.train({"max_depth": 2, "nthread": 1}, xgb.DMatrix(X, label=y), num_boost_round=5,
                  evals=[(xgb.DMatrix(X, label=y), "train")], verbose_eval=False,
                  callbacks=[CairnCallback(log_models=False)])
        assert cairn.active_run() is run
    c = cairn.Client()
    assert len(c.get_metric_history(run.id, "train-rmse")) == 5
    assert [e.path for e in c.list_artifacts(run.id)] == [
        "feature_importance_cover.json", "feature_importance_gain.json",
        "feature_importance_weight.json"]


def test_the_callback_without_a_run_starts_and_ends_one(tracking, data):
    X, y = data
    xgb.train({"max_depth": 2, "nthread": 1}, xgb.DMatrix(X, label=y), num_boost_round=3,
              evals=[(xgb.DMatrix(X, label=y), "train")], verbose_eval=False,
              callbacks=[CairnCallback()])
    assert cairn.active_run() is None
    [r] = cairn.Client().search_runs()
    assert r.status is cairn.RunStatus.FINISHED and "train-rmse" in r.metrics
