import shutil

import pytest

from cairn import Client
from cairn.store import close_store
from pg_fixtures import pg_database, pg_url  # noqa: F401  (fixtures, used by name)

from .mlflow_world import build


@pytest.fixture(autouse=True)
def mlflow_env(monkeypatch, tmp_path):
    """Per test: mlflow's default store is a throw-away one, and mlflow's fluent state is reset."""
    import mlflow
    from mlflow.tracking import fluent

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow-default.db'}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    yield
    while mlflow.active_run() is not None:
        mlflow.end_run()
    fluent._active_experiment_id = None
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


@pytest.fixture(scope="session")
def mlflow_sources(tmp_path_factory):
    """One SQLite store and one mlruns directory, written once by the real mlflow client.

    Imports only read them; a test that changes a source works on a copy.
    """
    with pytest.MonkeyPatch.context() as mp:
        root = tmp_path_factory.mktemp("mlflow-sources")
        mp.chdir(root)  # MLflow's SQL store puts the Default experiment's artifacts under ./mlruns
        mp.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
        sqlite_uri = f"sqlite:///{root / 'mlflow.db'}"
        sqlite_ids = build(sqlite_uri, root / "sqlite-work", explicit_locations=True)
        mlruns = root / "fs" / "mlruns"
        file_ids = build(mlruns.as_uri(), root / "file-work", explicit_locations=False)
    return {"sqlite": (sqlite_uri, sqlite_ids), "mlruns": (mlruns, file_ids), "root": root}


@pytest.fixture
def sqlite_copy(mlflow_sources, tmp_path):
    """A copy of the SQLite store's database (its artifacts stay shared and unchanged)."""
    uri, ids = mlflow_sources["sqlite"]
    copy = tmp_path / "copy.db"
    shutil.copy(uri[len("sqlite:///"):], copy)
    return f"sqlite:///{copy}", ids


@pytest.fixture
def cairn_client(tmp_path):
    """A Client on a fresh local store."""
    path = tmp_path / "cairn-store"
    yield Client(str(path))
    close_store(str(path))
