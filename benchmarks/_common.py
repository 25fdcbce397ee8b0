"""Shared by both sides of the benchmark: the worker protocol and the generated data.

Stdlib only: this module is imported by the Cairn interpreter *and* by the MLflow
virtualenv's interpreter, so both sides log exactly the same values, names and keys.

A side module (``side_cairn.py``, ``side_mlflow.py``) is run as a script::

    python side_X.py WORKLOAD PHASE WORKDIR PARAMS_JSON

where PHASE is ``setup`` (build data once, untimed) or ``measure`` (one timed
repetition).  It prints one line ``BENCH-RESULT {json}`` on stdout; everything else
on stdout/stderr is noise the harness keeps only to explain a failure.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

RESULT_PREFIX = "BENCH-RESULT "

EXPERIMENT = "bench"
METRIC_KEY = "loss"
WARM_KEY = "warm"  # a one-point series read before timing, so connection set-up is not timed
BATCH_SIZE = 1000  # MLflow's per-request limit for log_batch; Cairn gets the same batches

# The search workload: one metric clause, one param clause, one tag clause, ordered by a metric.
SEARCH_FILTER = "metrics.acc > 0.5 and params.model = 'cnn' and tags.team = 'vision'"
SEARCH_ORDER_BY = "metrics.acc DESC"
MODELS = ("mlp", "cnn", "rnn", "transformer")
TEAMS = ("vision", "nlp")


class BenchError(AssertionError):
    """A side produced a wrong answer: the timing is not worth reporting."""


def run_payload(i: int) -> tuple[dict[str, str], dict[str, float], dict[str, str]]:
    """Params (20), metrics (10) and tags (5) of the i-th run; deterministic in i."""
    rnd = random.Random(i)
    params = {"model": rnd.choice(MODELS), "lr": f"{10 ** rnd.uniform(-5, -1):.3g}"}
    params.update({f"p{k:02d}": str(rnd.randrange(1000)) for k in range(2, 20)})
    metrics = {"acc": rnd.random(), "loss": rnd.uniform(0.0, 5.0)}
    metrics.update({f"m{k:02d}": rnd.random() for k in range(2, 10)})
    tags = {"team": rnd.choice(TEAMS)}
    tags.update({f"t{k:02d}": f"tag-{rnd.randrange(100)}" for k in range(1, 5)})
    return params, metrics, tags


def run_name(i: int) -> str:
    return f"run-{i:05d}"


def expected_search(n_runs: int) -> list[str]:
    """Run names the search must return, in order (acc descending)."""
    hits = []
    for i in range(n_runs):
        params, metrics, tags = run_payload(i)
        if metrics["acc"] > 0.5 and params["model"] == "cnn" and tags["team"] == "vision":
            hits.append((metrics["acc"], run_name(i)))
    return [name for _, name in sorted(hits, reverse=True)]


def series(n: int) -> list[float]:
    """The values of an n-point metric series (a decaying loss)."""
    return [1.0 / (i + 1) for i in range(n)]


def now_ms() -> int:
    return int(time.time() * 1000)


def check(condition: bool, message: str) -> None:
    if not condition:
        raise BenchError(message)


def median_time(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Median wall time of ``repeat`` calls of fn, and the last call's result."""
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def save_state(workdir: Path, **state: Any) -> None:
    (workdir / "state.json").write_text(json.dumps(state))


def load_state(workdir: Path) -> dict[str, Any]:
    return json.loads((workdir / "state.json").read_text())


def main(workloads: dict[str, dict[str, Callable[..., dict[str, Any] | None]]]) -> None:
    """Entry point of a side module: dispatch argv to ``workloads[name][phase]``."""
    name, phase, workdir, params = sys.argv[1], sys.argv[2], Path(sys.argv[3]), json.loads(sys.argv[4])
    result = workloads[name][phase](workdir, **params) or {}
    print(RESULT_PREFIX + json.dumps(result), flush=True)
