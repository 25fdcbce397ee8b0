"""Fixtures for serving tests: a fresh store with real scikit-learn models registered."""

import numpy as np
import pandas as pd
import pytest

import cairn
from cairn.services import registry_for

COLUMNS = ["amount", "age", "score"]


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("CAIRN_KEYS_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("CAIRN_USER", "alice")
    monkeypatch.setenv("CAIRN_CAPTURE_ENV", "0")


@pytest.fixture
def frame():
    rng = np.random.RandomState(0)
    X = pd.DataFrame(rng.randn(60, 3), columns=COLUMNS)
    y = (X["amount"] + 0.5 * X["age"] > 0).astype(int)
    return X, y


def fit(frame, kind="logreg", seed=0):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    X, y = frame
    if kind == "forest":
        return RandomForestClassifier(n_estimators=5, random_state=seed).fit(X, y)
    return LogisticRegression(C=1.0 + seed).fit(X, y)


@pytest.fixture
def registry(tracking):
    return registry_for(cairn.Client(str(tracking)))


@pytest.fixture
def fraud(tracking, frame):
    """``fraud`` 1.0.0: a logistic regression on a data frame, aliased @prod."""
    c = cairn.Client(str(tracking))
    mv = c.register_model("fraud", fit(frame), input_example=frame[0][:5])
    c.set_alias("fraud", "prod", mv.version)
    return mv
