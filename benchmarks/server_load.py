"""Load benchmark of the tracking server: N concurrent clients for S seconds, Cairn vs MLflow.

Each client creates a run, logs metric batches (``--points`` points per request) for
``--batches-per-run`` requests, ends the run, and starts over until time is up.  Both
servers run on PostgreSQL (a fresh database each, dropped afterwards) with the same
number of worker processes; clients speak each server's own REST API over HTTP.

Reported per server: requests, errors, metric points/s, runs/s, p50/p99 request latency,
and a loss check (points in the database == points the server acknowledged).

    .venv/bin/python benchmarks/server_load.py                    # 32 clients, 60 s each
    .venv/bin/python benchmarks/server_load.py --seconds 20 --side cairn

This is a script, not a test.  MLflow runs from benchmarks/.mlflow-venv (psycopg2 is
installed into it on first use).  Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MLFLOW_PY = HERE / ".mlflow-venv" / "bin" / "python"
ADMIN_URL = os.environ.get("CAIRN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


# -- databases and servers ---------------------------------------------------------------
def _pg(url: str):
    import psycopg

    return psycopg.connect(url, autocommit=True)


def make_db(tag: str) -> str:
    name = f"cairn_bench_{tag}_{secrets.token_hex(4)}"
    with _pg(ADMIN_URL) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    return ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def drop_db(url: str) -> None:
    with _pg(ADMIN_URL) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 120.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(url)


def start_cairn(db: str, workdir: Path, workers: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-c", "from cairn.cli.main import main; main()", "server",
           "--host", "127.0.0.1", "--port", str(port), "--db", db, "--objects",
           str(workdir / "objects"), "--no-auth", "--workers", str(workers),
           "--log-level", "warning"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=open(workdir / "cairn-server.log", "wb"))
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/ready")
    return proc, url


def ensure_mlflow_driver() -> None:
    probe = subprocess.run([str(MLFLOW_PY), "-c", "import psycopg2"], capture_output=True)
    if probe.returncode != 0:
        subprocess.run([str(MLFLOW_PY), "-m", "pip", "install", "--quiet", "psycopg2-binary"],
                       check=True)


def start_mlflow(db: str, workdir: Path, workers: int) -> tuple[subprocess.Popen, str]:
    ensure_mlflow_driver()
    port = free_port()
    cmd = [str(HERE / ".mlflow-venv" / "bin" / "mlflow"), "server", "--host", "127.0.0.1",
           "--port", str(port), "--backend-store-uri", db.replace("postgresql://", "postgresql+psycopg2://"),
           "--default-artifact-root", str(workdir / "mlartifacts"), "--workers", str(workers)]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=open(workdir / "mlflow-server.log", "wb"), env=env)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/health", timeout=300)
    return proc, url


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


# -- clients ---------------------------------------------------------------------------------
class CairnClient:
    def __init__(self, url: str, experiment_id: str, points: int) -> None:
        import httpx
        import numpy as np

        from cairn.store import wire

        self.np, self.wire = np, wire
        self.http = httpx.Client(base_url=url + "/api/v1", timeout=120)
        self.exp = experiment_id
        self.points = points

    def create_run(self, name: str) -> tuple[str, list]:
        from cairn.entities import RecordBatch

        run_id = secrets.token_hex(16)
        self.writer = secrets.token_hex(8)
        self.seq = 1
        params = {f"p{i}": str(i) for i in range(20)}
        tags = {f"t{i}": "x" for i in range(5)}
        b = RecordBatch(run_id=run_id, writer_id=self.writer, seq=1, time=int(time.time() * 1000),
                        params=params, tags=tags,
                        create={"experiment_id": self.exp, "experiment_name": "load",
                                "name": name, "user": "bench", "start_time": int(time.time() * 1000)})
        self._post([b])
        return run_id

    def log(self, run_id: str, step0: int) -> int:
        from cairn.entities import RecordBatch

        np = self.np
        n = self.points // 2
        steps = np.arange(step0, step0 + n, dtype=np.int64)
        stamps = np.full(n, int(time.time() * 1000), dtype=np.int64)
        self.seq += 1
        b = RecordBatch(run_id=run_id, writer_id=self.writer, seq=self.seq, time=int(stamps[0]),
                        metrics={"loss": (steps, stamps, 1.0 / (steps + 1.0)),
                                 "acc": (steps, stamps, steps * 1e-6)})
        self._post([b])
        return 2 * n

    def end(self, run_id: str) -> None:
        from cairn.entities import RecordBatch, RunStatus

        self.seq += 1
        self._post([RecordBatch(run_id=run_id, writer_id=self.writer, seq=self.seq,
                                time=int(time.time() * 1000), status=RunStatus.FINISHED,
                                end_time=int(time.time() * 1000))])

    def _post(self, batches) -> None:
        r = self.http.post("/records", content=self.wire.encode_frames(batches),
                           headers={"content-type": self.wire.RECORDS_TYPE})
        r.raise_for_status()
        bad = [x for x in r.json()["results"] if x["status"] not in ("applied", "duplicate")]
        if bad:
            raise RuntimeError(f"refused: {bad[0]}")


class MlflowClient:
    def __init__(self, url: str, experiment_id: str, points: int) -> None:
        import httpx

        self.http = httpx.Client(base_url=url + "/api/2.0/mlflow", timeout=120)
        self.exp = experiment_id
        self.points = min(points, 1000)  # MLflow's log-batch limit

    def _post(self, path: str, body: dict) -> dict:
        r = self.http.post(path, json=body)
        if r.status_code >= 400:
            raise RuntimeError(f"{path}: {r.status_code} {r.text[:200]}")
        return r.json()

    def create_run(self, name: str) -> str:
        now = int(time.time() * 1000)
        run = self._post("/runs/create", {"experiment_id": self.exp, "run_name": name,
                                          "start_time": now,
                                          "tags": [{"key": f"t{i}", "value": "x"} for i in range(5)]})
        run_id = run["run"]["info"]["run_id"]
        self._post("/runs/log-batch", {"run_id": run_id, "params": [
            {"key": f"p{i}", "value": str(i)} for i in range(20)]})
        return run_id

    def log(self, run_id: str, step0: int) -> int:
        n = self.points // 2
        now = int(time.time() * 1000)
        metrics = [{"key": "loss", "value": 1.0 / (s + 1.0), "timestamp": now, "step": s}
                   for s in range(step0, step0 + n)]
        metrics += [{"key": "acc", "value": s * 1e-6, "timestamp": now, "step": s}
                    for s in range(step0, step0 + n)]
        self._post("/runs/log-batch", {"run_id": run_id, "metrics": metrics})
        return 2 * n

    def end(self, run_id: str) -> None:
        self._post("/runs/update", {"run_id": run_id, "status": "FINISHED",
                                    "end_time": int(time.time() * 1000)})


def client_process(side: str, url: str, exp: str, threads: int, seconds: float, points: int,
                   batches_per_run: int, out: mp.Queue, start_at: float) -> None:
    stats = {"latencies": [], "errors": 0, "points": 0, "runs": 0, "requests": 0,
             "error_samples": []}
    lock = threading.Lock()

    def work(k: int) -> None:
        cls = CairnClient if side == "cairn" else MlflowClient
        client = cls(url, exp, points)
        while time.time() < start_at:
            time.sleep(0.01)
        stop_at = start_at + seconds
        lat, pts, runs, reqs, errs, samples = [], 0, 0, 0, 0, []

        def timed(fn, *a):
            nonlocal reqs, errs
            t = time.perf_counter()
            try:
                res = fn(*a)
            except Exception as exc:  # counted, and a few kept to explain them
                errs += 1
                if len(samples) < 3:
                    samples.append(f"{type(exc).__name__}: {exc}"[:300])
                return None
            finally:
                lat.append(time.perf_counter() - t)
                reqs += 1
            return res

        while time.time() < stop_at:
            run_id = timed(client.create_run, f"load-{os.getpid()}-{k}-{runs}")
            if run_id is None:
                continue
            for b in range(batches_per_run):
                if time.time() >= stop_at:
                    break
                got = timed(client.log, run_id, b * points)
                pts += got or 0
            timed(client.end, run_id)
            runs += 1
        with lock:
            stats["latencies"] += lat
            stats["points"] += pts
            stats["runs"] += runs
            stats["requests"] += reqs
            stats["errors"] += errs
            stats["error_samples"] += samples

    ts = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    out.put(stats)


def drive(side: str, url: str, exp: str, clients: int, procs: int, seconds: float, points: int,
          batches_per_run: int) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    start_at = time.time() + 5.0  # every client connected and warm before the clock starts
    per = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
    ps = [ctx.Process(target=client_process, args=(side, url, exp, n, seconds, points,
                                                   batches_per_run, q, start_at))
          for n in per if n]
    for p in ps:
        p.start()
    parts = [q.get() for _ in ps]
    for p in ps:
        p.join()
    lat = sorted(x for s in parts for x in s["latencies"])

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else float("nan")

    total = {k: sum(s[k] for s in parts) for k in ("points", "runs", "requests", "errors")}
    return {**total, "seconds": seconds, "points_per_s": total["points"] / seconds,
            "runs_per_s": total["runs"] / seconds, "requests_per_s": total["requests"] / seconds,
            "p50_ms": pct(0.50), "p99_ms": pct(0.99),
            "error_samples": [e for s in parts for e in s["error_samples"]][:5]}


# -- loss checks -----------------------------------------------------------------------------
def stored_points(side: str, db: str) -> int:
    sql = ("SELECT COALESCE(SUM(count), 0) FROM latest_metrics" if side == "cairn"
           else "SELECT COUNT(*) FROM metrics")
    with _pg(db) as c:
        return int(c.execute(sql).fetchone()[0])


# -- main --------------------------------------------------------------------------------------
def bench_side(side: str, args, workdir: Path) -> dict:
    db = make_db(side)
    proc = None
    try:
        if side == "cairn":
            proc, url = start_cairn(db, workdir, args.workers)
            import httpx

            exp = httpx.post(url + "/api/v1/experiments", json={"name": "load"}).json()["id"]
        else:
            proc, url = start_mlflow(db, workdir, args.workers)
            import httpx

            r = httpx.post(url + "/api/2.0/mlflow/experiments/create", json={"name": "load"})
            exp = r.json()["experiment_id"]
        res = drive(side, url, exp, args.clients, args.procs, args.seconds, args.points,
                    args.batches_per_run)
        res["stored_points"] = stored_points(side, db)
        res["lost_points"] = res["points"] - res["stored_points"]
        return res
    finally:
        if proc is not None:
            stop(proc)
        drop_db(db)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--procs", type=int, default=4, help="client processes (threads split over them)")
    ap.add_argument("--workers", type=int, default=2, help="server worker processes (both sides)")
    ap.add_argument("--points", type=int, default=1000, help="metric points per log request")
    ap.add_argument("--batches-per-run", type=int, default=50)
    ap.add_argument("--side", choices=["both", "cairn", "mlflow"], default="both")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    sides = ["cairn", "mlflow"] if args.side == "both" else [args.side]
    if "mlflow" in sides and not MLFLOW_PY.exists():
        print("benchmarks/.mlflow-venv is missing (benchmarks/run.py creates it)", file=sys.stderr)
        return 2
    results = {}
    with tempfile.TemporaryDirectory(prefix="cairn-load-") as tmp:
        for side in sides:
            print(f"{side}: {args.clients} clients x {args.seconds:.0f} s ...", file=sys.stderr)
            results[side] = bench_side(side, args, Path(tmp))
    print(f"\n{'server':8} {'points/s':>12} {'runs/s':>8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'errors':>7} {'lost':>6}")
    for side, r in results.items():
        print(f"{side:8} {r['points_per_s']:12,.0f} {r['runs_per_s']:8.1f} {r['requests_per_s']:8.1f} "
              f"{r['p50_ms']:8.1f} {r['p99_ms']:8.1f} {r['errors']:7d} {r['lost_points']:6d}")
        for e in r["error_samples"]:
            print(f"  {side} error: {e}")
    if len(results) == 2 and results["mlflow"]["points_per_s"]:
        ratio = results["cairn"]["points_per_s"] / results["mlflow"]["points_per_s"]
        print(f"\nCairn / MLflow ingest: {ratio:.1f}x")
        results["ratio_points_per_s"] = ratio
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    bad = any(r["errors"] or r["lost_points"] for r in results.values() if isinstance(r, dict))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
