"""Evidently's side of drift_bench.py: runs in benchmarks/.evidently-venv, not in the project's.

    python _evidently_side.py REFERENCE.parquet CURRENT.parquet KINDS_JSON REPS

KINDS_JSON maps each column to "numerical" or "categorical" (the kinds Cairn infers), given
to Evidently as its DataDefinition so that neither side guesses differently.  Both files are
read into pandas once, untimed.  Each repetition times what a user of Evidently runs on two
data frames already in memory: ``Dataset.from_pandas`` for both, and a fresh
``Report([DataDriftPreset()], include_tests=True).run(current, reference)``; the tests are
included because they carry Evidently's own per-column verdict (drift detected or not),
computed from the same drift result the metric holds.  Prints one line
``BENCH-RESULT {"seconds": [...], "columns": {name: {method, threshold, score, drifted}}}``.
"""

from __future__ import annotations

import json
import sys
import time
import warnings

RESULT_PREFIX = "BENCH-RESULT "  # as in _common.py, which this venv's interpreter could import too


def main(argv: list[str]) -> int:
    ref_path, cur_path, kinds_json, reps = argv[0], argv[1], argv[2], int(argv[3])
    # Evidently and pandas warn about deprecations and dtypes; this script only measures.
    warnings.simplefilter("ignore")
    import evidently
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    kinds = json.loads(kinds_json)
    t0 = time.perf_counter()
    ref = pd.read_parquet(ref_path)
    cur = pd.read_parquet(cur_path)
    load_s = time.perf_counter() - t0
    definition = DataDefinition(
        numerical_columns=[c for c, k in kinds.items() if k == "numerical"],
        categorical_columns=[c for c, k in kinds.items() if k == "categorical"])
    seconds = []
    snapshot = None
    for _ in range(reps):
        t0 = time.perf_counter()
        current = Dataset.from_pandas(cur, data_definition=definition)
        reference = Dataset.from_pandas(ref, data_definition=definition)
        snapshot = Report([DataDriftPreset()], include_tests=True).run(current, reference)
        seconds.append(time.perf_counter() - t0)
        print(f"evidently: repetition {len(seconds)}/{reps}: {seconds[-1]:.2f} s", file=sys.stderr,
              flush=True)
    assert snapshot is not None
    result = snapshot.dict()
    columns: dict[str, dict] = {}
    for m in result["metrics"]:
        cfg = m.get("config", {})
        if cfg.get("type", "").endswith(":ValueDrift"):
            columns[cfg["column"]] = {"method": cfg.get("method"), "threshold": cfg.get("threshold"),
                                      "score": m["value"], "drifted": None}
    for t in result["tests"]:
        params = (t.get("metric_config") or {}).get("params") or {}
        if params.get("type", "").endswith(":ValueDrift") and params.get("column") in columns:
            columns[params["column"]]["drifted"] = t["status"] == "FAIL"
    print(RESULT_PREFIX + json.dumps({"seconds": seconds, "load_seconds": load_s,
                                      "version": evidently.__version__,
                                      "pandas": pd.__version__, "columns": columns}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
