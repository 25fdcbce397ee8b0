"""MLflow's model registry and MLflow 3 logged models against a Cairn server."""

from __future__ import annotations

import warnings

import pytest

mlflow = pytest.importorskip("mlflow")
from mlflow.exceptions import MlflowException  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    "ignore::FutureWarning",  # stages and get_latest_versions are deprecated in MLflow
    "ignore:.*type hint.*:UserWarning",  # a PythonModel without type hints
    "ignore::DeprecationWarning",
)


PIP = ["mlflow"]  # given, so that the client does not infer them (seconds per model)

with warnings.catch_warnings():  # MLflow warns about type hints when the class is made
    warnings.simplefilter("ignore", UserWarning)

    class Doubler(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return [2 * x for x in model_input]


def test_pyfunc_log_register_alias_and_load(url, client, cairn_client):
    mlflow.set_experiment("registry")
    with mlflow.start_run() as run:
        info = mlflow.pyfunc.log_model(name="model", python_model=Doubler(),
                                       registered_model_name="doubler", pip_requirements=PIP)
    assert info.model_uri.startswith("models:/m-")
    assert str(info.registered_model_version) == "1"
    client.set_registered_model_alias("doubler", "champion", "1")

    loaded = mlflow.pyfunc.load_model("models:/doubler@champion")
    assert list(loaded.predict([1, 2, 3])) == [2, 4, 6]
    assert list(mlflow.pyfunc.load_model("models:/doubler/1").predict([5])) == [10]
    assert list(mlflow.pyfunc.load_model(info.model_uri).predict([4])) == [8]
    assert list(mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model").predict([0])) == [0]

    mv = client.get_model_version_by_alias("doubler", "champion")
    assert mv.version == "1" and mv.run_id == run.info.run_id and mv.aliases == ["champion"]
    assert mv.source == info.model_uri
    logged = mlflow.get_logged_model(info.model_id)
    assert logged.status == "READY" and logged.source_run_id == run.info.run_id
    assert logged.tags["mlflow.modelVersions"]  # the client's registration note
    assert client.get_run(run.info.run_id).outputs.model_outputs[0].model_id == info.model_id
    import requests

    listed = requests.get(f"{url}/api/2.0/mlflow/logged-models/{info.model_id}/artifacts/"
                          "directories").json()
    assert listed["root_uri"] == logged.artifact_location
    assert {"MLmodel", "python_model.pkl"} <= {f["path"] for f in listed["files"]}
    # The ajax-api prefix the MLflow UI uses answers too.
    r = requests.get(f"{url}/ajax-api/2.0/mlflow/logged-models/{info.model_id}")
    assert r.json()["model"]["info"]["name"] == "model"

    # The same model in Cairn's registry: version 1 is the first registered version.
    cairn_models = {m.name: m for m in cairn_client.list_registered_models()}
    assert "doubler" in cairn_models
    (cv,) = cairn_client.list_model_versions("doubler")
    assert cv.version == "1.0.0" and cv.source_run_id == run.info.run_id
    assert cv.aliases == ("champion",)


def test_registry_versions_stages_and_aliases(url, client):
    mlflow.set_experiment("registry-stages")
    infos = []
    for _ in range(3):
        with mlflow.start_run():
            infos.append(mlflow.pyfunc.log_model(name="m", python_model=Doubler(),
                                                  pip_requirements=PIP))
    rm = client.create_registered_model("staged", tags={"team": "a"}, description="first")
    assert rm.name == "staged" and rm.tags == {"team": "a"}
    with pytest.raises(MlflowException) as e:
        client.create_registered_model("staged")
    assert e.value.error_code == "RESOURCE_ALREADY_EXISTS"
    versions = [client.create_model_version("staged", info.model_uri, run_id=info.run_id,
                                            model_id=info.model_id, tags={"i": str(i)})
                for i, info in enumerate(infos)]
    assert [v.version for v in versions] == ["1", "2", "3"]
    assert versions[0].current_stage == "None" and versions[2].tags == {"i": "2"}

    client.transition_model_version_stage("staged", "1", "production")
    got = client.transition_model_version_stage("staged", "2", "Production",
                                                archive_existing_versions=True)
    assert got.current_stage == "Production"
    assert client.get_model_version("staged", "1").current_stage == "Archived"
    client.transition_model_version_stage("staged", "3", "Staging")
    latest = {v.current_stage: v.version for v in client.get_latest_versions("staged")}
    assert latest == {"Archived": "1", "Production": "2", "Staging": "3"}
    assert [v.version for v in client.get_latest_versions("staged", ["Staging"])] == ["3"]
    assert list(mlflow.pyfunc.load_model("models:/staged/Production").predict([1])) == [2]

    client.set_registered_model_alias("staged", "best", "3")
    client.set_registered_model_alias("staged", "best", "2")  # moves
    assert client.get_model_version_by_alias("staged", "best").version == "2"
    assert client.get_registered_model("staged").aliases == {"best": "2"}
    client.delete_registered_model_alias("staged", "best")
    with pytest.raises(MlflowException) as e:
        client.get_model_version_by_alias("staged", "best")
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"

    client.update_registered_model("staged", description="second")
    client.set_registered_model_tag("staged", "owner", "ana")
    client.delete_registered_model_tag("staged", "team")
    client.update_model_version("staged", "1", description="old one")
    client.set_model_version_tag("staged", "1", "checked", "yes")
    client.delete_model_version_tag("staged", "1", "i")
    rm = client.get_registered_model("staged")
    assert rm.description == "second" and rm.tags == {"owner": "ana"}
    v1 = client.get_model_version("staged", "1")
    assert v1.description == "old one" and v1.tags == {"checked": "yes"}

    found = client.search_registered_models("name LIKE 'stag%'")
    assert [m.name for m in found] == ["staged"]
    assert client.search_registered_models("tags.owner = 'nobody'") == []
    found = client.search_model_versions("name = 'staged'")
    assert sorted(v.version for v in found) == ["1", "2", "3"]
    found = client.search_model_versions(f"run_id = '{infos[0].run_id}'")
    assert [(v.name, v.version) for v in found] == [("staged", "1")]
    copied = client.copy_model_version("models:/staged/3", "staged-copy")
    assert copied.version == "1"
    assert list(mlflow.pyfunc.load_model("models:/staged-copy/1").predict([3])) == [6]
    uri = client.get_model_version_download_uri("staged", "2")
    assert uri == mlflow.get_logged_model(infos[1].model_id).artifact_location

    with pytest.raises(MlflowException) as e:
        client.get_model_version("staged", "9")
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as e:
        client.get_registered_model("no-such-model")
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_register_from_a_run_path(url, client, tmp_path):
    """An MLflow-2 style model: files logged under the run, registered by runs:/ URI."""
    mlflow.set_experiment("registry-runs")
    with mlflow.start_run() as run:
        mlflow.pyfunc.save_model(str(tmp_path / "saved"), python_model=Doubler(),
                                 pip_requirements=PIP)
        mlflow.log_artifacts(str(tmp_path / "saved"), artifact_path="legacy")
    mv = mlflow.register_model(f"runs:/{run.info.run_id}/legacy", "legacy-model")
    assert mv.version == "1"
    loaded = mlflow.pyfunc.load_model("models:/legacy-model/1")
    assert list(loaded.predict([21])) == [42]


@pytest.mark.filterwarnings("ignore::UserWarning")  # autolog's own notes on pickling etc.
def test_sklearn_autolog(url, client, cairn_client, monkeypatch):
    """mlflow.sklearn.autolog: params, metrics, artifacts, data set input and the model."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    mlflow.set_experiment("autolog")
    mlflow.sklearn.autolog(log_input_examples=False, log_model_signatures=False)
    try:
        with mlflow.start_run() as run:
            LogisticRegression(max_iter=300).fit(X, y)
    finally:
        mlflow.sklearn.autolog(disable=True)
    got = client.get_run(run.info.run_id)
    assert got.data.params["max_iter"] == "300"
    assert got.data.metrics["training_accuracy_score"] > 0.9
    assert got.inputs.dataset_inputs[0].tags[0].value == "train"
    (model,) = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id],
                                           output_format="list")
    loaded = mlflow.pyfunc.load_model(f"models:/{model.model_id}")
    assert list(loaded.predict(X[:2])) == list(LogisticRegression(max_iter=300).fit(X, y)
                                                .predict(X[:2]))
    files = {e.path for e in cairn_client.list_artifacts(run.info.run_id)}
    assert {"estimator.html", "model/MLmodel", "training_confusion_matrix.png"} <= files


def test_cairn_registered_models_are_visible_to_mlflow(url, client, cairn_client, tmp_path):
    from sklearn.linear_model import LinearRegression

    run = cairn_client.create_run(cairn_client.create_experiment("native-registry").id)
    model = LinearRegression().fit([[0.0], [1.0]], [0.0, 2.0])
    cv = cairn_client.register_model("native-model", model, run_id=run.id)
    cairn_client.set_terminated(run.id)
    rm = client.get_registered_model("native-model")
    assert rm.name == "native-model"
    (mv,) = client.search_model_versions("name = 'native-model'")
    assert mv.version == "1" and mv.run_id == run.id and mv.current_stage == "None"
    uri = client.get_model_version_download_uri("native-model", "1")
    assert uri.endswith(f"/{run.id}/artifacts/models/native-model/{cv.version}")
    local = mlflow.artifacts.download_artifacts("models:/native-model/1",
                                                dst_path=str(tmp_path / "dl"))
    import json
    import pathlib

    assert json.loads((pathlib.Path(local) / "cairn-model.json").read_text())["flavor"] == "sklearn"


def test_model_logged_outside_a_run(url, client):
    """MLflow 3 logs a model without a run; Cairn gives it a finished run of its own."""
    mlflow.set_experiment("no-run")
    info = mlflow.pyfunc.log_model(name="solo", python_model=Doubler(), pip_requirements=PIP)
    assert mlflow.active_run() is None
    assert list(mlflow.pyfunc.load_model(info.model_uri).predict([7])) == [14]
    holder = client.get_run(mlflow.get_logged_model(info.model_id).source_run_id)
    assert holder.info.status == "FINISHED" and holder.info.run_name.startswith("solo-")
