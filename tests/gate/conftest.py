"""Fixtures for the gate's tests: a private keys directory, a known user, and a prepared
registry (``fraud``: a weak baseline in Production, a clearly better candidate)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # world.py, shared by the gate's test modules

from world import train  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("CAIRN_KEYS_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("CAIRN_USER", "alice")
    monkeypatch.setenv("CAIRN_CAPTURE_ENV", "0")


@pytest.fixture
def fraud(client):
    """``fraud`` 1.0.0 (noisy labels, AUC about 0.71) in Production and 1.1.0 (clean
    labels, AUC about 0.98) under @candidate, each with three seed runs."""
    base = train(client, noise=3.0, seeds=(0, 1, 2))
    client.transition_model_version_stage("fraud", base.version, "production")
    cand = train(client, noise=0.5, seeds=(10, 11, 12))
    client.set_alias("fraud", "candidate", cand.version)
    return base, cand
