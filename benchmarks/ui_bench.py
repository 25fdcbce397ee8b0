"""The web UI at scale: time to first render of a 10,000-run table and of a 1M-point chart.

Seeds a temporary local store (10,000 runs with 20 params and 10 metrics each, and one
run with a 1,000,000-point metric), serves it with the real app, and opens the pages in
Debian's Chromium through Playwright.  Times are the page's own clock
(``performance.now()``: from the start of navigation to the first painted rows or chart),
median of the repetitions; the API calls behind them are timed separately.  Prints a
table; asserts nothing.  Needs the built UI (``make ui``) and ``/usr/bin/chromium``.

    .venv/bin/python benchmarks/ui_bench.py [--runs 10000] [--points 1000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import numpy as np

from cairn.entities import RecordBatch, RunStatus

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage"]


def seed(root: Path, runs: int, points: int) -> tuple[str, str]:
    import cairn

    client = cairn.Client(str(root))
    store = client.store
    exp = client.create_experiment("scale").id
    t0 = 1_767_225_600_000
    rng = np.random.default_rng(0)
    for i in range(runs):
        create = {"experiment_id": exp, "experiment_name": "scale", "experiment_created_at": t0,
                  "name": f"run-{i:05d}", "parent_id": None, "user": "bench",
                  "start_time": t0 + i}
        metrics = {f"m{k}": (np.array([0]), np.array([t0 + i]), np.array([rng.random()]))
                   for k in range(10)}
        run_id = uuid.uuid4().hex
        store.write(RecordBatch(run_id=run_id, writer_id="w" + run_id[:12], seq=1, time=t0 + i,
                                create=create, params={f"p{k}": str(i % (k + 3))
                                                       for k in range(20)},
                                metrics=metrics, status=RunStatus.FINISHED, end_time=t0 + i + 9))
    big = uuid.uuid4().hex
    steps = np.arange(points, dtype=np.int64)
    values = np.cumsum(rng.normal(0, 1, points))
    values[points // 3] += 1000  # one spike: it must show in the envelope
    create = {"experiment_id": exp, "experiment_name": "scale", "experiment_created_at": t0,
              "name": "long", "parent_id": None, "user": "bench", "start_time": t0}
    store.write(RecordBatch(run_id=big, writer_id="w" + big[:12], seq=1, time=t0, create=create,
                            metrics={"loss": (steps, t0 + steps, values)},
                            status=RunStatus.FINISHED, end_time=t0 + points))
    client.store.close()
    return exp, big


def serve(store):
    import uvicorn

    from cairn.server import create_app

    sock_port = httpx_free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(store), host="127.0.0.1", port=sock_port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{sock_port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/ready").status_code == 200:
                return server, thread, url
        except httpx.TransportError:
            time.sleep(0.05)
    raise SystemExit("the server did not start")


def httpx_free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(fn, repeat: int) -> float:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    from cairn.store.local import LocalStore

    tmp = Path(tempfile.mkdtemp(prefix="cairn-ui-bench-"))
    try:
        t = time.perf_counter()
        exp, big = seed(tmp / "store", args.runs, args.points)
        print(f"seeded {args.runs:,} runs and a {args.points:,}-point series in "
              f"{time.perf_counter() - t:.1f}s", file=sys.stderr)
        store = LocalStore(tmp / "store")
        server, thread, url = serve(store)
        api = httpx.Client(base_url=url, timeout=60)
        rows: dict[str, float] = {}
        first = api.post("/api/v1/ui/runs", json={"experiment_ids": [exp], "limit": 500}).json()
        assert len(first["rows"]) == 500 and first["next_offset"] == 500, "a wrong first page"
        rows["API: first table page (500 runs, 8 columns)"] = timed(lambda: api.post(
            "/api/v1/ui/runs", json={"experiment_ids": [exp], "limit": 500, "columns": [
                *(f"metrics.m{k}" for k in range(4)), *(f"params.p{k}" for k in range(4))]}),
            args.repeat)
        rows["API: a page sorted by a metric, filtered on a param"] = timed(lambda: api.post(
            "/api/v1/ui/runs", json={"experiment_ids": [exp], "limit": 500,
                                     "filter": "params.p1 = '2'",
                                     "order_by": ["metrics.m3 DESC"],
                                     "columns": ["metrics.m3", "params.p1"]}), args.repeat)
        rows["API: 1M-point series as a 1,200-pixel envelope"] = timed(lambda: api.get(
            f"/api/v1/ui/runs/{big}/series", params={"key": "loss", "points": 1200}), args.repeat)
        rows["API: zoomed window (1,000 exact points)"] = timed(lambda: api.get(
            f"/api/v1/ui/runs/{big}/series", params={"key": "loss", "points": 1200,
                                                    "step_min": 500_000, "step_max": 500_999}),
            args.repeat)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            table, chart, scroll = [], [], []
            for _ in range(args.repeat):
                page.goto(f"{url}/?experiments={exp}&sort=name:ASC")
                page.wait_for_selector(".vt-row")
                table.append(page.evaluate("performance.now()"))
                scroll.append(page.evaluate("""async () => {
                    const el = document.querySelector('.vt-scroll');
                    const t = performance.now();
                    el.scrollTop = 250 * 28;  // well into the first page
                    await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
                    return performance.now() - t; }"""))
                page.goto(f"{url}/runs/{big}")
                page.wait_for_selector('.chart[data-key="loss"][data-ready="1"]')
                chart.append(page.evaluate("performance.now()"))
                spike = float(page.get_attribute('.chart[data-key="loss"]', "data-ymax"))
            page.goto(f"{url}/?experiments={exp}")
            page.wait_for_selector(".vt-row")
            rows_in_dom = page.locator(".vt-row").count()
            browser.close()
        rows["Chromium: 10,000-run table, navigation to first rows"] = statistics.median(table)
        rows["Chromium: scroll 250 rows, to the next painted frame"] = statistics.median(scroll)
        rows["Chromium: 1M-point chart, navigation to first paint"] = statistics.median(chart)
        api.close()
        server.should_exit = True
        thread.join(10)
        store.close()
        print(f"\n{'what':58} {'ms (median of ' + str(args.repeat) + ')':>20}")
        for k, v in rows.items():
            print(f"{k:58} {v:>20.0f}")
        print(f"\nrows in the DOM for {args.runs:,} runs: {rows_in_dom}; the chart's y maximum "
              f"{spike:.0f} includes the spike: {spike > 900}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
