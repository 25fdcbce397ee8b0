"""Fixtures for server tests: PostgreSQL schemas, in-process apps, real server processes."""

from __future__ import annotations

import pytest
from pg_fixtures import create_schema, pg_database  # noqa: F401  (a fixture)


@pytest.fixture
def pg_url(pg_database):  # noqa: F811
    """An empty schema in the session's PostgreSQL test database."""
    return create_schema(pg_database)


@pytest.fixture(params=[1, 4], ids=["1-worker", "4-workers"])
def server_workers(request):
    """How many worker processes a test's ``cairn server`` runs (``--workers``): the test
    runs once with one and once with four (replicas must answer alike)."""
    return request.param


@pytest.fixture
def spool(tmp_path, monkeypatch):
    """A private spool directory for remote clients of this test (and its children)."""
    path = tmp_path / "spool"
    monkeypatch.setenv("CAIRN_SPOOL_DIR", str(path))
    return path


@pytest.fixture(autouse=True)
def _close_remote_stores():
    """Close the process-wide HttpStores a test opened through cairn.Client(url)."""
    yield
    from cairn.store import close_stores

    close_stores("http", "https")
