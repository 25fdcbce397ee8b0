"""Fixtures for registry tests: a fresh local store, a private keys directory, small data."""

import sqlite3

import numpy as np
import pytest

import cairn


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    # Never sign with (or write to) the developer's real keys; act as a known user.
    monkeypatch.setenv("CAIRN_KEYS_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("CAIRN_USER", "alice")
    monkeypatch.setenv("CAIRN_CAPTURE_ENV", "0")


@pytest.fixture
def data():
    rng = np.random.RandomState(0)
    X = rng.randn(60, 4)
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    return X, y


@pytest.fixture
def as_user(tracking):
    def make(user):
        return cairn.Client(str(tracking), user=user)

    return make


@pytest.fixture
def db(tracking):
    """A raw sqlite3 connection to the store's index (to forge and tamper as an attacker would)."""
    conns = []

    def connect():
        conn = sqlite3.connect(str(tracking / "index.db"), isolation_level=None)
        conns.append(conn)
        return conn

    yield connect
    for c in conns:
        c.close()


def fit_logreg(data, C=1.0):
    from sklearn.linear_model import LogisticRegression

    X, y = data
    return LogisticRegression(C=C).fit(X, y)
