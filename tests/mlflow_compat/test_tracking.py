"""The real mlflow client's tracking API against a Cairn server (local store)."""

from __future__ import annotations

import math

import pytest

mlflow = pytest.importorskip("mlflow")
from mlflow.exceptions import MlflowException  # noqa: E402


def test_fluent_run_is_a_cairn_run(url, cairn_client):
    mlflow.set_experiment("fluent")
    with mlflow.start_run(run_name="parent") as parent:
        mlflow.log_param("lr", 0.1)
        mlflow.log_params({"depth": 3, "model": "cnn"})
        mlflow.log_metric("loss", 1.0, step=0)
        mlflow.log_metric("loss", 0.5, step=1)
        mlflow.log_metrics({"acc": 0.9, "bad": float("nan")}, step=1)
        mlflow.set_tag("team", "vision")
        mlflow.set_tags({"a": "1", "b": "2"})
        with mlflow.start_run(run_name="child", nested=True) as child:
            mlflow.log_metric("inner", 2.0)
    got = mlflow.get_run(parent.info.run_id)
    assert got.info.status == "FINISHED" and got.info.end_time >= got.info.start_time
    assert got.info.run_name == "parent"
    assert got.info.artifact_uri == (f"mlflow-artifacts:/{got.info.experiment_id}/"
                                     f"{got.info.run_id}/artifacts")
    assert got.data.params == {"lr": "0.1", "depth": "3", "model": "cnn"}
    assert got.data.metrics["loss"] == 0.5 and got.data.metrics["acc"] == 0.9
    assert math.isnan(got.data.metrics["bad"])
    assert got.data.tags["team"] == "vision" and got.data.tags["mlflow.runName"] == "parent"
    kid = mlflow.get_run(child.info.run_id)
    assert kid.data.tags["mlflow.parentRunId"] == parent.info.run_id

    # The same runs through Cairn's own API: one store, not a side database.
    runs = cairn_client.search_runs("fluent", order_by=["start_time"])
    by_name = {r.name: r for r in runs}
    assert set(by_name) == {"parent", "child"}
    assert by_name["child"].parent_id == parent.info.run_id
    assert by_name["parent"].params["lr"] == "0.1"
    assert by_name["parent"].metrics["loss"] == 0.5
    assert str(by_name["parent"].status) == "FINISHED"


def test_run_name_is_generated_and_renamed(client, url):
    exp = client.create_experiment("names")
    run = client.create_run(exp)
    assert run.info.run_name and run.data.tags["mlflow.runName"] == run.info.run_name
    client.update_run(run.info.run_id, name="renamed")
    assert client.get_run(run.info.run_id).info.run_name == "renamed"
    client.set_tag(run.info.run_id, "mlflow.runName", "again")
    got = client.get_run(run.info.run_id)
    assert got.info.run_name == "again" and got.data.tags["mlflow.runName"] == "again"
    found = client.search_runs([exp], "tags.mlflow.runName = 'again'")
    assert [r.info.run_id for r in found] == [run.info.run_id]


def test_cairn_runs_are_visible_to_mlflow(client, cairn_client):
    c = cairn_client
    exp_id = c.create_experiment("native").id
    run = c.create_run(exp_id, name="from-cairn", params={"seed": "7"})
    c.log_batch(run.id, metrics=[("acc", 0.75, 3, 1000)], tags={"origin": "cairn"})
    c.set_terminated(run.id)
    exp = client.get_experiment_by_name("native")
    got = client.search_runs([exp.experiment_id], "params.seed = '7'")
    assert len(got) == 1
    r = got[0]
    assert r.info.run_name == "from-cairn" and r.info.status == "FINISHED"
    assert r.data.metrics == {"acc": 0.75} and r.data.tags["origin"] == "cairn"
    hist = client.get_metric_history(r.info.run_id, "acc")
    assert [(m.step, m.value) for m in hist] == [(3, 0.75)]


def test_search_filters_order_and_pages(client):
    exp = client.create_experiment("search")
    ids = []
    for i in range(7):
        run = client.create_run(exp, run_name=f"r{i}", tags={"parity": "even" if i % 2 == 0 else "odd"})
        client.log_metric(run.info.run_id, "acc", i / 10)
        client.log_param(run.info.run_id, "i", str(i))
        ids.append(run.info.run_id)
    client.set_terminated(ids[0], "FAILED")
    got = client.search_runs([exp], "metrics.acc >= 0.3 and tags.parity = 'even'",
                             order_by=["metrics.acc DESC"])
    assert [r.info.run_name for r in got] == ["r6", "r4"]
    got = client.search_runs([exp], "attributes.status = 'FAILED'")
    assert [r.info.run_id for r in got] == [ids[0]]
    got = client.search_runs([exp], "params.i IN ('1', '2')", order_by=["params.i ASC"])
    assert [r.info.run_name for r in got] == ["r1", "r2"]
    got = client.search_runs([exp], "attributes.run_name LIKE 'r%'", order_by=["attributes.run_name"])
    assert [r.info.run_name for r in got] == [f"r{i}" for i in range(7)]
    # Paging: three pages of at most 3, in MLflow's default order (newest first).
    page1 = client.search_runs([exp], max_results=3)
    page2 = client.search_runs([exp], max_results=3, page_token=page1.token)
    page3 = client.search_runs([exp], max_results=3, page_token=page2.token)
    names = [r.info.run_name for r in (*page1, *page2, *page3)]
    assert sorted(names) == sorted(f"r{i}" for i in range(7)) and page3.token is None
    df = mlflow.search_runs([exp], filter_string="metrics.acc < 0.2")
    assert sorted(df["tags.mlflow.runName"]) == ["r0", "r1"]
    with pytest.raises(MlflowException) as e:
        client.search_runs([exp], "metrics.acc >")
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"


def test_delete_restore_and_view_types(client):
    from mlflow.entities import ViewType

    exp = client.create_experiment("lifecycle")
    keep, gone = client.create_run(exp), client.create_run(exp)
    client.delete_run(gone.info.run_id)
    assert client.get_run(gone.info.run_id).info.lifecycle_stage == "deleted"
    active = client.search_runs([exp])
    assert [r.info.run_id for r in active] == [keep.info.run_id]
    deleted = client.search_runs([exp], run_view_type=ViewType.DELETED_ONLY)
    assert [r.info.run_id for r in deleted] == [gone.info.run_id]
    assert len(client.search_runs([exp], run_view_type=ViewType.ALL)) == 2
    client.restore_run(gone.info.run_id)
    assert len(client.search_runs([exp])) == 2

    client.set_experiment_tag(exp, "owner", "ana")
    client.rename_experiment(exp, "lifecycle-2")
    got = client.get_experiment(exp)
    assert got.name == "lifecycle-2" and got.tags["owner"] == "ana"
    client.delete_experiment(exp)
    assert client.get_experiment(exp).lifecycle_stage == "deleted"
    assert client.get_run(keep.info.run_id).info.lifecycle_stage == "deleted"  # as on MLflow
    names = [e.name for e in client.search_experiments()]
    assert "lifecycle-2" not in names
    assert "lifecycle-2" in [e.name for e in client.search_experiments(view_type=ViewType.ALL)]
    client.restore_experiment(exp)
    assert len(client.search_runs([exp])) == 2
    got = client.search_experiments(filter_string="name LIKE 'lifecycle%' and tags.owner = 'ana'")
    assert [e.experiment_id for e in got] == [exp]


def test_metric_history_pages_and_bulk_interval(client, url):
    import requests

    exp = client.create_experiment("history")
    run = client.create_run(exp).info.run_id
    from mlflow.entities import Metric

    for start in range(0, 3000, 1000):
        client.log_batch(run, metrics=[Metric("m", float(i), 1000 + i, i)
                                       for i in range(start, start + 1000)])
    client.log_metric(run, "m", float("inf"), step=3000)
    hist = client.get_metric_history(run, "m")
    assert len(hist) == 3001 and [m.step for m in hist[:3]] == [0, 1, 2]
    assert hist[-1].value == float("inf")
    # Paged by hand, as the UI does.
    api = f"{url}/api/2.0/mlflow/metrics/get-history"
    first = requests.get(api, params={"run_id": run, "metric_key": "m", "max_results": 1000}).json()
    assert len(first["metrics"]) == 1000 and first["metrics"][0]["timestamp"] == 1000
    second = requests.get(api, params={"run_id": run, "metric_key": "m", "max_results": 1000,
                                       "page_token": first["next_page_token"]}).json()
    assert second["metrics"][0]["step"] == 1000
    bulk = requests.get(f"{url}/api/2.0/mlflow/metrics/get-history-bulk-interval",
                        params={"run_ids": run, "metric_key": "m", "max_results": 11,
                                "start_step": 0, "end_step": 1000}).json()["metrics"]
    assert [m["step"] for m in bulk] == list(range(0, 1001, 100))
    assert all(m["run_id"] == run for m in bulk)


def test_log_batch_limits(client):
    from mlflow.entities import Metric, Param, RunTag

    run = client.create_run(client.create_experiment("limits")).info.run_id
    client.log_batch(run, metrics=[Metric(f"m{i}", i, 0, 0) for i in range(1000)])
    client.log_batch(run, params=[Param(f"p{i}", str(i)) for i in range(100)],
                     tags=[RunTag(f"t{i}", str(i)) for i in range(100)])
    got = client.get_run(run)
    assert len(got.data.metrics) == 1000 and len(got.data.params) == 100
    assert got.data.tags["t99"] == "99"
    for kwargs in ({"metrics": [Metric(f"x{i}", i, 0, 0) for i in range(1001)]},
                   {"params": [Param(f"q{i}", "v") for i in range(101)]},
                   {"tags": [RunTag(f"u{i}", "v") for i in range(101)]}):
        with pytest.raises(MlflowException) as e:
            # The client splits oversized batches itself; send one request as it would.
            client._tracking_client.store.log_batch(run, **{"metrics": [], "params": [],
                                                            "tags": [], **kwargs})
        assert e.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "x0" not in client.get_run(run).data.metrics  # nothing of a refused batch


def test_error_codes(client):
    with pytest.raises(MlflowException) as e:
        client.get_run("0123456789abcdef0123456789abcdef")
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    client.create_experiment("dup")
    with pytest.raises(MlflowException) as e:
        client.create_experiment("dup")
    assert e.value.error_code == "RESOURCE_ALREADY_EXISTS"
    assert client.get_experiment_by_name("no-such-experiment") is None
    run = client.create_run(client.get_experiment_by_name("dup").experiment_id).info.run_id
    client.log_param(run, "p", "1")
    with pytest.raises(MlflowException) as e:
        client.log_param(run, "p", "2")  # params are immutable, as in MLflow
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException) as e:
        client.delete_tag(run, "never-set")
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as e:
        client.log_metric("0123456789abcdef0123456789abcdef", "m", 1.0)
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    client.set_terminated(run)
    with pytest.raises(MlflowException) as e:  # a finished Cairn run is immutable (a 400)
        client.log_metric(run, "late", 1.0)
    assert e.value.error_code == "INVALID_STATE"
    client.set_tag(run, "still", "editable")
    assert client.get_run(run).data.tags["still"] == "editable"


def test_wire_details(url):
    """What the client sends that a friendly client would not: GET lists, bool case,
    run_uuid only, DELETE bodies, unknown endpoints."""
    import requests

    api = f"{url}/api/2.0/mlflow"
    exp = requests.post(f"{api}/experiments/create", json={"name": "wire"}).json()["experiment_id"]
    run = requests.post(f"{api}/runs/create", json={"experiment_id": exp, "start_time": 5}).json()
    rid = run["run"]["info"]["run_id"]
    assert run["run"]["info"]["start_time"] == 5  # int64 as a JSON number
    r = requests.post(f"{api}/runs/log-metric", json={"run_uuid": rid, "key": "m",
                                                      "value": "NaN", "timestamp": 1, "step": 0})
    assert r.status_code == 200 and r.json() == {}
    got = requests.get(f"{api}/runs/get", params={"run_uuid": rid}).json()
    assert got["run"]["data"]["metrics"][0]["value"] == "NaN"
    found = requests.get(f"{api}/experiments/search",
                         params={"max_results": "10", "filter": "name = 'wire'"}).json()
    assert [e["experiment_id"] for e in found["experiments"]] == [exp]
    r = requests.get(f"{api}/metrics/get-history-bulk-interval",
                     params={"run_ids": rid, "metric_key": "m"})
    assert r.status_code == 200 and len(r.json()["metrics"]) == 1
    r = requests.get(f"{api}/no/such/endpoint")
    assert r.status_code == 404 and r.json()["error_code"] == "ENDPOINT_NOT_FOUND"
    r = requests.post(f"{api}/runs/log-metric", json={"run_id": rid, "key": "m", "value": "x",
                                                      "timestamp": 1})
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    r = requests.post(f"{api}/runs/create", data=b"[1]", headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert requests.get(f"{url}/api/3.0/mlflow/server-info").json()["multipart_uploads_enabled"] is False


def test_mlflow_runs_are_not_presumed_dead(client, store, monkeypatch):
    """The client sends no heartbeats: a quiet run stays RUNNING, as on MLflow."""
    import time

    monkeypatch.setenv("CAIRN_HEARTBEAT_TIMEOUT", "0.2")
    run = client.create_run(client.create_experiment("quiet")).info.run_id
    time.sleep(0.5)
    assert client.get_run(run).info.status == "RUNNING"
    client.log_metric(run, "m", 1.0)
    time.sleep(0.5)
    assert client.get_run(run).info.status == "RUNNING"
    # The promise is in the run's first journal record, so a rebuilt index keeps it.
    store.reindex()
    assert client.get_run(run).info.status == "RUNNING"
    client.set_terminated(run)
    assert client.get_run(run).info.status == "FINISHED"


@pytest.mark.filterwarnings("ignore:Starting with pandas version 4.0")  # inside mlflow.data
def test_inputs_and_logged_model_history(client, url):
    import pandas as pd
    from mlflow.models import Model

    df = pd.DataFrame({"x": [1, 2, 3], "y": [0, 1, 0]})
    dataset = mlflow.data.from_pandas(df, name="train-set")
    mlflow.set_experiment("inputs")
    with mlflow.start_run() as run:
        mlflow.log_input(dataset, context="training")
        mlflow.log_input(dataset, context="training")  # the same data set once
    got = client.get_run(run.info.run_id)
    (inp,) = got.inputs.dataset_inputs
    assert inp.dataset.name == "train-set" and inp.dataset.digest == dataset.digest
    assert {t.key: t.value for t in inp.tags}["mlflow.data.context"] == "training"
    assert not any(k.startswith("cairn.mlflow.") for k in got.data.tags)

    client._tracking_client.store.record_logged_model(
        run.info.run_id, Model(artifact_path="legacy", run_id=run.info.run_id))
    history = client.get_run(run.info.run_id).data.tags["mlflow.log-model.history"]
    import json

    assert json.loads(history)[0]["artifact_path"] == "legacy"


def test_what_survives_a_reindex_of_a_local_store(client, store):
    """docs/mlflow.md: renames, tags and (since #17) deletions survive `cairn reindex`."""
    exp = client.create_experiment("before-reindex")
    client.rename_experiment(exp, "after-reindex")
    client.set_experiment_tag(exp, "k", "v")
    run = client.create_run(exp, run_name="old").info.run_id
    client.update_run(run, name="new")
    client.delete_run(run)
    store.reindex()
    got = client.get_experiment(exp)
    assert got.name == "after-reindex" and got.tags == {"k": "v"}
    info = client.get_run(run).info
    assert info.run_name == "new"
    assert info.lifecycle_stage == "deleted"  # journalled, as Cairn's own delete


def test_mlflow_writes_are_audited(client, store):
    """Every change through the MLflow API lands in Cairn's hash-chained audit log."""
    import time

    from cairn.registry import audit as chain
    from cairn.server.context import sql_engine
    from cairn.store.sql.engine import session

    exp = client.create_experiment("audited")
    run = client.create_run(exp).info.run_id
    client.log_param(run, "p", "1")
    client.set_terminated(run)
    # The server writes queued events in batches, in the background.
    deadline = time.monotonic() + 5
    while True:
        with session(sql_engine(store)) as conn:
            events = [(e.action, e.target) for e in chain.events(conn)]
        if ("run.end", f"runs/{run}") in events or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert ("experiment.create", f"experiments/{exp}") in events
    assert ("run.create", f"runs/{run}") in events
    assert ("run.log", f"runs/{run}") in events
    assert ("run.end", f"runs/{run}") in events


def test_a_run_logged_call_by_call_keeps_one_journal(client, store, cairn_client):
    # Every MLflow call is a request; they share the run's server-side writer, so a run
    # logged one metric at a time is one journal file, its records in order.
    exp = client.create_experiment("call-by-call")
    run_id = client.create_run(exp).info.run_id
    for step in range(20):
        client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
    client.set_tag(run_id, "phase", "done")
    client.set_terminated(run_id)
    journals = list((store.root / "runs" / run_id / "journal").glob("*.cjl"))
    assert len(journals) == 1
    assert list(cairn_client.get_metric_history(run_id, "loss").steps) == list(range(20))
    assert cairn_client.get_run(run_id).status.value == "FINISHED"


def test_the_docs_quickstart_runs_and_cairn_lists_it(url, monkeypatch, tmp_path):
    """docs/mlflow.md: its python block, run as the user's unchanged mlflow code against the
    server, gives a run that `cairn runs ls -e my-experiment` (over the server) lists."""
    import json
    import re
    from pathlib import Path

    import mlflow
    from click.testing import CliRunner

    from cairn.cli.main import cli

    text = (Path(__file__).resolve().parents[2] / "docs" / "mlflow.md").read_text()
    [code] = re.findall(r"^```python\n(.*?)^```", text, re.M | re.S)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CAIRN_SPOOL_DIR", str(tmp_path / "spool"))
    exec(compile(code, "docs/mlflow.md", "exec"), {"__name__": "docs_mlflow"})
    assert mlflow.active_run() is None

    result = CliRunner().invoke(cli, ["--uri", url, "runs", "ls", "-e", "my-experiment",
                                      "--json"])
    assert result.exit_code == 0, result.output
    [run] = json.loads(result.output)["runs"]
    assert run["name"] == "baseline" and run["status"] == "FINISHED"
    assert run["params"] == {"lr": "0.01", "depth": "6"}
    assert run["metrics"]["loss"] == 0.1  # the last of 10 steps
    files = [f.path for f in mlflow.MlflowClient().list_artifacts(run["id"])]
    assert files == ["config.json"]
