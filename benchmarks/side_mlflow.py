"""The MLflow side: each workload against MLflow's local SQLite store.

Runs under ``benchmarks/.mlflow-venv/bin/python`` (see ``run.py``); never imports cairn.
Tracking URI ``sqlite:///WORKDIR/mlflow.db``, artifacts under ``WORKDIR/artifacts``.
Every MLflow call here is synchronous: when it returns, the data is committed.
"""

from __future__ import annotations

import time
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

import _common as c


def _open(workdir: Path, create: bool = True) -> tuple[MlflowClient, str]:
    """Point MLflow at the store in workdir; create the experiment (and so the schema) untimed."""
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    if create:
        exp_id = client.create_experiment(c.EXPERIMENT, artifact_location=(workdir / "artifacts").as_uri())
    else:
        exp_id = client.get_experiment_by_name(c.EXPERIMENT).experiment_id
    mlflow.set_experiment(experiment_id=exp_id)
    return client, exp_id


def _batches(key: str, values: list[float], ts: int) -> list[list[Metric]]:
    points = [Metric(key, v, ts, step) for step, v in enumerate(values)]
    return [points[i:i + c.BATCH_SIZE] for i in range(0, len(points), c.BATCH_SIZE)]


def log_metric(workdir: Path, n: int) -> dict:
    client, _ = _open(workdir)
    values = c.series(n)
    with mlflow.start_run() as run:
        t0 = time.perf_counter()
        for step, v in enumerate(values):
            mlflow.log_metric(c.METRIC_KEY, v, step=step, synchronous=True)
        seconds = time.perf_counter() - t0
    c.check(len(client.get_metric_history(run.info.run_id, c.METRIC_KEY)) == n, "history length")
    return {"seconds": seconds, "count": n}


def log_batch(workdir: Path, n: int) -> dict:
    client, exp_id = _open(workdir)
    run_id = client.create_run(exp_id).info.run_id
    batches = _batches(c.METRIC_KEY, c.series(n), c.now_ms())
    t0 = time.perf_counter()
    for batch in batches:
        client.log_batch(run_id, metrics=batch)
    seconds = time.perf_counter() - t0
    c.check(len(client.get_metric_history(run_id, c.METRIC_KEY)) == n, "history length")
    return {"seconds": seconds, "count": n}


def history_setup(workdir: Path, n: int) -> None:
    client, exp_id = _open(workdir)
    run_id = client.create_run(exp_id).info.run_id
    for batch in _batches(c.METRIC_KEY, c.series(n), c.now_ms()):
        client.log_batch(run_id, metrics=batch)
    client.log_batch(run_id, metrics=[Metric(c.WARM_KEY, 0.0, c.now_ms(), 0)])
    c.save_state(workdir, run_id=run_id)


def history(workdir: Path, n: int) -> dict:
    client, _ = _open(workdir, create=False)
    run_id = c.load_state(workdir)["run_id"]
    client.get_metric_history(run_id, c.WARM_KEY)
    t0 = time.perf_counter()
    points = client.get_metric_history(run_id, c.METRIC_KEY)
    seconds = time.perf_counter() - t0
    c.check(len(points) == n, f"history has {len(points)} points, expected {n}")
    c.check(max(p.step for p in points) == n - 1, "last step")
    return {"seconds": seconds, "count": n}


def _fluent_run(i: int) -> None:
    params, metrics, tags = c.run_payload(i)
    with mlflow.start_run(run_name=c.run_name(i), tags=tags):
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)


def create_runs(workdir: Path, n: int) -> dict:
    client, exp_id = _open(workdir)
    _fluent_run(n)  # warm-up run, untimed (first-run imports and context lookups)
    t0 = time.perf_counter()
    for i in range(n):
        _fluent_run(i)
    seconds = time.perf_counter() - t0
    runs = client.search_runs([exp_id], max_results=n + 10)
    c.check(len(runs) == n + 1, f"{len(runs)} runs found")
    c.check(all(len(r.data.params) == 20 and len(r.data.metrics) == 10 for r in runs), "run contents")
    return {"seconds": seconds, "count": n}


def search_setup(workdir: Path, n_runs: int, searches: int) -> None:
    """Build n_runs finished runs quickly (create_run + one log_batch each); untimed."""
    client, exp_id = _open(workdir)
    ts = c.now_ms()
    for i in range(n_runs):
        params, metrics, tags = c.run_payload(i)
        run_id = client.create_run(exp_id, run_name=c.run_name(i)).info.run_id
        client.log_batch(
            run_id,
            metrics=[Metric(k, v, ts, 0) for k, v in metrics.items()],
            params=[Param(k, v) for k, v in params.items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        client.set_terminated(run_id)


def search(workdir: Path, n_runs: int, searches: int) -> dict:
    client, exp_id = _open(workdir, create=False)
    expected = c.expected_search(n_runs)

    def one():
        return client.search_runs(
            [exp_id], filter_string=c.SEARCH_FILTER, order_by=[c.SEARCH_ORDER_BY], max_results=1000
        )

    one()  # warm-up, untimed
    seconds, runs = c.median_time(one, searches)
    got = [r.info.run_name for r in runs]
    c.check(got == expected, f"search returned {len(got)} runs, expected {len(expected)} in order")
    return {"seconds": seconds, "count": len(got)}


WORKLOADS = {
    "log_metric": {"measure": log_metric},
    "log_batch": {"measure": log_batch},
    "history": {"setup": history_setup, "measure": history},
    "create_runs": {"measure": create_runs},
    "search": {"setup": search_setup, "measure": search},
}

if __name__ == "__main__":
    c.main(WORKLOADS)
