"""Review of anonymisation: entry points that record a run besides the writer's own path."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

import cairn
from cairn.anonymise import pseudonym

KEY = "team-secret-0123456789"


@pytest.fixture
def anonymised(monkeypatch):
    monkeypatch.setenv("CAIRN_ANONYMISE", "1")
    monkeypatch.setenv("CAIRN_ANONYMISE_KEY", KEY)
    monkeypatch.setenv("CAIRN_USER", "zelda")


def _rows_naming(db, needle: str) -> list[tuple]:
    conn = sqlite3.connect(str(db))
    try:
        found = []
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                if needle in repr(row).lower():
                    found.append((table, row))
        return found
    finally:
        conn.close()


def test_autolog_data_set_names_nobody(anonymised, tracking):
    """Autolog records the training data as a data set version linked to the run: its
    creator and message must not name the person the run's pseudonym hides."""
    from sklearn.linear_model import LogisticRegression

    cairn.autolog()
    try:
        X = np.random.RandomState(0).rand(20, 3)
        with cairn.start_run(name="zelda sweep") as run:
            LogisticRegression().fit(X, (X[:, 0] > 0.5).astype(int))
    finally:
        cairn.autolog(disable=True)
    cairn.flush()
    client = cairn.Client(str(tracking))
    assert client.get_run(run.id).user == pseudonym(KEY.encode(), "user", "zelda")
    versions = client.data.versions("Default.train")
    assert versions and versions[-1].created_by == pseudonym(KEY.encode(), "user", "zelda")
    assert _rows_naming(tracking / "index.db", "zelda") == []


def test_a_reproduction_run_names_nobody(anonymised, tracking):
    from cairn.reproduce.plan import Plan
    from cairn.reproduce.report import Report, record

    client = cairn.Client(str(tracking))
    original = client.create_run(params={"lr": "0.1"})
    client.set_terminated(original.id)
    original = client.get_run(original.id)
    report = Report(original.id, original.name, "Default", "failed",
                    Plan(original.id, original.name, "Default"), why=["no code"])
    rerun = client.get_run(record(client, original, report))
    assert rerun.user == pseudonym(KEY.encode(), "user", "zelda")
    assert _rows_naming(tracking / "index.db", "zelda") == []
