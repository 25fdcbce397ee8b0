"""Model serving under load: `mlflow models serve` against `cairn serve`, side by side.

One scikit-learn model (a 100-tree random forest on 20 float features, fixed seed) is
trained once here, saved with ``mlflow.sklearn.save_model`` (signature and input example)
in benchmarks/.mlflow-venv and registered in a fresh Cairn store (``bench@prod``). Each
server runs the same number of worker processes (``--workers``) on 127.0.0.1; the load
generator, in this process, keeps 32 clients busy (each sends its next request when the
last is answered, on its own keep-alive connection) for ``--duration`` seconds after a
``--warmup``, and records every latency and every answer that is not a 200.

Scenarios (targets from issue #18 in brackets):
    ping       GET /ping: the server's trivial endpoint (the ceiling of server + client)
    single     single-row dataframe_split bodies              [cairn >= 3x mlflow req/s, p99 <= 1/3]
               (and cairn+own: cairn with --no-fast-path, the forest's own predict)
    rows100    100-row dataframe_split bodies                 (no target)
    batched    single rows, cairn with --max-batch/--max-wait-ms  [>= 10x mlflow single]
    logged     single rows, cairn with --log-sample 1         [< 10% below cairn single]
    switch     single rows, cairn; the alias moves to version 2 a quarter of the way in
               [0 failed requests, the new version answering within 2 s]

A "null" server (a raw asyncio protocol answering fixed bytes) measures the load
generator alone: its req/s is the most this client can send, so a server row near it
is client-bound. Rows whose cairn option does not exist yet (``cairn serve --help``
does not list it) are printed as "not available".

    .venv/bin/python benchmarks/serve_bench.py                  # 3 repetitions of 10 s, medians
    .venv/bin/python benchmarks/serve_bench.py --quick          # 1 repetition of 3 s: a smoke run
    .venv/bin/python benchmarks/serve_bench.py --only single --only switch --json out.json

Every server's answers are checked before it is timed (the predictions of 64 distinct
single rows and 8 distinct 100-row bodies against the model's own), so a fast wrong
answer is an error. This is a script, not a test; MLflow runs from benchmarks/.mlflow-venv
(made by run.py, or here, on first use).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pickle
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

N_FEATURES = 20
N_TREES = 100
N_TRAIN = 5000
SEED = 0
COLUMNS = [f"f{i:02d}" for i in range(N_FEATURES)]
MODEL = "bench"
ALIAS = "prod"
DISTINCT_BODIES = 64  # the clients cycle through this many different bodies per scenario

SCENARIOS = ("ping", "single", "rows100", "batched", "logged", "switch")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- the model --------------------------------------------------------------------------------
def make_data(n: int, seed: int):
    import numpy as np
    import pandas as pd

    rng = np.random.RandomState(seed)
    X = pd.DataFrame(rng.randn(n, N_FEATURES), columns=COLUMNS)
    y = ((X["f00"] + X["f01"] * X["f02"] - X["f03"] + 0.3 * rng.randn(n)) > 0).astype("int64")
    return X, y


def train(seed: int):
    from sklearn.ensemble import RandomForestClassifier

    X, y = make_data(N_TRAIN, SEED)
    return RandomForestClassifier(n_estimators=N_TREES, random_state=seed).fit(X, y), X


MLFLOW_SAVE = """
import pickle, sys
import pandas as pd
import mlflow.sklearn
from mlflow.models import infer_signature

with open(sys.argv[1], "rb") as f:
    model, columns, rows = pickle.load(f)
X = pd.DataFrame(rows, columns=columns)
mlflow.sklearn.save_model(model, sys.argv[2], signature=infer_signature(X, model.predict(X)),
                          input_example=X[:2], skops_trusted_types=["sklearn.tree._tree.Tree"])
"""


def prepare(workdir: Path, mlflow_python: str | None) -> dict[str, Any]:
    """Train both versions, save v1 for MLflow, register v1 and v2 in a fresh Cairn store."""
    import cairn

    t0 = time.perf_counter()
    model1, X = train(SEED)
    model2, _ = train(SEED + 1)
    log(f"trained 2 x {N_TREES}-tree forests on {N_TRAIN} x {N_FEATURES} in "
        f"{time.perf_counter() - t0:.1f}s")
    info: dict[str, Any] = {"model1": model1, "model2": model2}
    if mlflow_python:
        pkl = workdir / "model.pkl"
        with open(pkl, "wb") as f:
            pickle.dump((model1, COLUMNS, X[:50].to_numpy().tolist()), f)
        out = subprocess.run([mlflow_python, "-c", MLFLOW_SAVE, str(pkl),
                              str(workdir / "mlflow-model")], capture_output=True, text=True,
                             env=_mlflow_env())
        if out.returncode:
            raise SystemExit(f"mlflow.sklearn.save_model failed:\n{out.stderr[-3000:]}")
        info["mlflow_model"] = workdir / "mlflow-model"
    store = workdir / "cairn-store"
    client = cairn.Client(str(store))
    v1 = client.register_model(MODEL, model1, input_example=X[:5])
    v2 = client.register_model(MODEL, model2, input_example=X[:5])
    client.set_alias(MODEL, ALIAS, v1.version)
    info.update(store=store, v1=v1.version, v2=v2.version, client=client)
    return info


def bodies(rows: int, count: int, seed: int) -> tuple[list[bytes], list[list[int]]]:
    """``count`` distinct dataframe_split bodies of ``rows`` rows each (JSON bytes), and the
    rows themselves for the answer check."""
    X, _ = make_data(rows * count, seed)
    values = X.to_numpy()
    out = []
    for i in range(count):
        data = values[i * rows:(i + 1) * rows].tolist()
        out.append(json.dumps({"dataframe_split": {"columns": COLUMNS, "data": data}}).encode())
    return out, [values[i * rows:(i + 1) * rows] for i in range(count)]


# -- servers ----------------------------------------------------------------------------------
def _mlflow_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MLFLOW_", "CAIRN_")) and k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    env["PYTHONWARNINGS"] = "ignore"
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, logfile: Path, timeout: float = 180) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerFailed(f"exited with {proc.returncode}: {_tail(logfile)}")
        try:
            if httpx.get(url + "/ping", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise ServerFailed(f"not ready after {timeout:.0f}s: {_tail(logfile)}")


def _tail(path: Path, n: int = 1500) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


class ServerFailed(Exception):
    pass


@dataclass
class Server:
    name: str
    proc: subprocess.Popen
    url: str
    port: int
    logfile: Path
    options: list[str] = field(default_factory=list)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                pass

    def cpu_seconds(self) -> float:
        """User + system CPU of every process in the server's session (workers included)."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[3]) == self.proc.pid:  # the session id (start_new_session)
                total += int(fields[11]) + int(fields[12])
        return total / tick


def _start(name: str, cmd: list[str], workdir: Path, port: int, env: dict | None,
           options: list[str]) -> Server:
    logfile = workdir / f"{name}-{port}.log"
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=open(logfile, "wb"), env=env, cwd=workdir)
    server = Server(name, proc, f"http://127.0.0.1:{port}", port, logfile, options)
    try:
        wait_ready(server.url, proc, logfile)
    except BaseException:
        server.stop()
        raise
    return server


def start_mlflow(mlflow_python: str, model_dir: Path, workers: int, workdir: Path) -> Server:
    port = free_port()
    mlflow = str(Path(mlflow_python).parent / "mlflow")
    cmd = [mlflow, "models", "serve", "-m", str(model_dir), "--env-manager", "local",
           "-w", str(workers), "-h", "127.0.0.1", "-p", str(port)]
    # `mlflow models serve` execs `uvicorn` from PATH: the venv's own, as when activated
    env = _mlflow_env()
    env["PATH"] = f"{Path(mlflow_python).parent}{os.pathsep}{env.get('PATH', '')}"
    return _start("mlflow", cmd, workdir, port, env, [])


def start_cairn(store: Path, workers: int, workdir: Path, extra: list[str],
                poll: float | None) -> Server:
    port = free_port()
    cmd = [str(ROOT / ".venv" / "bin" / "cairn"), "--store", str(store), "serve",
           f"models:/{MODEL}@{ALIAS}", "--host", "127.0.0.1", "--port", str(port)]
    if workers != 1:
        cmd += ["--workers", str(workers)]
    if poll is not None:
        cmd += ["--poll", str(poll)]
    cmd += extra
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "CAIRN_"))}
    env["PYTHONWARNINGS"] = "ignore"
    return _start("cairn", cmd, workdir, port, env, extra)


NULL_SERVER = r"""
import asyncio, sys
try:
    import uvloop; uvloop.install()
except ImportError:
    pass
BODY = b'{"predictions": [0]}'
RESP = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
        + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)

class Null(asyncio.Protocol):
    def connection_made(self, transport):
        self.t, self.buf = transport, b""
    def data_received(self, data):
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].lower()
            i = head.find(b"content-length:")
            n = int(head[i + 15:].split(b"\r\n", 1)[0]) if i >= 0 else 0
            if len(self.buf) < end + 4 + n:
                return
            self.buf = self.buf[end + 4 + n:]
            self.t.write(RESP)

async def main():
    server = await asyncio.get_running_loop().create_server(Null, "127.0.0.1", int(sys.argv[1]))
    await server.serve_forever()

asyncio.run(main())
"""


def start_null(workdir: Path) -> Server:
    port = free_port()
    return _start("null", [sys.executable, "-c", NULL_SERVER, str(port)], workdir, port, None, [])


def cairn_options() -> set[str]:
    """The options `cairn serve --help` lists (the ones this benchmark may use)."""
    out = subprocess.run([str(ROOT / ".venv" / "bin" / "cairn"), "serve", "--help"],
                         capture_output=True, text=True)
    return set(re.findall(r"(--[a-z][a-z0-9-]*)", out.stdout))


# -- the load generator -----------------------------------------------------------------------
def request_bytes(method: str, path: str, body: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if method == "POST":
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    low = head.lower()
    i = low.find(b"\r\ncontent-length:")
    if i >= 0:
        n = int(low[i + 17:low.index(b"\r\n", i + 2)])
        body = await reader.readexactly(n)
    elif b"transfer-encoding: chunked" in low:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n"))[:-2].split(b";")[0], 16)
            parts.append(await reader.readexactly(size + 2))  # the chunk and its CRLF
            if size == 0:  # the last chunk (no trailers expected)
                break
        body = b"".join(p[:-2] for p in parts)
    else:
        body = await reader.read()
    return status, low, body


def _header(low_head: bytes, name: bytes) -> str | None:
    i = low_head.find(b"\r\n" + name + b":")
    if i < 0:
        return None
    j = low_head.index(b"\r\n", i + 2)
    return low_head[i + len(name) + 3:j].strip().decode()


@dataclass
class LoadResult:
    seconds: float
    requests: int            # answered within the measured window
    failed: int              # non-200 answers and broken connections, within the window
    rps: float
    p50_ms: float
    p99_ms: float
    client_cpu: float        # share of one core the load generator used in the window
    server_cpu: float        # the same for the server (all its processes)
    samples: list[str]       # a few failure descriptions
    events: list[tuple[float, str | None, int]] | None = None  # (time, version, status)
    failed_total: int = 0    # over the whole run, warm-up included
    switch_at: float | None = None


async def _load(url: str, requests: list[bytes], clients: int, warmup: float, duration: float,
                server: Server | None, track_version: bool, action=None,
                action_at: float | None = None) -> LoadResult:
    host, port = url.removeprefix("http://").split(":")
    clock = time.perf_counter  # uvloop's loop.time() counts whole milliseconds
    start = clock() + 0.5 + clients * 0.01  # every client connected before the clock starts
    w0, w1 = start + warmup, start + warmup + duration
    records: list[list[tuple[float, float, int]]] = [[] for _ in range(clients)]
    versions: list[list[tuple[float, str | None, int]]] = [[] for _ in range(clients)]
    samples: list[str] = []
    cpu: dict[str, float] = {}

    async def client(k: int) -> None:
        reader = writer = None
        i = k
        rec, ver = records[k], versions[k]
        nreq = len(requests)
        # Connections opened 10 ms apart: a server whose worker processes share one
        # listening socket (uvicorn --workers) then spreads them over its workers, as it
        # would clients arriving over time; opened at once, one worker can take them all.
        await asyncio.sleep(k * 0.01)
        while True:
            if reader is None:
                try:
                    reader, writer = await asyncio.open_connection(host, int(port))
                except OSError as exc:
                    now = clock()
                    rec.append((now, 0.0, 0))
                    if len(samples) < 5:
                        samples.append(f"connect: {exc}")
                    await asyncio.sleep(0.05)
                    if now >= w1:
                        return
                    continue
            now = clock()
            if now < start:
                await asyncio.sleep(start - now)
            elif now >= w1:
                break
            req = requests[i % nreq]
            i += clients
            t0 = clock()
            try:
                writer.write(req)
                status, head, body = await _read_response(reader)
                t1 = clock()
                if status != 200 and len(samples) < 5:
                    samples.append(f"HTTP {status}: {body[:200]!r}")
                if b"connection: close" in head:
                    writer.close()
                    reader = writer = None
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                    ValueError) as exc:
                t1, status = clock(), 0
                if len(samples) < 5:
                    samples.append(f"{type(exc).__name__}: {exc}")
                writer.close()
                reader = writer = None
            rec.append((t1, t1 - t0, status))
            if track_version:
                ver.append((t1, _header(head, b"cairn-model-version") if status else None,
                            status))
        if writer is not None:
            writer.close()

    async def meter() -> None:
        await asyncio.sleep(max(0.0, w0 - clock()))
        cpu["c0"], cpu["s0"] = time.process_time(), server.cpu_seconds() if server else 0.0
        await asyncio.sleep(max(0.0, w1 - clock()))
        cpu["c1"], cpu["s1"] = time.process_time(), server.cpu_seconds() if server else 0.0

    async def act() -> float | None:
        await asyncio.sleep(max(0.0, start + action_at - clock()))
        await asyncio.to_thread(action)
        return clock()

    tasks = [asyncio.create_task(client(k)) for k in range(clients)]
    meter_task = asyncio.create_task(meter())
    act_task = asyncio.create_task(act()) if action else None
    done, pending = await asyncio.wait(tasks, timeout=warmup + duration + 60)
    for t in pending:
        t.cancel()
    await meter_task
    switch_at = await act_task if act_task else None
    lat = sorted(d for rec in records for (t, d, s) in rec if w0 <= t < w1 and s == 200)
    in_window = [(t, d, s) for rec in records for (t, d, s) in rec if w0 <= t < w1]
    failed = sum(1 for (_, _, s) in in_window if s != 200)

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else float("nan")

    return LoadResult(
        seconds=duration, requests=len(in_window), failed=failed,
        rps=len(in_window) / duration, p50_ms=pct(0.50), p99_ms=pct(0.99),
        client_cpu=(cpu["c1"] - cpu["c0"]) / duration,
        server_cpu=(cpu["s1"] - cpu["s0"]) / duration, samples=samples,
        events=sorted((t - start, v, s) for ver in versions for (t, v, s) in ver)
        if track_version else None,
        failed_total=sum(1 for rec in records for (_, _, s) in rec if s != 200),
        switch_at=None if switch_at is None else switch_at - start)


def load(*args, **kwargs) -> LoadResult:
    try:
        import uvloop

        return uvloop.run(_load(*args, **kwargs))
    except ImportError:
        return asyncio.run(_load(*args, **kwargs))


# -- checks -----------------------------------------------------------------------------------
def check_answers(server: Server, single: list[bytes], single_rows, multi: list[bytes],
                  multi_rows, model) -> None:
    """The server's predictions for every distinct body must be the model's own."""
    import httpx
    import numpy as np
    import pandas as pd

    with httpx.Client(base_url=server.url, timeout=60) as http:
        for body_set, rows_set in ((single, single_rows), (multi[:8], multi_rows[:8])):
            for body, rows in zip(body_set, rows_set):
                r = http.post("/invocations", content=body,
                              headers={"Content-Type": "application/json"})
                if r.status_code != 200:
                    raise SystemExit(f"{server.name}: HTTP {r.status_code} {r.text[:300]}")
                want = model.predict(pd.DataFrame(rows, columns=COLUMNS)).tolist()
                got = r.json()["predictions"]
                if np.asarray(got).tolist() != want:
                    raise SystemExit(f"{server.name}: wrong predictions {got[:5]} != {want[:5]}")


# -- scenarios --------------------------------------------------------------------------------
def summarize(runs: list[LoadResult]) -> dict[str, Any]:
    med = statistics.median
    return {"rps": med(r.rps for r in runs), "p50_ms": med(r.p50_ms for r in runs),
            "p99_ms": med(r.p99_ms for r in runs), "failed": sum(r.failed for r in runs),
            "client_cpu": med(r.client_cpu for r in runs),
            "server_cpu": med(r.server_cpu for r in runs),
            "reps": [{"rps": r.rps, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms, "failed": r.failed,
                      "client_cpu": r.client_cpu, "server_cpu": r.server_cpu} for r in runs],
            "samples": [s for r in runs for s in r.samples][:5]}


def switch_scenario(args, info: dict, workdir: Path, reqs: list[bytes],
                    extra: list[str]) -> dict[str, Any]:
    """Cairn under full single-row load; the alias moves to v2 a quarter of the way in
    (measured for at least 8 s, so that a poll, the load and the warm-up fit)."""
    runs = []
    duration = max(args.duration, 8.0)  # time for a poll, the load and the warm-up of v2
    client = info["client"]
    for rep in range(args.reps):
        client.set_alias(MODEL, ALIAS, info["v1"])
        server = start_cairn(info["store"], args.workers, workdir, extra, args.poll)
        try:
            at = 0.5 + args.warmup + duration / 4
            r = load(server.url, reqs, args.clients, args.warmup, duration, server, True,
                     action=lambda: client.set_alias(MODEL, ALIAS, info["v2"]), action_at=at)
        finally:
            server.stop()
        events = r.events or []
        t_switch = r.switch_at if r.switch_at is not None else at
        new = [t for (t, v, s) in events if v == info["v2"]]
        old_after = [t for (t, v, s) in events if v == info["v1"] and t >= t_switch]
        first_new = (min(new) - t_switch) if new else float("nan")
        # every answer after this moment carries the new version
        last_old = (max(old_after) - t_switch) if old_after else 0.0
        res = {"rps": r.rps, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms,
               "failed": r.failed_total, "first_new_s": first_new, "all_new_s": last_old,
               "client_cpu": r.client_cpu, "server_cpu": r.server_cpu, "samples": r.samples}
        runs.append(res)
        log(f"  switch rep {rep + 1}: failed {r.failed_total}, first answer from "
            f"{info['v2']} after {_secs(first_new)}, last from {info['v1']} at {last_old:.2f}s, "
            f"{r.rps:,.0f} req/s, p99 {r.p99_ms:.1f} ms")
    med = statistics.median
    return {"rps": med(x["rps"] for x in runs), "p50_ms": med(x["p50_ms"] for x in runs),
            "p99_ms": med(x["p99_ms"] for x in runs),
            "failed": sum(x["failed"] for x in runs),
            "first_new_s": med(x["first_new_s"] for x in runs),
            "all_new_s": med(x["all_new_s"] for x in runs),
            "worst_all_new_s": max(x["all_new_s"] for x in runs),
            "client_cpu": med(x["client_cpu"] for x in runs),
            "server_cpu": med(x["server_cpu"] for x in runs), "reps": runs}


def _secs(value: float) -> str:
    return "never" if value != value else f"{value:.2f}s"


def ensure_mlflow(explicit: str | None) -> str:
    from run import ensure_mlflow_python

    python = ensure_mlflow_python(explicit)
    out = subprocess.run([python, "-c", "import sklearn"], capture_output=True)
    if out.returncode:
        import sklearn

        log(f"installing scikit-learn=={sklearn.__version__} into the MLflow interpreter ...")
        subprocess.run([python, "-m", "pip", "install", "--quiet",
                        f"scikit-learn=={sklearn.__version__}"], check=True)
    return python


def versions(mlflow_python: str | None) -> dict[str, str]:
    import sklearn
    import uvicorn

    out = {"python": platform.python_version(), "scikit-learn": sklearn.__version__,
           "uvicorn (cairn)": uvicorn.__version__}
    for mod in ("uvloop", "httptools"):
        try:
            out[f"{mod} (cairn)"] = __import__(mod).__version__
        except ImportError:
            out[f"{mod} (cairn)"] = "-"
    if mlflow_python:
        code = ("import importlib.metadata as m, json\nd = {}\n"
                "for p in ('mlflow', 'scikit-learn', 'uvicorn', 'fastapi', 'uvloop', 'httptools'):\n"
                "    try: d[p] = m.version(p)\n    except Exception: d[p] = '-'\nprint(json.dumps(d))")
        got = subprocess.run([mlflow_python, "-c", code], capture_output=True, text=True)
        for k, v in json.loads(got.stdout).items():
            out[f"{k} (mlflow)"] = v
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 repetition of 3 s (after 1 s warm-up)")
    ap.add_argument("--workers", type=int, default=1, help="worker processes, both servers")
    ap.add_argument("--duration", type=float, default=None, help="measured seconds (default 10)")
    ap.add_argument("--warmup", type=float, default=None, help="seconds before measuring (2)")
    ap.add_argument("--reps", type=int, default=None, help="repetitions per row (default 3)")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--only", action="append", choices=SCENARIOS,
                    help="run only these scenarios (repeatable)")
    ap.add_argument("--side", choices=["both", "cairn", "mlflow"], default="both")
    ap.add_argument("--max-batch", type=int, default=32, help="cairn's --max-batch (batched)")
    ap.add_argument("--max-wait-ms", type=float, default=2.0, help="cairn's --max-wait-ms")
    ap.add_argument("--poll", type=float, default=None,
                    help="cairn's --poll in the switch scenario (default: the server's)")
    ap.add_argument("--mlflow-python", default=None, help="an interpreter that has mlflow")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)
    args.duration = args.duration or (3.0 if args.quick else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 2.0)
    args.reps = args.reps or (1 if args.quick else 3)
    scenarios = args.only or list(SCENARIOS)
    sides = ("mlflow", "cairn") if args.side == "both" else (args.side,)

    import warnings

    warnings.filterwarnings("ignore")  # sklearn's feature-name warnings in the answer check
    opts = cairn_options()
    mlflow_python = ensure_mlflow(args.mlflow_python) if "mlflow" in sides else None
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    load_start = os.getloadavg()
    results: dict[str, dict[str, Any]] = {}
    missing: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        workdir = Path(tmp)
        info = prepare(workdir, mlflow_python)
        single, single_rows = bodies(1, DISTINCT_BODIES, 1)
        multi, multi_rows = bodies(100, DISTINCT_BODIES // 4, 2)
        post = {"single": [request_bytes("POST", "/invocations", b) for b in single],
                "rows100": [request_bytes("POST", "/invocations", b) for b in multi]}
        ping = [request_bytes("GET", "/ping")]

        # Every server is started first and idles while another is measured; each
        # family's repetitions alternate between them (null, mlflow, cairn, ..., then
        # again), so that a change of load on a shared machine falls on all of them.
        servers: dict[str, Server] = {}
        # (scenario, server label): the rows of the table, by family of request bodies
        families = {"ping": [("ping", "mlflow"), ("ping", "cairn")],
                    "single": [("single", "null"), ("single", "mlflow"), ("single", "cairn"),
                               ("single", "cairn+own"), ("batched", "cairn+batch"),
                               ("logged", "cairn+log")],
                    "rows100": [("rows100", "null"), ("rows100", "mlflow"),
                                ("rows100", "cairn")]}
        wanted = {(scen, label) for rows in families.values() for scen, label in rows
                  if scen in scenarios or (label == "null" and "ping" in scenarios)}
        wanted = {(scen, label) for scen, label in wanted
                  if label == "null" or label.split("+")[0] in sides}
        labels = {label for _, label in wanted}
        # The prediction log is on by default where it exists: the plain rows run with it
        # off, so that "logged" measures what it costs.
        no_log = ["--log-sample", "0"] if "--log-sample" in opts else []
        cairn_configs = {
            "cairn": ([], no_log),
            "cairn+batch": (["--max-batch", "--max-wait-ms"],
                            ["--max-batch", str(args.max_batch), "--max-wait-ms",
                             f"{args.max_wait_ms:g}", *no_log]),
            "cairn+log": (["--log-sample"], ["--log-sample", "1"]),
            # the model's own predict: what the fast path for forests is worth
            "cairn+own": (["--no-fast-path"], ["--no-fast-path", *no_log])}
        try:
            for label in sorted(labels, key=["null", "mlflow", "cairn", "cairn+own",
                                             "cairn+batch", "cairn+log"].index):
                if label == "null":
                    servers[label] = start_null(workdir)
                    continue
                if label == "mlflow":
                    log(f"starting mlflow models serve (-w {args.workers}) ...")
                    server = start_mlflow(mlflow_python, info["mlflow_model"], args.workers,
                                          workdir)
                else:
                    needs, extra = cairn_configs[label]
                    lacking = [o for o in needs if o not in opts]
                    if args.workers != 1 and "--workers" not in opts:
                        lacking.append("--workers")
                    if lacking:
                        why = f"cairn serve {' '.join(lacking)} is not available yet"
                        log(f"[{label}] skipped: {why}")
                        missing.update({f"{sc}/{lb}": why for sc, lb in wanted if lb == label})
                        continue
                    log(f"starting cairn serve {' '.join(extra)} ...")
                    try:
                        server = start_cairn(info["store"], args.workers, workdir, extra, None)
                    except ServerFailed as exc:
                        why = f"the server did not start: {exc}"[:300]
                        missing.update({f"{sc}/{lb}": why for sc, lb in wanted if lb == label})
                        continue
                servers[label] = server
                check_answers(server, single, single_rows, multi, multi_rows, info["model1"])
            for family, rows in families.items():
                rows = [(sc, lb) for sc, lb in rows if (sc, lb) in wanted and lb in servers]
                if not rows:
                    continue
                reqs = ping if family == "ping" else post[family]
                log(f"[{family}] {args.clients} clients, {args.reps} x {args.duration:g}s on "
                    + ", ".join(f"{sc}/{lb}" for sc, lb in rows))
                runs: dict[str, list[LoadResult]] = {f"{sc}/{lb}": [] for sc, lb in rows}
                for rep in range(args.reps):
                    for sc, lb in rows:
                        server = servers[lb]
                        r = load(server.url, reqs, args.clients, args.warmup, args.duration,
                                 server, False)
                        runs[f"{sc}/{lb}"].append(r)
                        log(f"  {sc}/{lb} rep {rep + 1}: {r.rps:,.0f} req/s, p50 "
                            f"{r.p50_ms:.1f} ms, p99 {r.p99_ms:.1f} ms, failed {r.failed}, "
                            f"client cpu {r.client_cpu:.0%}, server cpu {r.server_cpu:.0%}"
                            + (f"  {r.samples[:2]}" if r.samples else ""))
                results.update({key: summarize(rs) for key, rs in runs.items()})
        finally:
            for server in servers.values():
                server.stop()
        if "cairn" in sides and "switch" in scenarios:
            if args.workers != 1 and "--workers" not in opts:
                missing["switch/cairn"] = "cairn serve --workers is not available yet"
            else:
                log(f"[switch/cairn] alias {ALIAS} moves {info['v1']} -> {info['v2']} "
                    f"under load, {args.reps} x {max(args.duration, 8.0):g}s")
                results["switch/cairn"] = switch_scenario(args, info, workdir, post["single"],
                                                          no_log)

    report = {"commit": commit, "machine": machine(), "versions": versions(mlflow_python),
              "loadavg": {"start": load_start, "end": os.getloadavg()},
              "clients": args.clients, "workers": args.workers, "duration_s": args.duration,
              "warmup_s": args.warmup, "reps": args.reps, "results": results,
              "not_available": missing,
              "options": {"max_batch": args.max_batch, "max_wait_ms": args.max_wait_ms,
                          "poll": args.poll}}
    print_table(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    return 0


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({model}), Linux {platform.release()}"


def print_table(report: dict[str, Any]) -> None:
    res, na = report["results"], report["not_available"]
    rows_per = {"ping": 0, "single": 1, "rows100": 100, "batched": 1, "logged": 1, "switch": 1}
    print(f"\nserving benchmark at {report['commit']} on {report['machine']}")
    print(f"{report['clients']} clients, {report['workers']} worker(s) per server, medians of "
          f"{report['reps']} x {report['duration_s']:g}s (after {report['warmup_s']:g}s warm-up);"
          " the server and the load generator share the machine's CPUs")
    la = report["loadavg"]
    print(f"load average {la['start'][0]:.1f} at the start, {la['end'][0]:.1f} at the end "
          f"({os.cpu_count()} CPUs)" + ("  WARNING: other work was running; the figures are "
                                        "noisy" if max(la['start'][0], la['end'][0])
                                        > (os.cpu_count() or 1) else ""))
    print("cpu: share of one core used in the window (client = the load generator); "
          "cairn runs with --log-sample 0 except in 'logged'; cairn+own is cairn with "
          "--no-fast-path (the forest's own predict)\n")
    hdr = (f"{'scenario':9} {'server':12} {'req/s':>8} {'rows/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
           f"{'failed':>6} {'cpu srv':>7} {'cpu cli':>7}  against mlflow")
    print(hdr)
    print("-" * len(hdr))
    base = res.get("single/mlflow")
    order = ["null", "mlflow", "cairn", "cairn+own", "cairn+batch", "cairn+log"]
    for key, r in sorted(res.items(), key=lambda kv: (
            SCENARIOS.index(kv[0].split("/")[0]),
            order.index(kv[0].split("/")[1]) if kv[0].split("/")[1] in order else 9)):
        scen, server = key.split("/", 1)
        if scen == "switch":
            continue
        ref = res.get(f"{'rows100' if scen == 'rows100' else 'single'}/mlflow")
        if scen == "ping":
            ref = res.get("ping/mlflow")
        cmp = ""
        if ref is not None and server not in ("mlflow", "null") and ref["rps"]:
            cmp = (f"req/s x{r['rps'] / ref['rps']:.2f}, p99 1/{ref['p99_ms'] / r['p99_ms']:.2f}")
        if scen == "logged" and res.get("single/cairn"):
            base_c = res["single/cairn"]["rps"]
            cmp += f"; req/s {100 * (1 - r['rps'] / base_c):.1f}% below log off"
        rows = f"{r['rps'] * rows_per[scen]:9,.0f}" if rows_per[scen] else f"{'-':>9}"
        print(f"{scen:9} {server:12} {r['rps']:8,.0f} {rows} "
              f"{r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r['failed']:6d} {r['server_cpu']:7.0%} "
              f"{r['client_cpu']:7.0%}  {cmp}")
    for key, why in na.items():
        scen, server = key.split("/", 1)
        print(f"{scen:9} {server:12} {'not available':>8}  ({why})")
    sw = res.get("switch/cairn")
    if sw:
        print(f"\nalias switch under load (cairn, single rows): {sw['failed']} failed requests; "
              f"first answer from the new version {_secs(sw['first_new_s'])} after the alias "
              f"moved, every answer from it after {sw['all_new_s']:.2f}s (median; worst "
              f"{sw['worst_all_new_s']:.2f}s); {sw['rps']:,.0f} req/s, p99 {sw['p99_ms']:.1f} ms")
    c = res.get("single/cairn")
    targets: list[tuple[str, float, float | None, str]] = []
    if c and base:
        targets.append(("single: cairn >= 3x mlflow req/s", c["rps"] / base["rps"], 3.0, ""))
        targets.append(("single: cairn p99 <= 1/3 of mlflow's", base["p99_ms"] / c["p99_ms"],
                        3.0, ""))
    b = res.get("batched/cairn+batch")
    if b and base:
        targets.append(("batched: cairn >= 10x mlflow req/s", b["rps"] / base["rps"], 10.0, ""))
    lg = res.get("logged/cairn+log")
    if lg and c:
        drop = 100 * (1 - lg["rps"] / c["rps"])
        targets.append(("logged: req/s < 10% below log off", drop, None, f"{drop:.1f}%"))
    if sw:
        targets.append(("switch: 0 failed, all new within 2 s", sw["worst_all_new_s"], None,
                        f"{sw['failed']} failed, {sw['worst_all_new_s']:.2f}s"))
    if targets:
        print()
        for text, value, want, shown in targets:
            if text.startswith("logged"):
                ok = value < 10
            elif text.startswith("switch"):
                ok = sw["failed"] == 0 and value <= 2.0
            else:
                ok = value >= want
                shown = f"{value:.2f}x"
            print(f"target {text:40} {shown:>18}  {'PASS' if ok else 'FAIL'}")


if __name__ == "__main__":
    sys.exit(main())
