"""The real mlflow client against a Cairn server, around the trash (issue #21): a deleted model
version answers RESOURCE_DOES_NOT_EXIST as ``mlflow server`` does for a deleted version, keeps
its number, and comes back (same MLflow number) when Cairn restores it; deleting a registered
model stays permanent, as MLflow's is."""

from __future__ import annotations

import uuid

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException


def _mlflow(url: str) -> MlflowClient:
    return MlflowClient(url, registry_uri=url)


def test_a_deleted_version_is_not_there_for_mlflow_until_it_is_restored(url, cairn_client):
    client = _mlflow(url)
    name = f"trash-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    ext = uuid.uuid4().hex
    for _ in range(3):
        client.create_model_version(name, f"runs:/{ext}/model", run_id=ext)
    client.delete_model_version(name, "2")
    with pytest.raises(MlflowException) as e:
        client.get_model_version(name, "2")
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert [v.version for v in client.search_model_versions(f"name = '{name}'")] == ["3", "1"]
    [item] = [i for i in cairn_client.list_trash() if i.identifier.startswith(name + "/")]
    assert item.kind == "model_version"
    cairn_version = item.identifier.rpartition("/")[2]
    assert client.create_model_version(name, f"runs:/{ext}/model", run_id=ext).version == "4"
    cairn_client.restore_model_version(name, cairn_version)
    back = client.get_model_version(name, "2")  # the same MLflow number as before
    assert back.version == "2" and back.run_id == ext
    assert sorted(v.version for v in client.search_model_versions(f"name = '{name}'")) == [
        "1", "2", "3", "4"]
    # Deleting the model is permanent, as in MLflow: versions in the trash go with it.
    client.delete_model_version(name, "3")
    client.delete_registered_model(name)
    with pytest.raises(MlflowException) as e:
        client.get_registered_model(name)
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert not [i for i in cairn_client.list_trash() if i.identifier.startswith(name + "/")]
