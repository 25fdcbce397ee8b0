"""scikit-learn autologging: estimators, pipelines, search CV, and what each run holds."""

import json
import pickle

import numpy as np
import pytest

import cairn
from cairn.autolog import _common

sklearn = pytest.importorskip("sklearn", reason="needs scikit-learn: pip install 'cairn[sklearn]'")
from sklearn.base import BaseEstimator, ClassifierMixin  # noqa: E402
from sklearn.datasets import load_diabetes, load_iris  # noqa: E402
from sklearn.linear_model import LinearRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.tree import DecisionTreeClassifier as Tree  # noqa: E402

CLASSIFIER_METRICS = {"training_accuracy_score", "training_precision_score", "training_recall_score",
                      "training_f1_score", "training_log_loss", "training_roc_auc", "training_score"}


@pytest.fixture
def iris():
    return load_iris(return_X_y=True)


def only_run(client):
    runs = client.search_runs()
    assert len(runs) == 1, [r.name for r in runs]
    return runs[0]


def test_a_classifier_fit_records_params_metrics_data_and_model(tracking, iris, tmp_path):
    X, y = iris
    cairn.autolog.sklearn.autolog()
    model = Tree(max_depth=2, random_state=0).fit(X, y)
    c = cairn.Client()
    r = only_run(c)
    assert r.status is cairn.RunStatus.FINISHED  # a run autolog started ends with the fit
    assert r.params["max_depth"] == "2" and r.params["random_state"] == "0"
    assert CLASSIFIER_METRICS <= set(r.metrics)
    assert r.metrics["training_accuracy_score"] == pytest.approx(model.score(X, y))
    assert 0.9 < r.metrics["training_accuracy_score"] < 1 and 0.9 < r.metrics["training_roc_auc"] <= 1
    assert r.tags["cairn.autolog.framework"] == "sklearn"
    assert r.tags["cairn.autolog.estimator_class"] == "sklearn.tree._classes.DecisionTreeClassifier"
    assert r.tags["cairn.input.shape"] == "[150, 4]" and r.tags["cairn.input.target_shape"] == "[150]"
    assert r.tags["cairn.input.digest"] == _common.digest(X, y)
    assert r.tags["cairn.input.digest"].startswith("sha256:")
    assert [e.path for e in c.list_artifacts(r.id)] == ["model/cairn_model.json", "model/model.pkl"]
    out = c.download_artifacts(r.id, "model", tmp_path)
    meta = json.loads((out / "cairn_model.json").read_text())
    assert meta["flavor"] == "sklearn" and meta["framework_version"] == sklearn.__version__
    restored = pickle.loads((out / "model.pkl").read_bytes())
    assert (restored.predict(X) == model.predict(X)).all()


def test_a_regressor_gets_regression_metrics(tracking):
    X, y = load_diabetes(return_X_y=True)
    cairn.autolog.sklearn.autolog(log_models=False)
    LinearRegression().fit(X, y)
    c = cairn.Client()
    r = only_run(c)
    m = r.metrics
    assert m["training_root_mean_squared_error"] == pytest.approx(np.sqrt(m["training_mean_squared_error"]))
    assert m["training_r2_score"] == pytest.approx(m["training_score"])
    assert 0.4 < m["training_r2_score"] < 0.6 and m["training_mean_absolute_error"] > 0
    assert c.list_artifacts(r.id) == []


def test_a_pipeline_is_one_run_with_its_steps_params(tracking, iris):
    X, y = iris
    cairn.autolog.sklearn.autolog()
    make_pipeline(StandardScaler(), Tree(max_depth=3)).fit(X, y)
    r = only_run(cairn.Client())  # the steps' own fits are not runs of their own
    assert r.tags["cairn.autolog.estimator_name"] == "Pipeline"
    assert r.params["decisiontreeclassifier__max_depth"] == "3"
    assert r.params["standardscaler__with_mean"] == "True"
    assert CLASSIFIER_METRICS <= set(r.metrics)


def test_grid_search_logs_best_params_cv_table_and_candidate_child_runs(tracking, iris, tmp_path):
    X, y = iris
    cairn.autolog.sklearn.autolog(max_tuning_runs=2)
    search = GridSearchCV(Tree(random_state=0), {"max_depth": [1, 2, 4]}, cv=3).fit(X, y)
    c = cairn.Client()
    runs = c.search_runs()
    parent = next(r for r in runs if r.parent_id is None)
    children = [r for r in runs if r.parent_id == parent.id]
    assert len(runs) == 3 and len(children) == 2  # no run per CV fit: only the 2 best candidates
    assert parent.params["best_max_depth"] == str(search.best_params_["max_depth"])
    assert parent.params["param_grid"] == "{'max_depth': [1, 2, 4]}"
    assert parent.metrics["best_cv_score"] == pytest.approx(search.best_score_)
    assert CLASSIFIER_METRICS <= set(parent.metrics)
    paths = [e.path for e in c.list_artifacts(parent.id)]
    assert paths == ["best_estimator/cairn_model.json", "best_estimator/model.pkl", "cv_results.csv",
                     "model/cairn_model.json", "model/model.pkl"]
    table = (c.download_artifacts(parent.id, "cv_results.csv", tmp_path)).read_text().splitlines()
    header = table[0].split(",")
    assert "mean_test_score" in header and "rank_test_score" in header and len(table) == 4
    best_i = int(search.best_index_)
    ranks = search.cv_results_["rank_test_score"]
    chosen = sorted(range(3), key=lambda i: (ranks[i], i))[:2]
    assert sorted(int(r.tags["cairn.autolog.candidate_index"]) for r in children) == sorted(chosen)
    best_child = next(r for r in children if r.tags["cairn.autolog.candidate_index"] == str(best_i))
    assert best_child.params == {"max_depth": str(search.cv_results_["params"][best_i]["max_depth"])}
    assert best_child.metrics["mean_test_score"] == pytest.approx(search.best_score_)
    assert best_child.metrics["rank_test_score"] == 1


def test_fits_inside_a_user_run_use_it_then_child_runs(tracking, iris):
    X, y = iris
    cairn.autolog.sklearn.autolog(log_models=False)
    with cairn.start_run(name="mine") as run:
        Tree(max_depth=2).fit(X, y)
        Tree(max_depth=1).fit(X, y)  # a second fit: a child run
        assert cairn.active_run() is run
    c = cairn.Client()
    first = c.get_run(run.id)
    assert first.params["max_depth"] == "2" and "training_score" in first.metrics
    second = [r for r in c.search_runs() if r.parent_id == run.id]
    assert len(second) == 1 and second[0].params["max_depth"] == "1"
    assert second[0].status is cairn.RunStatus.FINISHED


def test_a_failing_fit_marks_its_run_failed(tracking):
    cairn.autolog.sklearn.autolog()
    with pytest.raises(ValueError):
        Tree(max_depth=5).fit(np.array([[1.0], [np.inf]]), [0, 1])
    r = only_run(cairn.Client())
    assert r.status is cairn.RunStatus.FAILED and r.params["max_depth"] == "5"
    assert cairn.active_run() is None


def test_estimators_defined_after_enabling_are_patched_too(tracking, iris):
    X, y = iris
    cairn.autolog.sklearn.autolog(log_models=False)

    class Majority(ClassifierMixin, BaseEstimator):
        def __init__(self, bias=0):
            self.bias = bias

        def fit(self, X, y):
            self.classes_, counts = np.unique(y, return_counts=True)
            self.label_ = self.classes_[counts.argmax()]
            return self

        def predict(self, X):
            return np.full(len(X), self.label_)

    Majority(bias=3).fit(X, y)
    r = only_run(cairn.Client())
    assert r.params == {"bias": "3"}
    assert r.metrics["training_accuracy_score"] == pytest.approx(1 / 3)
    assert "training_log_loss" not in r.metrics  # no predict_proba


def test_disable_restores_the_original_methods(tracking, iris):
    X, y = iris
    original = Tree.__dict__["fit"]
    cairn.autolog.sklearn.autolog()
    assert Tree.__dict__["fit"] is not original
    cairn.autolog.sklearn.autolog(disable=True)
    assert Tree.__dict__["fit"] is original
    assert "__init_subclass__" not in BaseEstimator.__dict__
    Tree().fit(X, y)
    assert cairn.Client().search_runs() == []


def test_autolog_turns_on_system_metrics_for_its_runs(tracking, iris):
    pytest.importorskip("psutil")
    X, y = iris
    assert "sklearn" in cairn.autolog(log_models=False)
    Tree().fit(X, y)
    r = only_run(cairn.Client())
    assert "system/cpu_utilization_percentage" in r.metrics
    assert "training_score" in r.metrics


def test_autolog_registers_models_when_asked(tracking):
    from sklearn.linear_model import LogisticRegression

    X = np.array([[0.0, 1.0], [1.0, 0.0], [0.9, 0.2], [0.1, 0.8]] * 5)
    y = np.array([0, 1, 1, 0] * 5)
    cairn.autolog(registered_model_name="auto-clf", system_metrics=False)
    try:
        with cairn.start_run() as run:
            LogisticRegression().fit(X, y)
    finally:
        cairn.autolog(disable=True)
    client = cairn.Client()
    versions = client.list_model_versions("auto-clf")
    assert [v.version for v in versions] == ["1.0.0"]
    assert versions[0].source_run_id == run.id
    model = cairn.models.load("auto-clf/1.0.0")
    assert model.predict(X).tolist() == y.tolist()
    assert any(a.path.startswith("model/") for a in client.list_artifacts(run.id))
