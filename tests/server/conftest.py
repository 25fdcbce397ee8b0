"""Fixtures for server tests: PostgreSQL schemas, in-process apps, real server processes."""

from __future__ import annotations

import pytest
from pg_fixtures import create_schema, pg_database  # noqa: F401  (a fixture)


@pytest.fixture
def pg_url(pg_database):  # noqa: F811
    """An empty schema in the session's PostgreSQL test database."""
    return create_schema(pg_database)


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
    from cairn.store import _STORES

    for key in [k for k in _STORES if k.startswith(("http://", "https://"))]:
        _STORES.pop(key).close()
