"""A team server with auth on: the mlflow client authenticates with MLFLOW_TRACKING_TOKEN,
and roles per experiment hold for what it reads and writes."""

from __future__ import annotations

import pytest

mlflow = pytest.importorskip("mlflow")
from mlflow.exceptions import MlflowException  # noqa: E402

ADMIN = "cairn_mlflow-compat-admin-token-0001"


@pytest.fixture(scope="module")
def server(tmp_path_factory):  # overrides conftest's server: this one checks tokens
    from serving import ThreadedServer

    from cairn.server.app import create_app
    from cairn.server.config import ServerSettings
    from cairn.store.local import LocalStore

    store = LocalStore(tmp_path_factory.mktemp("auth-store"))
    app = create_app(store, settings=ServerSettings(auth=True, bootstrap_token=ADMIN,
                                                    token_cache_s=0))
    app.state.cairn.start()
    with ThreadedServer(app) as url:
        yield url, store
    store.close()


def test_tokens_and_roles(url, server, monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    with pytest.raises(MlflowException) as e:
        MlflowClient(url).search_experiments()
    assert e.value.error_code == "UNAUTHENTICATED"

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", ADMIN)
    admin = MlflowClient(url)
    exp = admin.create_experiment("secured")
    run = admin.create_run(exp).info.run_id
    admin.log_metric(run, "m", 1.0)

    from cairn.server.context import sql_engine
    from cairn.store.sql.auth import AuthDB

    db = AuthDB(sql_engine(server[1]))
    db.create_user("viewer", created_by="test")
    _, secret = db.create_token("viewer", "mlflow")
    db.grant("viewer", "experiment", exp, "viewer", granted_by="test")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", secret)
    viewer = MlflowClient(url)
    assert viewer.get_run(run).data.metrics == {"m": 1.0}
    with pytest.raises(MlflowException) as e:
        viewer.log_metric(run, "m", 2.0)
    assert e.value.error_code == "PERMISSION_DENIED"
