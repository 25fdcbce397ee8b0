"""The fast path for scikit-learn forests: the same answers as the model's own predict, bit for
bit, or no fast path at all; and served over HTTP, with /v1/status saying which path serves."""

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression

import cairn
from cairn.serving import deploy
from cairn.serving.fastpath import accelerate
from cairn.services import registry_for

rng = np.random.default_rng(7)
X = rng.standard_normal((300, 6))
NAMES = [f"c{i}" for i in range(6)]
FRAME = pd.DataFrame(X, columns=NAMES)
Y_BIN = (X[:, 0] + X[:, 1] > 0).astype(int)
Y_STR = np.array(["low", "mid", "high"])[np.digitize(X[:, 2], [-0.5, 0.5])]
Y_REG = X[:, 0] * 3 + X[:, 3] ** 2
Y_MULTI = np.c_[Y_BIN, (X[:, 4] > 0).astype(int) + 5]


def _inputs(frame: bool):
    """Rows the models never saw, one at a time and all together, and values far outside
    the training range."""
    new = rng.standard_normal((200, 6)) * np.array([1, 10, 0.1, 1, 100, 1])
    rows = [new[i:i + 1] for i in range(0, 200, 17)] + [new, new * 1e6]
    return [pd.DataFrame(r, columns=NAMES) for r in rows] if frame else rows


MODELS = [
    ("rf-binary", lambda: RandomForestClassifier(25, random_state=0), Y_BIN),
    ("rf-strings", lambda: RandomForestClassifier(25, random_state=1), Y_STR),
    ("rf-multi-output", lambda: RandomForestClassifier(10, random_state=2), Y_MULTI),
    ("rf-regressor", lambda: RandomForestRegressor(20, random_state=3), Y_REG),
    ("rf-regressor-2out", lambda: RandomForestRegressor(8, random_state=4),
     np.c_[Y_REG, -Y_REG]),
    ("et-classifier", lambda: ExtraTreesClassifier(25, random_state=5), Y_STR),
    ("et-regressor", lambda: ExtraTreesRegressor(20, random_state=6), Y_REG),
    ("rf-n_jobs-1", lambda: RandomForestClassifier(12, random_state=7, n_jobs=1), Y_BIN),
]


@pytest.mark.parametrize("frame", [True, False], ids=["frame", "array"])
@pytest.mark.parametrize("name,make,y", MODELS, ids=[m[0] for m in MODELS])
def test_every_stock_forest_answers_as_its_own_predict(name, make, y, frame):
    model = make().fit(FRAME if frame else X, y)
    fast = accelerate(model)
    assert fast is not None
    for inputs in _inputs(frame):
        mine, theirs = fast(inputs), model.predict(inputs)
        assert mine.dtype == theirs.dtype and mine.shape == theirs.shape
        assert np.array_equal(mine, theirs)


def test_missing_values_answer_as_the_model_does():
    model = RandomForestClassifier(20, random_state=0).fit(FRAME, Y_BIN)
    fast = accelerate(model)
    rows = FRAME.iloc[:40].copy()
    rows.iloc[::3, 1] = np.nan
    assert np.array_equal(fast(rows), model.predict(rows))


@pytest.mark.parametrize("bad", [
    pd.DataFrame(X[:2, :5], columns=NAMES[:5]),            # a column short
    pd.DataFrame(X[:2], columns=[*NAMES[:5], "other"]),    # a wrong name
    pd.DataFrame([["a"] * 6], columns=NAMES),               # strings
    pd.DataFrame([[np.inf] * 6], columns=NAMES),            # infinity
], ids=["short", "renamed", "strings", "infinity"])
def test_bad_input_fails_as_the_model_fails(bad):
    model = RandomForestRegressor(5, random_state=0).fit(FRAME, Y_REG)
    fast = accelerate(model)
    with pytest.raises(Exception) as theirs:
        model.predict(bad)
    with pytest.raises(type(theirs.value)) as mine:
        fast(bad)
    assert str(mine.value) == str(theirs.value)


def test_no_fast_path_where_it_could_differ():
    class MyForest(RandomForestClassifier):  # a subclass may have its own predict
        pass

    assert accelerate(MyForest(5, random_state=0).fit(X, Y_BIN)) is None
    assert accelerate(RandomForestClassifier(5, n_jobs=2, random_state=0).fit(X, Y_BIN)) is None
    assert accelerate(LogisticRegression().fit(X, Y_BIN)) is None
    assert accelerate(RandomForestClassifier(5)) is None  # not fitted
    assert accelerate(object()) is None


@pytest.mark.parametrize("method", ["predict", "predict_proba", "_validate_X_predict"])
def test_a_model_with_a_method_replaced_on_the_instance_keeps_its_own(method):
    """A replacement that agrees on the generated rows (here: it differs only where a value
    is missing) would pass any check; no fast path for such a model."""
    model = RandomForestClassifier(5, random_state=0).fit(X, Y_BIN)
    own = getattr(model, method)

    def replaced(rows, *args, **kwargs):
        out = own(rows, *args, **kwargs)
        if method == "predict" and np.isnan(np.asarray(rows, dtype=float)).any():
            out = np.full(len(rows), -1)
        return out

    setattr(model, method, replaced)
    assert accelerate(model) is None
    Z = X[:3].copy()
    Z[0, 0] = np.nan
    if method == "predict":
        assert model.predict(Z)[0] == -1


def test_a_pruned_forest_whose_trees_are_an_array_is_served():
    """estimators_ as a NumPy array (pruned by hand): the fast path or the model's own, never
    an error that stops the version from loading."""
    model = RandomForestClassifier(20, random_state=0).fit(FRAME, Y_BIN)
    model.estimators_ = np.array(model.estimators_)[:10]
    fast = accelerate(model)
    assert fast is not None
    assert np.array_equal(fast(FRAME[:50]), model.predict(FRAME[:50]))
    model.estimators_ = np.array([], dtype=object)
    assert accelerate(model) is None


def test_a_refit_forest_is_not_left_behind():
    """warm_start adds trees to the same list: the fast path reads the model on every call."""
    model = RandomForestRegressor(10, random_state=0, warm_start=True).fit(FRAME, Y_REG)
    fast = accelerate(model)
    model.set_params(n_estimators=20).fit(FRAME, Y_REG)
    assert np.array_equal(fast(FRAME[:20]), model.predict(FRAME[:20]))


@pytest.mark.parametrize("fast_path", [True, False])
def test_served_over_http_same_answers_and_status_names_the_path(tmp_path, fast_path):
    import httpx
    from serving import ThreadedServer

    c = cairn.Client(str(tmp_path / "store"))
    model = RandomForestClassifier(30, random_state=0).fit(FRAME, Y_STR)
    c.register_model("trees", model, input_example=FRAME[:5])
    c.set_alias("trees", "prod", "1.0.0")
    d = deploy(registry_for(c), "models:/trees@prod", follow=False, fast_path=fast_path)
    assert d.holder.current.fast_path is fast_path
    rows = pd.DataFrame(rng.standard_normal((50, 6)), columns=NAMES)
    with ThreadedServer(d.app) as base:
        for i in range(0, 50, 7):
            body = {"dataframe_split": rows.iloc[i:i + 1].to_dict(orient="split")}
            body["dataframe_split"].pop("index")
            r = httpx.post(f"{base}/invocations", json=body)
            assert r.status_code == 200, r.text
            assert r.json() == {"predictions": model.predict(rows.iloc[i:i + 1]).tolist()}
        status = httpx.get(f"{base}/v1/status").json()
    assert status["arms"]["primary"]["fast_path"] is fast_path


@pytest.mark.slow  # two child processes
@pytest.mark.parametrize("flag, fast", [([], True), (["--no-fast-path"], False)])
def test_cairn_serve_says_which_path_serves(tmp_path, flag, fast):
    import json
    import os
    import signal
    import subprocess

    import httpx
    from serving import CAIRN, free_port, wait_ready

    store = tmp_path / "store"
    c = cairn.Client(str(store))
    model = RandomForestRegressor(10, random_state=0).fit(FRAME, Y_REG)
    c.register_model("trees", model, input_example=FRAME[:5])
    port = free_port()
    proc = subprocess.Popen([*CAIRN, "serve", "models:/trees/1.0.0", "--store", str(store),
                             "--port", str(port), "--json", "--log-sample", "0", *flag],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            start_new_session=True, text=True)
    try:
        wait_ready(f"http://127.0.0.1:{port}", 60, proc)
        r = httpx.post(f"http://127.0.0.1:{port}/invocations",
                       json={"dataframe_split": {"columns": NAMES, "data": X[:3].tolist()}})
        assert r.json() == {"predictions": model.predict(FRAME[:3]).tolist()}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
    assert json.loads(out)["arms"]["primary"]["fast_path"] is fast
