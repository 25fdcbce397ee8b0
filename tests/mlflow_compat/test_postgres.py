"""The mlflow client against a Cairn server on PostgreSQL (the team-server setup).

Never skipped: tests/pg_fixtures.py fails loudly when PostgreSQL is unreachable.
Also checks what the client logs through the server from Cairn's CLI (`cairn runs ls`,
`cairn models ls` pointed at the server's URL).
"""

from __future__ import annotations

import json
import math
import warnings

import pytest

mlflow = pytest.importorskip("mlflow")
from mlflow.exceptions import MlflowException  # noqa: E402

pytestmark = [pytest.mark.postgres, pytest.mark.filterwarnings(
    "ignore::FutureWarning", "ignore:.*type hint.*:UserWarning")]

with warnings.catch_warnings():  # MLflow warns about type hints when the class is made
    warnings.simplefilter("ignore", UserWarning)

    class Tripler(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return [3 * x for x in model_input]


@pytest.fixture(scope="module")
def server(pg_database, tmp_path_factory):  # noqa: F811  (overrides conftest's local server)
    from pg_fixtures import create_schema
    from serving import ThreadedServer

    from cairn.cas import ObjectStore
    from cairn.server.app import create_app
    from cairn.store.sql.store import SqlStore

    store = SqlStore(create_schema(pg_database),
                     ObjectStore.local(tmp_path_factory.mktemp("objects")))
    with ThreadedServer(create_app(store)) as url:
        yield url, store
    store.close()


def cli(url: str, *args: str):
    from click.testing import CliRunner

    from cairn.cli.main import cli as main

    result = CliRunner().invoke(main, ["--uri", url, *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_tracking_search_and_history_on_postgres(url, client, monkeypatch, tmp_path):
    monkeypatch.setenv("CAIRN_SPOOL_DIR", str(tmp_path / "spool"))
    mlflow.set_experiment("pg")
    with mlflow.start_run(run_name="outer") as outer:
        mlflow.log_params({"lr": 0.01, "layers": 4})
        for step in range(5):
            mlflow.log_metric("loss", 1 / (step + 1), step=step)
        mlflow.log_metric("odd", float("-inf"))
        mlflow.set_tag("kind", "baseline")
        mlflow.log_text("notes", "notes.txt")
        with mlflow.start_run(run_name="inner", nested=True):
            mlflow.log_metric("loss", 0.1)
    exp = outer.info.experiment_id
    got = client.get_run(outer.info.run_id)
    assert got.data.metrics["loss"] == 0.2 and got.data.metrics["odd"] == -math.inf
    assert [m.value for m in client.get_metric_history(outer.info.run_id, "loss")] == \
        [1.0, 0.5, 1 / 3, 0.25, 0.2]
    found = client.search_runs([exp], "metrics.loss < 0.5 and params.lr = '0.01'")
    assert [r.info.run_name for r in found] == ["outer"]
    found = client.search_runs([exp], order_by=["metrics.loss ASC"])
    assert [r.info.run_name for r in found] == ["inner", "outer"]
    client.delete_run(found[0].info.run_id)
    assert [r.info.run_name for r in client.search_runs([exp])] == ["outer"]
    from mlflow.entities import ViewType

    deleted = client.search_runs([exp], "metrics.loss < 0.5", run_view_type=ViewType.DELETED_ONLY)
    assert [r.info.run_name for r in deleted] == ["inner"]
    assert len(client.search_runs([exp], run_view_type=ViewType.ALL, max_results=1)) == 1
    assert mlflow.artifacts.load_text(f"runs:/{outer.info.run_id}/notes.txt") == "notes"
    with pytest.raises(MlflowException) as e:
        client.create_experiment("pg")
    assert e.value.error_code == "RESOURCE_ALREADY_EXISTS"

    listed = cli(url, "runs", "ls", "-e", "pg", "--json")["runs"]
    assert [r["name"] for r in listed] == ["outer"]
    assert listed[0]["params"] == {"lr": "0.01", "layers": "4"}
    assert listed[0]["status"] == "FINISHED"


def test_registry_on_postgres(url, client, monkeypatch, tmp_path):
    monkeypatch.setenv("CAIRN_SPOOL_DIR", str(tmp_path / "spool"))
    mlflow.set_experiment("pg-registry")
    with mlflow.start_run():
        mlflow.pyfunc.log_model(name="model", python_model=Tripler(), registered_model_name="tri",
                                pip_requirements=["mlflow"])
    client.set_registered_model_alias("tri", "champion", "1")
    client.transition_model_version_stage("tri", "1", "Staging")
    assert list(mlflow.pyfunc.load_model("models:/tri@champion").predict([2])) == [6]
    models = {m["name"]: m for m in cli(url, "models", "ls", "--json")}
    assert "tri" in models
    shown = cli(url, "models", "show", "tri@champion", "--json")
    assert shown["stage"] == "Staging"
