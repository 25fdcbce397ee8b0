"""LightGBM: per-round metrics, importance, model and data, through autolog and the callback."""

import json
import pickle

import numpy as np
import pytest

import cairn
from cairn.autolog import _common

lgb = pytest.importorskip("lightgbm", reason="needs lightgbm: pip install 'cairn[lightgbm]'")
from cairn.autolog.lightgbm import CairnCallback  # noqa: E402

# One thread: OpenMP pools fight over a loaded 2-core CI machine and turn ms into seconds.
PARAMS = {"objective": "regression", "num_leaves": 7, "verbose": -1, "num_threads": 1}


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = 2 * X[:, 0] - X[:, 1] + rng.normal(size=300) * 0.1
    return X, y


def test_train_logs_each_round_importance_model_and_data(tracking, data, tmp_path):
    X, y = data
    cairn.autolog.lightgbm.autolog()
    dtrain = lgb.Dataset(X[:200], label=y[:200], feature_name=["a", "b", "c", "d"])
    dvalid = lgb.Dataset(X[200:], label=y[200:], reference=dtrain)
    booster = lgb.train(PARAMS, dtrain, num_boost_round=15, valid_sets=[dtrain, dvalid],
                        valid_names=["train", "valid"])
    c = cairn.Client()
    [r] = c.search_runs()
    assert r.status is cairn.RunStatus.FINISHED
    assert r.params["num_leaves"] == "7" and r.params["num_boost_round"] == "15"
    for key in ("train-l2", "valid-l2"):
        assert c.get_metric_history(r.id, key).steps.tolist() == list(range(15))
    l2 = c.get_metric_history(r.id, "valid-l2").values
    assert l2[-1] < l2[0]
    assert r.tags["cairn.input.shape"] == "[200, 4]"
    assert r.tags["cairn.input.digest"] == _common.digest(X[:200], y[:200])
    paths = [e.path for e in c.list_artifacts(r.id)]
    assert paths == ["feature_importance_gain.json", "feature_importance_split.json",
                     "model/cairn_model.json", "model/model.txt"]
    out = c.download_artifacts(r.id, "", tmp_path)
    gain = json.loads((out / "feature_importance_gain.json").read_text())
    assert set(gain) == {"a", "b", "c", "d"} and list(gain)[0] == "a"
    restored = lgb.Booster(model_file=str(out / "model" / "model.txt"))
    np.testing.assert_allclose(restored.predict(X[200:]), booster.predict(X[200:]))


def test_early_stopping_records_the_best_round(tracking, data):
    X, y = data
    cairn.autolog.lightgbm.autolog(log_models=False)
    dtrain = lgb.Dataset(X[:200], label=y[:200])
    dvalid = lgb.Dataset(X[200:], label=y[200:], reference=dtrain)
    booster = lgb.train({**PARAMS, "learning_rate": 0.9}, dtrain, num_boost_round=300,
                        valid_sets=[dvalid], callbacks=[lgb.early_stopping(3, verbose=False)])
    [r] = cairn.Client().search_runs()
    assert 0 < booster.best_iteration < 300
    assert r.metrics["best_iteration"] == booster.best_iteration
    assert r.metrics["best_valid_0-l2"] == pytest.approx(booster.best_score["valid_0"]["l2"])


def test_sklearn_wrapper_logs_params_rounds_and_pickled_model(tracking, data, tmp_path):
    X, y = data
    labels = (y > 0).astype(int)
    cairn.autolog.lightgbm.autolog()
    model = lgb.LGBMClassifier(n_estimators=6, num_leaves=5, verbose=-1, n_jobs=1)
    model.fit(X, labels, eval_X=X, eval_y=labels)
    c = cairn.Client()
    [r] = c.search_runs()  # the inner lightgbm.train is not a second run
    assert r.params["n_estimators"] == "6" and r.params["num_leaves"] == "5"
    assert r.tags["cairn.autolog.estimator_class"] == "lightgbm.sklearn.LGBMClassifier"
    assert len(c.get_metric_history(r.id, "valid_0-binary_logloss")) == 6
    assert r.tags["cairn.input.digest"] == _common.digest(X, labels)
    out = c.download_artifacts(r.id, "model", tmp_path)
    restored = pickle.loads((out / "model.pkl").read_bytes())
    assert (restored.predict(X) == model.predict(X)).all()


def test_the_callback_logs_into_the_active_run_and_needs_one(tracking, data):
    X, y = data
    dtrain = lgb.Dataset(X, label=y)
    with cairn.start_run() as run:
        lgb.train(PARAMS, dtrain, num_boost_round=4, valid_sets=[dtrain], callbacks=[CairnCallback()])
    assert len(cairn.Client().get_metric_history(run.id, "training-l2")) == 4
    with pytest.raises(cairn.NoActiveRun, match="start_run"):
        lgb.train(PARAMS, lgb.Dataset(X, label=y), num_boost_round=2,
                  valid_sets=[lgb.Dataset(X, label=y)], callbacks=[CairnCallback()])
