"""One process, one local store, up to a million runs: creation rate and search latency by size.

Creates runs with the fluent API, each with the benchmark's 20 params, 10 metrics and 5 tags
(``_common.run_payload``), as a sweep does, and measures:

- runs/s over each stretch (up to 10k, 10k to 100k, 100k to 1M);
- at 10k, 100k and 1M runs, the median of ``--searches`` searches with the benchmark's
  3-clause filter and order (``_common.SEARCH_FILTER``), limited to the first 100 hits,
  each from a fresh ``cairn.Client`` in this process (the store is already open).

A stall (no run created for ``--stall`` seconds) is reported and ends the run with status 1:
that was issue #14's bug (a process stopped after about 15,000 runs).  Prints a table and
writes JSON to ``benchmarks/results/scale-<UTC time>.json``.

    .venv/bin/python benchmarks/run_scale.py [--runs 1000000] [--searches 10] [--store DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import SEARCH_FILTER, SEARCH_ORDER_BY, run_payload  # noqa: E402

MARKS = (10_000, 100_000, 1_000_000)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1_000_000)
    ap.add_argument("--searches", type=int, default=10)
    ap.add_argument("--store", help="store directory (default: a temporary one, removed after)")
    ap.add_argument("--stall", type=float, default=120.0, help="seconds without progress = stalled")
    args = ap.parse_args()
    os.environ.setdefault("CAIRN_CAPTURE_ENV", "0")  # the environment is captured once anyway
    import cairn

    tmp = None
    if args.store is None:
        tmp = tempfile.TemporaryDirectory(prefix="cairn-scale-")
        args.store = str(Path(tmp.name) / "store")
    cairn.set_tracking_uri(args.store)
    cairn.set_experiment("scale")

    done = [0]
    stalled = threading.Event()

    def watchdog() -> None:
        last, since = -1, time.monotonic()
        while not stalled.is_set():
            time.sleep(1.0)
            if done[0] != last:
                last, since = done[0], time.monotonic()
            elif time.monotonic() - since > args.stall:
                print(f"STALLED at {done[0]:,} runs: none created for {args.stall:.0f} s",
                      flush=True)
                stalled.set()
                os._exit(1)

    threading.Thread(target=watchdog, daemon=True).start()
    marks = [m for m in MARKS if m <= args.runs] or [args.runs]
    rows = []
    start_i, t0 = 0, time.perf_counter()
    for mark in marks:
        seg_start = time.perf_counter()
        for i in range(start_i, mark):
            params, metrics, tags = run_payload(i)
            with cairn.start_run(params=params, tags=tags):
                cairn.log_metrics(metrics, step=0)
            done[0] += 1
            if (i + 1) % 50_000 == 0:
                print(f"  {i + 1:,} runs, {time.perf_counter() - t0:.0f} s", flush=True)
        cairn.flush()
        rate = (mark - start_i) / (time.perf_counter() - seg_start)
        times, hits = [], 0
        for _ in range(args.searches):
            client = cairn.Client(args.store)
            s = time.perf_counter()
            found = client.search_runs("scale", filter=SEARCH_FILTER, order_by=[SEARCH_ORDER_BY],
                                       max_results=100)
            times.append(time.perf_counter() - s)
            hits = len(found)
            done[0] += 1  # progress too: the watchdog looks for a stall of the store, not of us
        rows.append({"runs": mark, "segment_from": start_i, "runs_per_s": rate,
                     "search_ms_median": statistics.median(times) * 1000,
                     "search_ms_min": min(times) * 1000, "hits": hits})
        print(f"{mark:>9,} runs: {rate:8.0f} runs/s since {start_i:,}; search median "
              f"{statistics.median(times) * 1000:.1f} ms ({hits} hits shown)", flush=True)
        start_i = mark
    stalled.set()
    total = time.perf_counter() - t0
    load = os.getloadavg()
    out = {"when": datetime.now(timezone.utc).isoformat(), "runs": args.runs, "total_s": total,
           "rows": rows, "loadavg": load, "cpus": os.cpu_count(),
           "filter": SEARCH_FILTER, "order_by": SEARCH_ORDER_BY}
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    name = results / f"scale-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"
    name.write_text(json.dumps(out, indent=2))
    print(f"total {total:.0f} s for {args.runs:,} runs; load average {load[0]:.1f}; {name}")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
