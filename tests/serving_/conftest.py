"""Fixtures for serving tests: a fresh store with real scikit-learn models registered."""

import time

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


def make_frame():
    rng = np.random.RandomState(0)
    X = pd.DataFrame(rng.randn(60, 3), columns=COLUMNS)
    y = (X["amount"] + 0.5 * X["age"] > 0).astype(int)
    return X, y


@pytest.fixture
def frame():
    return make_frame()


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


@pytest.fixture(scope="module")
def fraud_deployment(tmp_path_factory):
    """One deployment per test module for read-only tests: ``fraud`` 1.0.0 @prod, its body
    limit 4096 bytes, on a store of its own (requests do not change the store)."""
    from cairn.serving import deploy

    root = tmp_path_factory.mktemp("fraud")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CAIRN_KEYS_DIR", str(root / "keys"))
        mp.setenv("CAIRN_USER", "alice")
        mp.setenv("CAIRN_CAPTURE_ENV", "0")
        c = cairn.Client(str(root / "store"))
        mv = c.register_model("fraud", fit(make_frame()), input_example=make_frame()[0][:5])
        c.set_alias("fraud", "prod", mv.version)
        return deploy(registry_for(c), "models:/fraud@prod", follow=False, max_body=4096)


@pytest.fixture(scope="module")
def fraud_url(fraud_deployment):
    """``fraud_deployment`` behind a real HTTP server (one per test module)."""
    from serving import ThreadedServer

    with ThreadedServer(fraud_deployment.app) as base:
        yield base


def call(app, path, body: bytes, ctype: str):
    """One POST through an ASGI app, no sockets: (status, headers, body)."""
    import asyncio

    sent = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path,
             "headers": [(b"content-type", ctype.encode())]}
    asyncio.run(app(scope, receive, send))
    start, payload = sent
    return start["status"], dict(start["headers"]), payload["body"]


def register(client, tag, delay=0.0):
    """Register a ``Tagged`` model (answers ``tag`` for every row) as a new ``tagged`` version."""
    from .models import Tagged

    return client.register_model("tagged", Tagged(tag, delay), flavor="pickle")


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False
