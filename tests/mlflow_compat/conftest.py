"""A Cairn server per test module, and the real mlflow client pointed at it.

The client is configured the way a user would (``MLFLOW_TRACKING_URI``), with retries
off so that an error answer fails a test at once instead of after minutes of backoff.
"""

from __future__ import annotations

import pytest
from pg_fixtures import pg_database  # noqa: F401  (a fixture, for test_postgres.py)
from serving import ThreadedServer


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(url, store): a Cairn server on a fresh local store directory."""
    from cairn.server.app import create_app
    from cairn.store.local import LocalStore

    store = LocalStore(tmp_path_factory.mktemp("store"))
    with ThreadedServer(create_app(store)) as url:
        yield url, store
    store.close()


@pytest.fixture(scope="module")
def pg_server(request, tmp_path_factory):
    """(url, store): a Cairn server on PostgreSQL, shared by the module (the twin of
    ``server``)."""
    from serving import serve_postgres

    store, served = serve_postgres(request.getfixturevalue("pg_database"),
                                   tmp_path_factory.mktemp("objects"))
    with served as url:
        yield url, store
    store.close()


@pytest.fixture
def url(server, monkeypatch):
    import mlflow
    import mlflow.tracking.fluent as fluent

    url = server[0]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    mlflow.set_tracking_uri(url)
    mlflow.set_registry_uri(url)
    yield url
    while mlflow.active_run() is not None:
        mlflow.end_run()
    fluent._active_experiment_id = None
    fluent._last_active_run_id.set(None)
    fluent._last_logged_model_id.set(None)
    mlflow.set_tracking_uri(None)


@pytest.fixture
def client(url):
    from mlflow import MlflowClient

    return MlflowClient(url)


@pytest.fixture
def store(server):
    return server[1]


@pytest.fixture
def cairn_client(store):
    """Cairn's own client on the server's store (the same object: no second index handle)."""
    import cairn

    c = cairn.Client(store.uri)
    c._store = store
    return c
