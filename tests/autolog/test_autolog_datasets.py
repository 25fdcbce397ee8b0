"""Autologged training data as data set versions: run inputs, lineage, dedup, limits, stores."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import cairn
from cairn.autolog import _common

pytest.importorskip("sklearn", reason="needs scikit-learn: pip install 'cairn[sklearn]'")
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.tree import DecisionTreeClassifier as Tree  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_messages():
    """Autolog says each data-set problem once per process: start every test afresh."""
    _common._warned.clear()
    yield
    _common._warned.clear()


@pytest.fixture
def xy():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    return X, (X[:, 0] > 0).astype(np.int64)


def runs(client=None):
    return sorted((client or cairn.Client()).search_runs(), key=lambda r: r.start_time)


def inputs(run_id):
    return cairn.Client().data.catalog.run_inputs(run_id)


def test_a_fit_records_its_data_as_a_version_and_a_train_input(tracking, xy):
    X, y = xy
    cairn.autolog.sklearn.autolog(log_models=False)
    Tree(max_depth=2).fit(X, y)
    client = cairn.Client()
    [r] = runs(client)
    assert inputs(r.id) == [("Default.train", 1, "train")]  # named after the experiment
    assert r.tags["cairn.input.dataset"] == "Default.train@1"
    assert r.tags["cairn.input.digest"] == _common.digest(X, y)  # the tags stay
    assert r.tags["cairn.input.shape"] == "[60, 3]" and r.tags["cairn.input.target_shape"] == "[60]"
    v = client.data.version("Default.train@1")
    assert v.source == "memory:" + r.tags["cairn.input.digest"]
    assert v.stats["data.npy"]["shape"] == [60, 3] and v.stats["target.npy"]["dtype"] == "int64"
    data, target = client.data.load_array(v.ref)
    assert data.dtype == X.dtype and (data == X).all() and (target == y).all()
    # The run's lineage reaches the data, with its role.
    edges = client.lineage(f"run:{r.id}").edges
    assert [(e.source, e.relation, e.role) for e in edges if e.relation == "input"] == [
        ("dataset:Default.train@1", "input", "train")]
    down = client.lineage("Default.train@1", direction="downstream")
    assert f"run:{r.id}" in down.ids()


def test_the_same_data_is_one_version_and_new_data_a_new_one(tracking, xy):
    X, y = xy
    cairn.autolog.sklearn.autolog(log_models=False)
    Tree(max_depth=1).fit(X, y)
    Tree(max_depth=2).fit(X.copy(), y.copy())  # equal content, other objects
    LogisticRegression().fit(X[:40], y[:40])  # other data
    Tree(max_depth=3).fit(X, y)  # the first data again
    first, second, third, fourth = runs()
    assert [inputs(r.id) for r in (first, second, fourth)] == [[("Default.train", 1, "train")]] * 3
    assert inputs(third.id) == [("Default.train", 2, "train")]
    assert [v.version for v in cairn.Client().data.versions("Default.train")] == [1, 2]
    data, target = cairn.Client().data.load_array("Default.train@2")
    assert (data == X[:40]).all() and (target == y[:40]).all()


def test_data_frames_round_trip_and_dataset_name_names_the_data_set(tracking):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True, as_frame=True)
    cairn.autolog(dataset_name="iris", log_models=False, system_metrics=False)
    Tree(max_depth=2).fit(X, y)
    [r] = runs()
    assert r.tags["cairn.input.dataset"] == "iris.train@1"
    data, target = cairn.Client().data.load_array("iris.train@1")
    pd.testing.assert_frame_equal(data, X)
    pd.testing.assert_series_equal(target, y)
    stats = cairn.Client().data.version("iris.train@1").stats["data.parquet"]
    assert stats["rows"] == 150 and "petal length (cm)" in stats["schema"]
    with pytest.raises(cairn.InvalidArgument):
        cairn.autolog(dataset_name="not a name!")


def test_a_registered_model_lists_its_training_data(tracking, xy):
    X, y = xy
    cairn.autolog(registered_model_name="clf", system_metrics=False)
    LogisticRegression().fit(X, y)
    client = cairn.Client()
    [mv] = client.list_model_versions("clf")
    up = client.lineage("model:clf@" + mv.version)
    assert "dataset:Default.train@1" in up.ids()  # model <- run <- data, and model <- data
    assert any(e.source == "dataset:Default.train@1" and e.relation == "trained" for e in up.edges)


def test_data_over_the_size_limit_keeps_only_its_tags(tracking, xy, monkeypatch, caplog):
    X, y = xy
    monkeypatch.setenv("CAIRN_AUTOLOG_MAX_DATASET_BYTES", str(X.nbytes))  # X fits, X + y not
    cairn.autolog.sklearn.autolog(log_models=False)
    with caplog.at_level(logging.WARNING, logger="cairn.autolog"):
        Tree().fit(X, y)
        Tree(max_depth=1).fit(X, y)
    for r in runs():
        assert r.tags["cairn.input.digest"] == _common.digest(X, y)
        assert "cairn.input.dataset" not in r.tags and inputs(r.id) == []
    assert cairn.Client().data.list() == []
    said = [m for m in caplog.messages if "CAIRN_AUTOLOG_MAX_DATASET_BYTES" in m]
    assert len(said) == 1 and "Default.train" in said[0]  # said once, with the reason
    monkeypatch.setenv("CAIRN_AUTOLOG_MAX_DATASET_BYTES", "1KiB")
    Tree().fit(X[:10], y[:10])  # 10 * 3 * 8 + 10 * 8 bytes: stored
    assert inputs(runs()[-1].id) == [("Default.train", 1, "train")]


def test_a_store_without_data_sets_still_trains_and_tags(cairn_memory_store, xy, caplog):
    X, y = xy
    cairn.autolog.sklearn.autolog(log_models=False)
    with caplog.at_level(logging.WARNING, logger="cairn.autolog"):
        model = Tree().fit(X, y)
        Tree().fit(X, y)
    assert model.score(X, y) > 0.9
    client = cairn.Client()
    for r in client.search_runs():
        assert r.status is cairn.RunStatus.FINISHED
        assert r.tags["cairn.input.digest"] == _common.digest(X, y)
        assert "cairn.input.dataset" not in r.tags
    assert len([m for m in caplog.messages if "keeps no data sets" in m]) == 1


def test_a_server_store_trains_tags_and_keeps_the_data_set(tmp_path, monkeypatch, xy, caplog,
                                                           cairn_state):
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    from serving import ThreadedServer

    from cairn.cas import ObjectStore
    from cairn.server import create_app
    from cairn.store.sql.store import SqlStore

    X, y = xy
    monkeypatch.setenv("CAIRN_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("CAIRN_CAPTURE_ENV", "0")
    server_store = SqlStore(f"sqlite:///{tmp_path / 'server.db'}",
                            ObjectStore.local(tmp_path / "objects"))
    try:
        with ThreadedServer(create_app(server_store)) as url:
            cairn.set_tracking_uri(url)
            cairn.autolog.sklearn.autolog(log_models=False)
            with caplog.at_level(logging.WARNING, logger="cairn.autolog"):
                Tree().fit(X, y)
            [r] = cairn.Client(url).search_runs()
            assert r.status is cairn.RunStatus.FINISHED
            assert r.tags["cairn.input.digest"] == _common.digest(X, y)
            # A server keeps data sets too (cairn.data.remote): the version is on it.
            assert r.tags["cairn.input.dataset"] == "Default.train@1"
            assert not any("keeps no data sets" in m for m in caplog.messages)
            data, _ = cairn.Client(url).data.load_array("Default.train@1")
            assert (data == X).all()
    finally:
        cairn_state.reset()  # the remote store closes before the server's store does
        server_store.close()


def test_data_that_has_no_file_form_keeps_its_tags(tracking, caplog):
    from sklearn.feature_extraction import DictVectorizer

    rows = [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    cairn.autolog.sklearn.autolog(log_models=False)
    with caplog.at_level(logging.WARNING, logger="cairn.autolog"):
        DictVectorizer().fit(rows)  # a list of dicts: Python objects
    [r] = runs()
    assert r.status is cairn.RunStatus.FINISHED and r.tags["cairn.input.digest"]
    assert inputs(r.id) == [] and "cairn.input.dataset" not in r.tags
    assert any("not stored as a data set version" in m for m in caplog.messages)


def test_log_datasets_false_records_nothing(tracking, xy):
    X, y = xy
    cairn.autolog.sklearn.autolog(log_datasets=False, log_models=False)
    Tree().fit(X, y)
    [r] = runs()
    assert not [k for k in r.tags if k.startswith("cairn.input.")] and inputs(r.id) == []


def test_a_fit_inside_an_active_run_logs_into_it(tracking, xy):
    X, y = xy
    cairn.autolog.sklearn.autolog(log_models=False)
    with cairn.start_run() as run:
        Tree().fit(X, y)
    assert inputs(run.id) == [("Default.train", 1, "train")]
    assert cairn.Client().get_run(run.id).tags["cairn.input.dataset"] == "Default.train@1"


def test_pytorch_tracker_stores_a_snapshot_taken_as_it_starts(tracking):
    torch = pytest.importorskip("torch")
    from cairn.autolog.pytorch import track

    X = torch.arange(40, dtype=torch.float32).reshape(10, 4)
    y = torch.ones(10, 1)
    original = X.clone()
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    cairn.set_experiment("torch runs")
    with track(model, opt, data=X, targets=y, dataset_name="tiny") as t:
        run_id = t.run.id
        X.mul_(0)  # the training changes its data in place
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(X), y).backward()
        opt.step()
    r = cairn.Client().get_run(run_id)
    assert r.tags["cairn.input.dataset"] == "tiny.train@1"
    assert r.tags["cairn.input.digest"] == _common.digest(original, y)
    data, target = cairn.Client().data.load_array("tiny.train@1")
    assert (data == original.numpy()).all() and (target == 1).all()
    with track(model, opt, data=original, targets=y, log_datasets=False) as t2:
        run_id = t2.run.id
    assert inputs(run_id) == []
    assert "cairn.input.digest" not in cairn.Client().get_run(run_id).tags


def test_xgboost_versions_train_and_eval_matrices(tracking):
    xgb = pytest.importorskip("xgboost")
    sparse = pytest.importorskip("scipy.sparse")
    rng = np.random.default_rng(1)
    X = rng.normal(size=(80, 3))
    y = X[:, 0] + rng.normal(size=80) * 0.1
    dtrain = xgb.DMatrix(X[:60], label=y[:60])
    dvalid = xgb.DMatrix(X[60:], label=y[60:])
    cairn.autolog.xgboost.autolog(log_models=False)
    xgb.train({"max_depth": 2, "nthread": 1}, dtrain, num_boost_round=3,
              evals=[(dtrain, "train"), (dvalid, "eval")], verbose_eval=False)
    [r] = runs()
    assert inputs(r.id) == [("Default.eval", 1, "eval"), ("Default.train", 1, "train")]
    assert r.tags["cairn.input.dataset"] == "Default.train@1"
    assert r.tags["cairn.input.type"] == "xgboost.core.DMatrix"
    data, label = cairn.Client().data.load_array("Default.train@1")
    assert sparse.issparse(data)
    np.testing.assert_array_equal(data.toarray(), X[:60].astype(np.float32))
    np.testing.assert_array_equal(label, y[:60].astype(np.float32))
    data, label = cairn.Client().data.load_array("Default.eval@1")
    np.testing.assert_array_equal(data.toarray(), X[60:].astype(np.float32))
    # The scikit-learn wrapper: the eval_set entry that is the training data is not a second set.
    xgb.XGBRegressor(n_estimators=2, n_jobs=1).fit(X[:60], y[:60], verbose=False,
                                                  eval_set=[(X[:60], y[:60]), (X[60:], y[60:])])
    last = runs()[-1]
    assert inputs(last.id) == [("Default.validation_1", 1, "eval"), ("Default.train", 2, "train")]


def test_lightgbm_versions_train_and_valid_sets(tracking):
    lgb = pytest.importorskip("lightgbm")
    rng = np.random.default_rng(2)
    X = rng.normal(size=(120, 3))
    y = X[:, 0] * 2 + rng.normal(size=120) * 0.1
    train = lgb.Dataset(X[:90], label=y[:90])
    valid = lgb.Dataset(X[90:], label=y[90:], reference=train)
    cairn.autolog.lightgbm.autolog(log_models=False, dataset_name="reg")
    lgb.train({"objective": "regression", "verbose": -1, "num_threads": 1}, train,
              num_boost_round=3, valid_sets=[train, valid], valid_names=["training", "holdout"])
    [r] = runs()
    assert inputs(r.id) == [("reg.holdout", 1, "eval"), ("reg.train", 1, "train")]
    data, label = cairn.Client().data.load_array("reg.holdout@1")
    assert (data == X[90:]).all() and (label == y[90:]).all()


def test_data_set_names_come_from_any_experiment_name(tracking, xy):
    X, y = xy
    cairn.set_experiment("Fraud detection: v2/émigré")
    cairn.autolog.sklearn.autolog(log_models=False)
    Tree().fit(X, y)
    [r] = runs()
    assert r.tags["cairn.input.dataset"] == "Fraud-detection-v2/migr.train@1"


def test_sizes_are_read_without_copies():
    assert _common._nbytes(None) == 0 and _common._nbytes(np.zeros((4, 2))) == 64
    assert _common._nbytes([[1.0, 2.0]]) == 16 and _common._nbytes(object()) == 8
    sparse = pytest.importorskip("scipy.sparse")
    m = sparse.csr_matrix(np.eye(3))
    assert _common._nbytes(m) == m.data.nbytes + m.indices.nbytes + m.indptr.nbytes
