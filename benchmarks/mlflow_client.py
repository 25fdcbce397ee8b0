"""The real mlflow client against `mlflow server` and against `cairn server`, side by side.

One workload, written once against ``mlflow.MlflowClient``, runs against both servers
in the same run: first both on SQLite (MLflow's SQLite backend; Cairn's local store),
then both on PostgreSQL (a fresh database each, dropped afterwards). Each server runs
one worker process; proxied artifacts are on for both. Prints medians and ratios.

    .venv/bin/python benchmarks/mlflow_client.py                # both backends, 3 repetitions
    .venv/bin/python benchmarks/mlflow_client.py --backend sqlite --reps 1 --quick

Workloads (targets from issue #6 in brackets):
    create_runs   create_run + one log_batch (20 params, 10 metrics, 5 tags) + set_terminated  [>= 5x]
    log_batch     log_batch calls of 1,000 metric points each (MLflow's per-call limit)         [>= 5x]
    history       get_metric_history of a 50,000-point series (the client pages it)             [>= 10x]
    history_server  the same get-history requests without the client's protobuf parsing (no target)
    search        search_runs over 300 runs: 2-clause filter, ordered by a metric                [>= 5x]

A third pass runs the workload against replay_server.py, which answers at once with the
bytes Cairn sent: the client's own time.  MLflow's time over that is the "ceiling", the
largest ratio any server could reach with this client; where it is below a target, no
server work can meet the target.

This is a script, not a test. The mlflow server comes from benchmarks/.mlflow-venv (made
by run.py on first use); the client is the mlflow package in this interpreter.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import server_load as sl  # noqa: E402  (servers, databases, ports)
from run import ensure_mlflow_python, log  # noqa: E402

TARGETS = {"create_runs": 5.0, "log_batch": 5.0, "history": 10.0, "search": 5.0}
UNITS = {"create_runs": "runs/s", "log_batch": "points/s", "history": "points/s", "search": "s",
         "history_server": "points/s"}


def _serve(cmd: list[str], workdir: Path, name: str, health: str, port: int,
           env: dict | None = None, timeout: float = 120) -> tuple[subprocess.Popen, str]:
    """Start a server process (its stderr in ``workdir/name.log``); (process, url) once
    ``health`` answers."""
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=open(workdir / f"{name}.log", "wb"), env=env)
    url = f"http://127.0.0.1:{port}"
    sl.wait_http(url + health, timeout=timeout)
    return proc, url


def start_cairn(backend: str, db: str | None, workdir: Path) -> tuple[subprocess.Popen, str]:
    port = sl.free_port()
    cmd = [sys.executable, "-c", "from cairn.cli.main import main; main()"]
    if backend == "sqlite":
        cmd += ["--store", str(workdir / "cairn-store"), "server"]
    else:
        cmd += ["server", "--db", db, "--objects", str(workdir / "cairn-objects")]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--no-auth", "--workers", "1",
            "--log-level", "warning"]
    return _serve(cmd, workdir, "cairn-server", "/ready", port)


def start_mlflow(backend: str, db: str | None, workdir: Path) -> tuple[subprocess.Popen, str]:
    if backend == "sqlite":
        store = f"sqlite:///{workdir / 'mlflow.db'}"
    else:
        sl.ensure_mlflow_driver()
        store = db.replace("postgresql://", "postgresql+psycopg2://")
    port = sl.free_port()
    cmd = [str(sl.HERE / ".mlflow-venv" / "bin" / "mlflow"), "server", "--host", "127.0.0.1",
           "--port", str(port), "--backend-store-uri", store,
           "--artifacts-destination", str(workdir / "mlartifacts"), "--workers", "1"]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    return _serve(cmd, workdir, "mlflow-server", "/health", port, env, timeout=300)


def start_replay(target: str, workdir: Path) -> tuple[subprocess.Popen, str]:
    """replay_server.py in front of the server at ``target``."""
    port = sl.free_port()
    cmd = [sys.executable, "-m", "uvicorn", "replay_server:app", "--app-dir", str(HERE),
           "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    return _serve(cmd, workdir, "replay-server", "/health", port,
                  {**os.environ, "REPLAY_TARGET": target})


# -- the workload, written once against the mlflow client --------------------------------------
def _payload(i: int):
    from mlflow.entities import Metric, Param, RunTag

    ts = int(time.time() * 1000)
    return ([Metric(f"m{k}", ((i * 7 + k) % 100) / 100.0, ts, 0) for k in range(10)],
            [Param(f"p{k}", str((i + k) % 10)) for k in range(20)],
            [RunTag(f"t{k}", f"v{i % 3}") for k in range(5)])


def _make_runs(client, exp_id: str, n: int, prefix: str) -> None:
    for i in range(n):
        run_id = client.create_run(exp_id, run_name=f"{prefix}-{i}").info.run_id
        metrics, params, tags = _payload(i)
        client.log_batch(run_id, metrics=metrics, params=params, tags=tags)
        client.set_terminated(run_id)


def create_runs(client, exp_id: str, n: int) -> float:
    t0 = time.perf_counter()
    _make_runs(client, exp_id, n, "c")
    return n / (time.perf_counter() - t0)


def log_batch(client, exp_id: str, calls: int) -> float:
    from mlflow.entities import Metric

    run_id = client.create_run(exp_id).info.run_id
    ts = int(time.time() * 1000)
    batches = [[Metric("loss", 1.0 / (s + 1), ts, s) for s in range(c * 1000, (c + 1) * 1000)]
               for c in range(calls)]
    t0 = time.perf_counter()
    for batch in batches:
        client.log_batch(run_id, metrics=batch)
    seconds = time.perf_counter() - t0
    client.set_terminated(run_id)
    return calls * 1000 / seconds


def history_setup(client, exp_id: str, points: int) -> str:
    from mlflow.entities import Metric

    run_id = client.create_run(exp_id, run_name="history").info.run_id
    ts = int(time.time() * 1000)
    for c in range(0, points, 1000):
        client.log_batch(run_id, metrics=[Metric("loss", 1.0 / (s + 1), ts, s)
                                          for s in range(c, min(c + 1000, points))])
    return run_id


def history(client, run_id: str, points: int) -> float:
    t0 = time.perf_counter()
    got = client.get_metric_history(run_id, "loss")
    seconds = time.perf_counter() - t0
    if len(got) != points:
        raise SystemExit(f"history returned {len(got)} points, expected {points}")
    return points / seconds


def history_raw(url: str, run_id: str, points: int) -> float:
    """The same get-history requests the client sends, timed without the client's parsing.

    The mlflow client turns each response into protobuf messages field by field; for a
    long history that costs more than either server takes to answer, so this row shows
    what the server side alone does.
    """
    import httpx

    t0 = time.perf_counter()
    got, token = 0, None
    with httpx.Client(base_url=url + "/api/2.0/mlflow", timeout=120) as http:
        while True:
            params = {"run_id": run_id, "run_uuid": run_id, "metric_key": "loss",
                      "max_results": 25000, **({"page_token": token} if token else {})}
            body = http.get("/metrics/get-history", params=params).json()
            got += len(body.get("metrics", []))
            token = body.get("next_page_token")
            if not token:
                break
    seconds = time.perf_counter() - t0
    if got != points:
        raise SystemExit(f"raw history returned {got} points, expected {points}")
    return points / seconds


SEARCH_FILTER = "metrics.m0 > 0.3 and params.p1 = '3'"


def search(client, exp_id: str, expected: int | None) -> tuple[float, int]:
    t0 = time.perf_counter()
    runs = client.search_runs([exp_id], filter_string=SEARCH_FILTER,
                              order_by=["metrics.m0 DESC"], max_results=1000)
    return time.perf_counter() - t0, len(runs)


def measure_side(side: str, backend: str, args, tmp: Path) -> dict[str, float]:
    from mlflow import MlflowClient

    workdir = Path(tempfile.mkdtemp(prefix=f"{side}-{backend}-", dir=tmp))
    db = sl.make_db(side) if backend == "postgres" else None
    proc, url = (start_mlflow if side == "mlflow" else start_cairn)(backend, db, workdir)
    out: dict[str, list[float]] = {k: [] for k in UNITS}
    floor: dict[str, float] = {}
    try:
        client = MlflowClient(tracking_uri=url)
        exp_id = client.create_experiment(f"bench-{side}")
        log(f"  {side}/{backend}: server up at {url}")
        _make_runs(client, exp_id, 3, "warm")  # first-request costs, untimed
        run_id = history_setup(client, exp_id, args.points)
        # The searched runs live apart from those the repetitions create, so every
        # repetition's search has the same answer.
        search_exp = client.create_experiment(f"bench-{side}-search")
        _make_runs(client, search_exp, args.search_runs, "s")
        counts = set()
        for rep in range(args.reps):
            n = repetition(client, args, exp_id, run_id, search_exp, out)
            out["history_server"].append(history_raw(url, run_id, args.points))
            counts.add(n)
            log(f"  {side}/{backend} rep {rep + 1}: " + ", ".join(
                f"{k} {v[-1]:,.4g}" for k, v in out.items()))
        if len(counts) != 1:
            raise SystemExit(f"{side}: search result sizes varied: {counts}")
        if side == "cairn" and args.floor:
            floor = measure_floor(url, args, exp_id, run_id, search_exp, workdir)
    finally:
        sl.stop(proc)
        if db:
            sl.drop_db(db)
        shutil.rmtree(workdir, ignore_errors=True)
    return ({k: statistics.median(v) for k, v in out.items()} | {"search_hits": counts.pop()}
            | {f"floor:{k}": v for k, v in floor.items()})


def repetition(client, args, exp_id: str, run_id: str, search_exp: str,
               out: dict[str, list[float]]) -> int:
    """One timed repetition of the four client workloads, appended to ``out``; returns the
    number of runs the search found."""
    out["create_runs"].append(create_runs(client, exp_id, args.runs))
    out["log_batch"].append(log_batch(client, exp_id, args.calls))
    out["history"].append(history(client, run_id, args.points))
    seconds, hits = search(client, search_exp, None)
    out["search"].append(seconds)
    return hits


def measure_floor(url: str, args, exp_id: str, run_id: str, search_exp: str,
                  workdir: Path) -> dict[str, float]:
    """The workload against ``replay_server.py``, which answers with the bytes Cairn sent
    without doing any work: the mlflow client's own time, which no server can remove."""
    from mlflow import MlflowClient

    proc, replay = start_replay(url, workdir)
    out: dict[str, list[float]] = {k: [] for k in TARGETS}
    try:
        client = MlflowClient(tracking_uri=replay)
        # Untimed: each request kind once, so that its answer is kept.
        repetition(client, argparse.Namespace(**{**vars(args), "runs": 1, "calls": 1}),
                   exp_id, run_id, search_exp, {k: [] for k in TARGETS})
        for _ in range(args.reps):
            repetition(client, args, exp_id, run_id, search_exp, out)
    finally:
        sl.stop(proc)
    return {k: statistics.median(v) for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    ap.add_argument("--no-floor", dest="floor", action="store_false",
                    help="skip the client-only pass (replay_server.py)")
    args = ap.parse_args(argv)
    args.runs, args.calls, args.points, args.search_runs = (
        (5, 3, 5_000, 20) if args.quick else (50, 20, 50_000, 300))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    import logging

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # no "View run at ..." per run
    ensure_mlflow_python(None)
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    rows = []
    with tempfile.TemporaryDirectory(prefix="mlflow-client-bench-") as tmp:
        for backend in backends:
            log(f"[{backend}] {args.runs} runs, {args.calls} x 1,000 points, "
                   f"{args.points:,}-point history, search over {args.search_runs} runs")
            res = {side: measure_side(side, backend, args, Path(tmp)) for side in ("mlflow", "cairn")}
            if res["mlflow"]["search_hits"] != res["cairn"]["search_hits"]:
                raise SystemExit(f"search found {res['mlflow']['search_hits']} runs on MLflow, "
                                 f"{res['cairn']['search_hits']} on Cairn")
            for k in UNITS:
                m, c = res["mlflow"][k], res["cairn"][k]
                f = res["cairn"].get(f"floor:{k}")
                rows.append((backend, k, m, c, f, TARGETS.get(k)))
    print(f"\nmlflow client {_version()} against each server; medians of {args.reps}")
    print("client only: the same workload against replay_server.py (answers at once with "
          "Cairn's bytes);\nceiling: the ratio a server that takes no time at all would reach\n")
    print(f"{'backend':9} {'workload':14} {'mlflow':>12} {'cairn':>12} {'client only':>12} "
          f"{'unit':9} {'ratio':>7} {'ceiling':>8}  target")
    ok = True
    for backend, k, m, c, f, target in rows:
        def ratio(v: float) -> float:
            return m / v if k == "search" else v / m  # noqa: B023  (only called in this iteration)

        fmt = (lambda v: f"{v * 1000:,.1f} ms") if k == "search" else (lambda v: f"{v:,.0f}")
        unit = "" if k == "search" else UNITS[k]
        verdict = "(no target: server side only)"
        if target is not None:
            ok &= ratio(c) >= target
            verdict = f">= {target:g}x {'PASS' if ratio(c) >= target else 'FAIL'}"
            if f is not None and ratio(f) < target:
                verdict += " (above the ceiling)"
        ceiling = f"{ratio(f):7.1f}x" if f is not None else f"{'-':>8}"
        print(f"{backend:9} {k:14} {fmt(m):>12} {fmt(c):>12} "
              f"{fmt(f) if f is not None else '-':>12} {unit:9} {ratio(c):6.1f}x {ceiling}  {verdict}")
    return 0 if ok else 1


def _version() -> str:
    import mlflow

    return mlflow.__version__


if __name__ == "__main__":
    sys.exit(main())
