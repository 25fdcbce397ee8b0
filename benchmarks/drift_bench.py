#!/usr/bin/env python3
"""Drift of a million logged predictions: Cairn's column drift against Evidently's
DataDriftPreset, on the same data in one run (issue #19: >= 10x faster, the same verdict on
>= 98% of columns).

    .venv/bin/python benchmarks/drift_bench.py                  # 200k reference, 1M current, 3 repetitions
    .venv/bin/python benchmarks/drift_bench.py --quick          # 20k / 100k, 1 repetition: a smoke run
    .venv/bin/python benchmarks/drift_bench.py --side cairn --json out.json
    .venv/bin/python benchmarks/drift_bench.py --profile        # where Cairn's time goes (cProfile)

The data (seeded) has 50 columns, 35 numerical and 15 categorical (text), each built to drift
by a known amount or not at all: shifts and scale changes of several distributions, mixture
weights, outliers, integers with ties, missing values, category mixes, categories the
reference never had, and columns placed just either side of the threshold.  It is written
once to Parquet under ``--cache`` (default ``benchmarks/results/drift-data``, git-ignored)
and read back by each side, untimed.  Every column's reference has more than 1,000 values,
so both sides use the large-sample methods: Wasserstein distance over the reference's
standard deviation (>= 0.1) for numbers, Jensen-Shannon distance (>= 0.1) for categories.

What is timed, per repetition:

    cairn      what ``cairn monitor drift`` does per window once the log and the reference
               are read: the reference's Arrow columns to NumPy and ``drift.prepare`` for
               each (sequentially), then every column of the current window (Arrow arrays)
               through ``report._column`` in the same thread pool ``drift_report`` uses
               (as many threads as CPUs).
    evidently  ``Dataset.from_pandas`` for both frames (already read into pandas) and
               ``Report([DataDriftPreset()], include_tests=True).run(current, reference)``.

Cairn runs in this process, Evidently in a subprocess under benchmarks/.evidently-venv
(made and filled with the pinned Evidently on first use, or ``--evidently-python``), both on
the same files.  The figure is the median over ``--reps``.  Verdicts are compared column by
column; the columns that disagree are listed with both scores.  Exit status: 0; 1 with
``--check`` when Cairn is under 10x faster or agrees on under 98% of columns; 2 when a side
failed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EVIDENTLY_VENV = HERE / ".evidently-venv"
# The newest Evidently on PyPI.  It does not import under pandas 3 (it imports
# pandas.core.dtypes.common.infer_dtype_from_object, gone in 3.0) yet does not bound pandas,
# so the venv gets the last pandas 2.
EVIDENTLY_VERSION = "0.7.23"
PANDAS_FOR_EVIDENTLY = "2.3.3"
RESULT_PREFIX = "BENCH-RESULT "
DEFAULT_CACHE = HERE / "results" / "drift-data"
# Bump when the columns below change: the cache key includes it.  (2: column c04 renamed, its
# values as in 1; it scored 0.22, not the borderline its first name promised.)
DATA_VERSION = 2
SEED = 19
FULL = {"reference": 200_000, "current": 1_000_000}
QUICK = {"reference": 20_000, "current": 100_000}
TARGET_SPEEDUP = 10.0
TARGET_AGREEMENT = 0.98


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- the data -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Col:
    """One generated column.  ``make(rng, n, current)`` gives its values (float64 with NaN for
    numbers, an Arrow string array for categories); ``expect`` is the verdict the design aims
    at (None: placed at the threshold, so either verdict is right)."""

    name: str
    kind: str  # "numerical" or "categorical"
    make: Callable[[Any, int, bool], Any]
    expect: bool | None


def _normal(shift: float = 0.0, scale: float = 1.0, missing: float = 0.0,
            missing_cur: float | None = None) -> Callable[[Any, int, bool], Any]:
    def make(rng: Any, n: int, cur: bool) -> Any:
        import numpy as np

        x = rng.normal(shift if cur else 0.0, scale if cur else 1.0, n)
        share = (missing if missing_cur is None else missing_cur) if cur else missing
        if share:
            x[rng.random(n) < share] = np.nan
        return x
    return make


def _lognormal(mu_shift: float) -> Callable[[Any, int, bool], Any]:
    return lambda rng, n, cur: rng.lognormal(mu_shift if cur else 0.0, 1.0, n)


def _uniform(shift: float) -> Callable[[Any, int, bool], Any]:
    return lambda rng, n, cur: rng.uniform(0.0, 1.0, n) + (shift if cur else 0.0)


def _poisson(lam_cur: float) -> Callable[[Any, int, bool], Any]:
    return lambda rng, n, cur: rng.poisson(lam_cur if cur else 20.0, n)


def _exponential(scale_cur: float) -> Callable[[Any, int, bool], Any]:
    return lambda rng, n, cur: rng.exponential(scale_cur if cur else 1.0, n)


def _bimodal(weight_cur: float) -> Callable[[Any, int, bool], Any]:
    """Modes at -2 and +2 (sd 1); ``weight_cur``: the current's share of the left one."""
    def make(rng: Any, n: int, cur: bool) -> Any:
        left = rng.random(n) < (weight_cur if cur else 0.5)
        return rng.normal(0.0, 1.0, n) + (-2.0 * left + 2.0 * ~left)
    return make


def _outliers(share: float) -> Callable[[Any, int, bool], Any]:
    def make(rng: Any, n: int, cur: bool) -> Any:
        x = rng.normal(0.0, 1.0, n)
        if cur:
            x[rng.random(n) < share] += 10.0
        return x
    return make


def _ints(p_cur: list[float] | None) -> Callable[[Any, int, bool], Any]:
    """Integers 0..9 (ten values: numerical, many ties), uniform, or ``p_cur`` in the current."""
    return lambda rng, n, cur: rng.choice(10, n, p=p_cur if cur and p_cur else None)


def _cats(p_ref: list[float], p_cur: list[float] | None = None, *, new: float = 0.0,
          missing: float = 0.0, missing_cur: float | None = None,
          labels: list[str] | None = None) -> Callable[[Any, int, bool], Any]:
    """Text categories with proportions ``p_ref`` (``p_cur`` in the current); ``new``: the
    current's share of categories the reference never had; ``missing``: share of nulls."""
    def make(rng: Any, n: int, cur: bool) -> Any:
        import numpy as np
        import pyarrow as pa

        p = np.asarray(p_cur if cur and p_cur is not None else p_ref, float)
        p = p / p.sum()
        names = labels or [f"c{i:03d}" for i in range(p.size)]
        codes = rng.choice(p.size, n, p=p)
        if cur and new:
            fresh = rng.random(n) < new
            codes[fresh] = p.size + rng.integers(0, 5, int(fresh.sum()))
            names = names + [f"new{i}" for i in range(5)]
        share = (missing if missing_cur is None else missing_cur) if cur else missing
        mask = rng.random(n) < share if share else None
        arr = pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32), mask=mask),
                                             pa.array(names, pa.string()))
        return arr.cast(pa.string())
    return make


def _zipf(k: int, s: float) -> list[float]:
    return [1.0 / (i + 1) ** s for i in range(k)]


def columns() -> list[Col]:
    """The 50 columns.  Numerical scores are W1 / sd of the reference: a shift of d sd scores
    d, a scale change to s scores about 0.8 |s - 1|; the comments give the designed score."""
    N, C = "numerical", "categorical"
    num = [
        ("normal", _normal(), False),
        ("normal_shift_0.02", _normal(0.02), False),
        ("normal_shift_0.05", _normal(0.05), False),
        ("normal_shift_0.08", _normal(0.08), False),
        ("normal_shift_0.095", _normal(0.095), None),
        ("normal_shift_0.099", _normal(0.099), None),
        ("normal_shift_0.101", _normal(0.101), None),
        ("normal_shift_0.105", _normal(0.105), None),
        ("normal_shift_0.12", _normal(0.12), True),
        ("normal_shift_0.3", _normal(0.3), True),
        ("normal_shift_1", _normal(1.0), True),
        ("normal_scale_1.05", _normal(scale=1.05), False),   # ~0.04
        ("normal_scale_1.1", _normal(scale=1.1), False),     # ~0.08
        ("normal_scale_1.15", _normal(scale=1.15), True),    # ~0.12
        ("normal_scale_1.5", _normal(scale=1.5), True),      # ~0.4
        ("normal_scale_0.8", _normal(scale=0.8), True),      # ~0.16
        ("lognormal", _lognormal(0.0), False),
        ("lognormal_mu_0.05", _lognormal(0.05), False),      # ~0.04
        ("lognormal_mu_0.15", _lognormal(0.15), None),       # ~0.12, the sd of a heavy tail is noisy
        ("lognormal_mu_0.5", _lognormal(0.5), True),         # ~0.5
        ("uniform", _uniform(0.0), False),
        ("uniform_shift_0.03", _uniform(0.03), None),        # 0.03 / 0.289 = 0.104
        ("uniform_shift_0.1", _uniform(0.1), True),          # 0.35
        ("poisson20", _poisson(20.0), False),
        ("poisson20_to_20.5", _poisson(20.5), None),         # ~0.5 / 4.47 = 0.11
        ("poisson20_to_22", _poisson(22.0), True),           # ~0.45
        ("exponential", _exponential(1.0), False),
        ("exponential_scale_1.2", _exponential(1.2), True),  # 0.2
        ("normal_missing_5pct", _normal(missing=0.05), False),
        ("normal_missing_5pct_shift_0.2", _normal(0.2, missing=0.05), True),
        ("normal_missing_5_to_20pct", _normal(missing=0.05, missing_cur=0.2), False),
        ("bimodal_0.5_to_0.45", _bimodal(0.45), None),       # 0.05 * 4 / 2.24 = 0.09
        ("bimodal_0.5_to_0.35", _bimodal(0.35), True),       # 0.27
        ("outliers_2pct_at_10sd", _outliers(0.02), True),    # 0.2
        ("ints_0_9_skewed", _ints([0.14] * 5 + [0.06] * 5), True),
    ]
    cat = [
        ("cat3", _cats([0.5, 0.3, 0.2]), False),
        ("cat3_mild", _cats([0.5, 0.3, 0.2], [0.45, 0.33, 0.22]), False),
        ("cat3_strong", _cats([0.5, 0.3, 0.2], [0.3, 0.3, 0.4]), True),
        ("cat8", _cats([1] * 8), False),
        ("cat8_half_up_half_down", _cats([1] * 8, [1.6] * 4 + [0.4] * 4), True),  # 0.22
        ("cat8_strong", _cats([1] * 8, [3] * 2 + [0.5] * 6), True),
        ("cat20_zipf", _cats(_zipf(20, 1.0)), False),
        ("cat20_zipf_1_to_1.4", _cats(_zipf(20, 1.0), _zipf(20, 1.4)), True),
        ("cat50", _cats([1] * 50), False),
        ("cat50_10pct_new", _cats([1] * 50, new=0.10), True),
        ("yes_no", _cats([0.5, 0.5], labels=["yes", "no"]), False),
        ("yes_no_0.5_to_0.65", _cats([0.5, 0.5], [0.65, 0.35], labels=["yes", "no"]), None),  # 0.107
        ("cat5_missing_3pct", _cats([1] * 5, missing=0.03), False),
        ("cat5_missing_3_to_15pct", _cats([1] * 5, missing=0.03, missing_cur=0.15), False),
        ("cat200", _cats(_zipf(200, 0.5)), False),
    ]
    cols = [Col(f"n{i:02d}_{name}", N, make, expect) for i, (name, make, expect) in enumerate(num)]
    cols += [Col(f"c{i:02d}_{name}", C, make, expect) for i, (name, make, expect) in enumerate(cat)]
    return cols


def ensure_data(cache: Path, sizes: dict[str, int], seed: int = SEED) -> tuple[Path, Path]:
    """The reference and current Parquet files for ``sizes``, generated on first use."""
    key = cache / f"v{DATA_VERSION}-s{seed}-r{sizes['reference']}-c{sizes['current']}"
    ref, cur = key / "reference.parquet", key / "current.parquet"
    if ref.exists() and cur.exists():
        return ref, cur
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    key.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for path, n, is_cur in ((ref, sizes["reference"], False), (cur, sizes["current"], True)):
        arrays = []
        for i, col in enumerate(columns()):
            # One generator per column and side: a column's values do not depend on the others.
            rng = np.random.default_rng([seed, i, int(is_cur)])
            values = col.make(rng, n, is_cur)
            arrays.append(values if isinstance(values, pa.Array) else pa.array(values, from_pandas=True))
        tmp = path.with_suffix(".tmp")
        pq.write_table(pa.table(arrays, names=[c.name for c in columns()]), tmp)
        tmp.replace(path)
    log(f"data: wrote {key} in {time.perf_counter() - t0:.1f} s")
    return ref, cur


# -- Cairn ----------------------------------------------------------------------------------
def cairn_once(ref_table: Any, current: dict[str, Any]) -> tuple[float, float, list[Any]]:
    """One timed pass: (prepare seconds, compare seconds, the ColumnDrift results)."""
    from concurrent.futures import ThreadPoolExecutor

    from cairn.monitoring import drift as D
    from cairn.monitoring.reference import _numpy
    from cairn.monitoring.report import _column

    names = list(current)
    t0 = time.perf_counter()
    prepared = [D.prepare(_numpy(ref_table[name])) for name in names]
    t1 = time.perf_counter()
    with ThreadPoolExecutor(max(1, min(len(names), os.cpu_count() or 1))) as pool:
        results = list(pool.map(_column, prepared, names, [current[n] for n in names],
                                [None] * len(names), [None] * len(names)))
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, results


def run_cairn(ref_path: Path, cur_path: Path, reps: int, profile: bool = False) -> dict[str, Any]:
    import pyarrow.parquet as pq

    ref_table = pq.read_table(ref_path)
    cur_table = pq.read_table(cur_path)
    # What windows.read_log hands over: one contiguous Arrow array per column.
    current = {name: cur_table[name].combine_chunks() for name in cur_table.column_names}
    cairn_once(ref_table, current)  # warm-up: imports, SciPy's lazy modules
    seconds, prepare_s, compare_s = [], [], []
    results: list[Any] = []
    for rep in range(reps):
        p, c, results = cairn_once(ref_table, current)
        prepare_s.append(p)
        compare_s.append(c)
        seconds.append(p + c)
        log(f"cairn: repetition {rep + 1}/{reps}: {p + c:.2f} s (prepare {p:.2f}, compare {c:.2f})")
    if profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        cairn_once(ref_table, current)
        prof.disable()
        log("cairn: profile of one pass (cProfile, cumulative; threads other than the main one "
            "are not profiled, so compare's columns show as waits)")
        pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats(25)
    import cairn

    return {"seconds": seconds, "prepare_seconds": prepare_s, "compare_seconds": compare_s,
            "version": getattr(cairn, "__version__", "?"),
            "columns": {r.column: {"method": r.method, "threshold": r.threshold, "score": r.score,
                                   "drifted": r.drifted, "kind": r.kind} for r in results}}


# -- Evidently ------------------------------------------------------------------------------
def installed_version(python: str, dist: str) -> str | None:
    code = f"import importlib.metadata as m; print(m.version({dist!r}))"
    out = subprocess.run([python, "-c", code], capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


def ensure_evidently_python(explicit: str | None) -> str:
    """The Evidently interpreter: --evidently-python, or the pinned virtualenv (made on first use)."""
    if explicit:
        return explicit
    python = EVIDENTLY_VENV / "bin" / "python"
    if not python.exists():
        log(f"creating {EVIDENTLY_VENV.relative_to(ROOT)} ...")
        subprocess.run([sys.executable, "-m", "venv", str(EVIDENTLY_VENV)], check=True)
        # As `python -m venv` does from Python 3.13: the venv ignores itself in git.
        (EVIDENTLY_VENV / ".gitignore").write_text("*\n")
    if installed_version(str(python), "evidently") != EVIDENTLY_VERSION \
            or installed_version(str(python), "pandas") != PANDAS_FOR_EVIDENTLY:
        log(f"installing evidently=={EVIDENTLY_VERSION} into {EVIDENTLY_VENV.relative_to(ROOT)} "
            "(a few minutes) ...")
        subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                        f"evidently=={EVIDENTLY_VERSION}", f"pandas=={PANDAS_FOR_EVIDENTLY}",
                        "pyarrow"], check=True)
    return str(python)


class SideFailed(Exception):
    pass


def run_evidently(python: str, ref_path: Path, cur_path: Path, kinds: dict[str, str],
                  reps: int) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    env["DO_NOT_TRACK"] = "1"  # Evidently's usage telemetry off
    argv = [python, str(HERE / "_evidently_side.py"), str(ref_path), str(cur_path),
            json.dumps(kinds), str(reps)]
    proc = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=None, text=True,
                          timeout=3600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        raise SideFailed(f"evidently exited {proc.returncode}: {proc.stdout[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1][len(RESULT_PREFIX):])
    return result


# -- comparing ------------------------------------------------------------------------------
def compare(cairn: dict[str, Any], evidently: dict[str, Any]) -> dict[str, Any]:
    names = list(cairn["columns"])
    agree, disagree = [], []
    for name in names:
        c, e = cairn["columns"][name], evidently["columns"].get(name)
        if e is not None and c["drifted"] is not None and c["drifted"] == e["drifted"]:
            agree.append(name)
        else:
            disagree.append({"column": name, "cairn": c, "evidently": e})
    diffs = [abs(cairn["columns"][n]["score"] - evidently["columns"][n]["score"]) for n in agree
             if evidently["columns"][n]["score"] is not None]
    return {"columns": len(names), "agree": len(agree), "share": len(agree) / len(names),
            "disagree": disagree, "max_score_difference": max(diffs, default=None)}


def against_design(result: dict[str, Any]) -> list[str]:
    """Columns whose verdict is not the one the data was built for (borderline ones excepted)."""
    return [c.name for c in columns() if c.expect is not None
            and result["columns"][c.name]["drifted"] is not c.expect]


def machine() -> str:
    model = platform.processor()
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} CPUs ({model}), Linux {platform.release()}, Python {platform.python_version()}"


def report(out: dict[str, Any]) -> str:
    lines = [f"drift: {out['sizes']['reference']:,} reference rows, {out['sizes']['current']:,} "
             f"current rows, {out['columns']} columns ({out['numerical']} numerical, "
             f"{out['categorical']} categorical); median of {out['reps']}; {out['machine']}; "
             f"load average {out['load_average_before'][0]} before, "
             f"{out.get('load_average_after', ['?'])[0]} after", ""]
    sides = out["sides"]
    lines.append(f"{'side':<18}{'median':>10}   repetitions")
    for side, res in sides.items():
        reps = ", ".join(f"{s:.2f}" for s in res["seconds"])
        extra = ""
        if side == "cairn":
            extra = (f"   (prepare {statistics.median(res['prepare_seconds']):.2f} s, "
                     f"compare {statistics.median(res['compare_seconds']):.2f} s)")
        lines.append(f"{side + ' ' + str(res['version']):<18}{res['median']:>8.2f} s   {reps}{extra}")
    if "speedup" in out:
        lines.append(f"\nCairn is {out['speedup']:.1f}x faster (target >= {TARGET_SPEEDUP:g}x); "
                     f"{out['speedup_compare_only']:.1f}x counting only the comparison, as for "
                     "each window after the first")
        ag = out["agreement"]
        lines.append(f"same verdict on {ag['agree']}/{ag['columns']} columns = {ag['share']:.1%} "
                     f"(target >= {TARGET_AGREEMENT:.0%}); largest score difference where they "
                     f"agree: {ag['max_score_difference']:.2g}")
        for d in ag["disagree"]:
            c, e = d["cairn"], d["evidently"] or {}
            lines.append(f"  differs: {d['column']}: cairn {c['method']} {c['score']!r} "
                         f"drifted={c['drifted']}; evidently {e.get('method')} {e.get('score')!r} "
                         f"drifted={e.get('drifted')}")
    for side, names in out.get("against_design", {}).items():
        if names:
            lines.append(f"{side}: verdict not the designed one on {', '.join(names)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="20k reference rows, 100k current, 1 repetition")
    ap.add_argument("--reps", type=int, help="repetitions per side (default 3; 1 with --quick)")
    ap.add_argument("--side", choices=("both", "cairn", "evidently"), default="both")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where the Parquet files go")
    ap.add_argument("--evidently-python", help="an interpreter with Evidently, instead of the venv")
    ap.add_argument("--json", type=Path, help="write the results here too")
    ap.add_argument("--profile", action="store_true", help="cProfile one more Cairn pass (stderr)")
    ap.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = ap.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    reps = args.reps or (1 if args.quick else 3)
    ref_path, cur_path = ensure_data(args.cache, sizes)
    kinds = {c.name: c.kind for c in columns()}
    out: dict[str, Any] = {"benchmark": "drift", "time": dt.datetime.now(dt.timezone.utc).isoformat(),
                           "machine": machine(), "sizes": sizes, "reps": reps,
                           "columns": len(kinds),
                           "numerical": sum(k == "numerical" for k in kinds.values()),
                           "categorical": sum(k == "categorical" for k in kinds.values()),
                           "load_average_before": [round(v, 2) for v in os.getloadavg()],
                           "sides": {}, "against_design": {}}
    try:
        if args.side in ("both", "cairn"):
            res = run_cairn(ref_path, cur_path, reps, args.profile)
            mismatched = [n for n, c in res["columns"].items() if c["kind"] != kinds[n]]
            if mismatched:
                raise SideFailed(f"cairn took these columns for another kind: {mismatched}")
            out["sides"]["cairn"] = res
        if args.side in ("both", "evidently"):
            python = ensure_evidently_python(args.evidently_python)
            out["sides"]["evidently"] = run_evidently(python, ref_path, cur_path, kinds, reps)
    except (SideFailed, subprocess.SubprocessError) as exc:
        log(f"error: {exc}")
        out["error"] = str(exc)
        if args.json:
            args.json.write_text(json.dumps(out, indent=2) + "\n")
        return 2
    # Figures from a loaded machine are noisy; the load says how much to trust them.
    out["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    for side, res in out["sides"].items():
        res["median"] = statistics.median(res["seconds"])
        out["against_design"][side] = against_design(res)
    if len(out["sides"]) == 2:
        c, e = out["sides"]["cairn"], out["sides"]["evidently"]
        out["speedup"] = e["median"] / c["median"]
        # A monitor prepares the reference once per report and compares every window with it.
        out["speedup_compare_only"] = e["median"] / statistics.median(c["compare_seconds"])
        out["agreement"] = compare(c, e)
    print(report(out))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    if args.check and "speedup" in out and (out["speedup"] < TARGET_SPEEDUP
                                            or out["agreement"]["share"] < TARGET_AGREEMENT):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
