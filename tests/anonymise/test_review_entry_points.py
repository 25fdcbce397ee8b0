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


OFFLINE = """
import cairn
with cairn.start_run(name="zelda offline", params={"data": "/home/zelda/x.csv",
                     "mail": "Zelda@Lab.example.org", "peer": "10.20.30.40"},
                     tags={"mlflow.user": "zelda", "note": "by ZELDA"}):
    cairn.log_metric("loss", 0.5)
"""


def test_a_run_started_offline_spools_no_original(tmp_path):
    """A run against an unreachable server waits in the spool: those bytes leave the
    machine later, so they are anonymised too."""
    import os
    import subprocess
    import sys

    spool = tmp_path / "spool"
    env = {**os.environ, "CAIRN_TRACKING_URI": "http://127.0.0.1:9", "CAIRN_SPOOL_DIR":
           str(spool), "CAIRN_SPOOL_DRAIN_TIMEOUT": "0.5", "CAIRN_ANONYMISE": "1",
           "CAIRN_ANONYMISE_KEY": KEY, "CAIRN_USER": "zelda", "CAIRN_CAPTURE_ENV_VARS":
           "MY_DATA", "MY_DATA": "/home/zelda/data"}
    out = subprocess.run([sys.executable, "-c", OFFLINE], env=env, capture_output=True,
                         text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    journals = list(spool.rglob("*.cjl"))
    assert journals
    data = b"".join(p.read_bytes() for p in journals + list(spool.rglob("*.json"))).lower()
    for original in (b"zelda", b"10.20.30.40"):
        assert original not in data
    assert pseudonym(KEY.encode(), "user", "zelda").encode() in data
