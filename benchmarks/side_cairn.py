"""The Cairn side: each workload against Cairn's local store in WORKDIR/cairn.

Runs under the project's interpreter (``.venv/bin/python``).  Timings that write end
with ``cairn.flush()`` (or a synchronous client call), so they include making the data
durable, as MLflow's synchronous calls do.
"""

from __future__ import annotations

import time
from pathlib import Path

import cairn

import _common as c


def _open(workdir: Path) -> "cairn.Client":
    uri = str(workdir / "cairn")
    cairn.set_tracking_uri(uri)
    cairn.set_experiment(c.EXPERIMENT)
    return cairn.Client(uri=uri)


def _new_run(client: "cairn.Client") -> str:
    """A RUNNING run made through the client (the experiment created if missing), untimed."""
    return client.create_run(client.get_or_create_experiment(c.EXPERIMENT).id).id


def _batches(n: int) -> list[list[tuple]]:
    """The n-point series as (key, value, step, timestamp_ms) tuples, 1,000 a batch."""
    ts = c.now_ms()
    points = [(c.METRIC_KEY, v, step, ts) for step, v in enumerate(c.series(n))]
    return [points[i:i + c.BATCH_SIZE] for i in range(0, n, c.BATCH_SIZE)]


def _runs(client: "cairn.Client", **kwargs) -> list:
    """One page of search results: up to 1,000 runs of the benchmark's experiment."""
    return client.search_runs(experiments=[c.EXPERIMENT], max_results=1000, **kwargs)


def _search(client: "cairn.Client") -> list:
    return _runs(client, filter=c.SEARCH_FILTER, order_by=[c.SEARCH_ORDER_BY])


def log_metric(workdir: Path, n: int) -> dict:
    client = _open(workdir)
    values = c.series(n)
    with cairn.start_run() as run:
        t0 = time.perf_counter()
        for step, v in enumerate(values):
            cairn.log_metric(c.METRIC_KEY, v, step=step)
        cairn.flush()
        seconds = time.perf_counter() - t0
    c.check(len(client.get_metric_history(run.id, c.METRIC_KEY)) == n, "history length")
    return {"seconds": seconds, "count": n}


def log_batch(workdir: Path, n: int) -> dict:
    client = _open(workdir)
    run_id = _new_run(client)
    batches = _batches(n)
    t0 = time.perf_counter()
    for batch in batches:
        client.log_batch(run_id, metrics=batch)
    seconds = time.perf_counter() - t0
    c.check(len(client.get_metric_history(run_id, c.METRIC_KEY)) == n, "history length")
    return {"seconds": seconds, "count": n}


def history_setup(workdir: Path, n: int) -> None:
    client = _open(workdir)
    run_id = _new_run(client)
    for batch in _batches(n):
        client.log_batch(run_id, metrics=batch)
    client.log_batch(run_id, metrics=[(c.WARM_KEY, 0.0, 0, c.now_ms())])
    c.save_state(workdir, run_id=run_id)


def history(workdir: Path, n: int) -> dict:
    client = _open(workdir)
    run_id = c.load_state(workdir)["run_id"]
    client.get_metric_history(run_id, c.WARM_KEY)
    t0 = time.perf_counter()
    h = client.get_metric_history(run_id, c.METRIC_KEY)
    seconds = time.perf_counter() - t0
    c.check(len(h) == n, f"history has {len(h)} points, expected {n}")
    c.check(int(h.steps[-1]) == n - 1 and float(h.values[0]) == 1.0, "history contents")
    return {"seconds": seconds, "count": n}


def _fluent_run(i: int) -> None:
    params, metrics, tags = c.run_payload(i)
    with cairn.start_run(name=c.run_name(i), params=params, tags=tags):
        cairn.log_metrics(metrics)


def create_runs(workdir: Path, n: int) -> dict:
    client = _open(workdir)
    _fluent_run(n)  # warm-up run, untimed, as on the MLflow side
    t0 = time.perf_counter()
    for i in range(n):
        _fluent_run(i)
    cairn.flush()
    seconds = time.perf_counter() - t0
    runs = _runs(client)
    c.check(len(runs) == n + 1, f"{len(runs)} runs found")
    c.check(all(len(r.params) == 20 and len(r.metrics) == 10 for r in runs), "run contents")
    return {"seconds": seconds, "count": n}


def search_setup(workdir: Path, n_runs: int, searches: int) -> None:
    _open(workdir)
    for i in range(n_runs):
        _fluent_run(i)
    cairn.flush()


def search(workdir: Path, n_runs: int, searches: int) -> dict:
    client = _open(workdir)
    expected = c.expected_search(n_runs)
    _search(client)  # warm-up, untimed
    seconds, runs = c.median_time(lambda: _search(client), searches)
    got = [r.name for r in runs]
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
