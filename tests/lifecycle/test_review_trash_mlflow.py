"""Review of the trash through the MLflow routes, with the real mlflow client, against what
``mlflow server`` answers (its SQL store)."""

from __future__ import annotations

import pytest
from serving import ThreadedServer


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    from cairn.server.app import create_app
    from cairn.store.local import LocalStore

    store = LocalStore(tmp_path_factory.mktemp("store"))
    with ThreadedServer(create_app(store)) as served:
        yield served
    store.close()


@pytest.fixture
def client(url, monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    return MlflowClient(url, registry_uri=url)


def test_deleting_a_deleted_experiment_or_restoring_a_live_one_is_not_found(client):
    """mlflow server looks the experiment up among the active ones to delete it and among
    the deleted ones to restore it: a second delete, or a restore of a live experiment,
    answers RESOURCE_DOES_NOT_EXIST and changes nothing."""
    from mlflow.exceptions import MlflowException

    exp = client.create_experiment("twice")
    run = client.create_run(exp).info.run_id
    with pytest.raises(MlflowException) as e:
        client.restore_experiment(exp)
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert f"No Experiment with id={exp} exists" in e.value.message
    client.delete_experiment(exp)
    with pytest.raises(MlflowException) as e:
        client.delete_experiment(exp)
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert client.get_experiment(exp).lifecycle_stage == "deleted"
    client.restore_experiment(exp)
    assert client.get_experiment(exp).lifecycle_stage == "active"
    assert client.get_run(run).info.lifecycle_stage == "active"
