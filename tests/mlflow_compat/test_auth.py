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


def test_a_deleted_run_is_refused_after_the_role_check(url, server, monkeypatch):
    """A caller without the editor role learns nothing of a run's state: 403 first, and
    the 'must be active' answer only for one who could write to it."""
    from mlflow import MlflowClient

    from cairn.server.context import sql_engine
    from cairn.store.sql.auth import AuthDB

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", ADMIN)
    admin = MlflowClient(url)
    exp = admin.create_experiment("secured-deleted")
    run = admin.create_run(exp).info.run_id
    admin.delete_run(run)
    db = AuthDB(sql_engine(server[1]))
    for user, role in (("deleted-viewer", "viewer"), ("deleted-editor", "editor")):
        db.create_user(user, created_by="test")
        _, secret = db.create_token(user, "mlflow")
        db.grant(user, "experiment", exp, role, granted_by="test")
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", secret)
        client = MlflowClient(url)
        for method, args in ((client.log_metric, ("m", 1.0)), (client.log_param, ("p", "1")),
                             (client.set_tag, ("t", "1"))):
            with pytest.raises(MlflowException) as e:
                method(run, *args)
            assert e.value.error_code == (
                "PERMISSION_DENIED" if role == "viewer" else "INVALID_PARAMETER_VALUE")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", ADMIN)
    got = admin.get_run(run)
    assert (got.data.metrics, got.data.params) == ({}, {})
