#!/usr/bin/env python3
"""Cairn against MLflow, side by side, in one run; prints the ratios.

    .venv/bin/python benchmarks/run.py            # everything, median of 5 repetitions
    .venv/bin/python benchmarks/run.py --quick    # small sizes, one repetition: a smoke run
    .venv/bin/python benchmarks/run.py --only search --only history

MLflow runs from its own virtualenv (``benchmarks/.mlflow-venv``, created and filled with
the pinned MLflow on first use), on its local SQLite store.  Cairn runs under this
interpreter on its local store.  Every repetition of every workload is a fresh
subprocess in a fresh temporary directory; the figure reported is the median.
Results go to ``benchmarks/results/`` as JSON.  See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import RESULT_PREFIX  # benchmarks/ is sys.path[0] when this runs as a script

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
MLFLOW_VENV = BENCH / ".mlflow-venv"
# 3.18.0 is on PyPI but its own dependency mlflow-skinny==3.18.0 is not, so it cannot be
# installed; 3.17.2 is the newest installable 3.x and the version DESIGN.md's anchors used.
MLFLOW_VERSION = "3.17.2"
SIDES = ("mlflow", "cairn")
CHILD_TIMEOUT_S = 1800


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    unit: str  # of the figure: a rate ("calls/s") or "s" for a latency
    what: str  # what the size parameter counts, for the notes under the table
    target: float  # Cairn must be at least this many times better
    full: dict[str, dict[str, int]]  # side -> keyword arguments of the side's function
    quick: dict[str, dict[str, int]]
    setup: bool = False  # build data once per side (untimed), then time repetitions on it

    @property
    def is_rate(self) -> bool:
        return self.unit != "s"

    def params(self, side: str, quick: bool) -> dict[str, int]:
        return (self.quick if quick else self.full)[side]


WORKLOADS = [
    Workload("import", "import time", "s", "imports", 8,
             {"mlflow": {}, "cairn": {}}, {"mlflow": {}, "cairn": {}}),
    Workload("log_metric", "log_metric per call, made durable", "calls/s", "calls", 1000,
             {"mlflow": {"n": 300}, "cairn": {"n": 200_000}},
             {"mlflow": {"n": 50}, "cairn": {"n": 20_000}}),
    Workload("log_batch", "log_batch, 1,000 points a batch", "points/s", "points", 100,
             {"mlflow": {"n": 20_000}, "cairn": {"n": 200_000}},
             {"mlflow": {"n": 2_000}, "cairn": {"n": 20_000}}),
    Workload("history", "read a metric history", "points/s", "points", 100,
             {"mlflow": {"n": 100_000}, "cairn": {"n": 1_000_000}},
             {"mlflow": {"n": 10_000}, "cairn": {"n": 100_000}}, setup=True),
    Workload("create_runs", "create runs (20 params, 10 metrics, 5 tags)", "runs/s", "runs", 20,
             {"mlflow": {"n": 50}, "cairn": {"n": 300}},
             {"mlflow": {"n": 10}, "cairn": {"n": 50}}),
    Workload("search", "3-clause filtered, ordered search", "s", "runs searched", 5,
             {"mlflow": {"n_runs": 500, "searches": 10}, "cairn": {"n_runs": 2000, "searches": 10}},
             {"mlflow": {"n_runs": 100, "searches": 3}, "cairn": {"n_runs": 200, "searches": 3}},
             setup=True),
]
BY_NAME = {w.name: w for w in WORKLOADS}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# Settings given to one side's subprocesses on top of child_env(); --cairn-fsync adds CAIRN_FSYNC.
SIDE_ENV: dict[str, dict[str, str]] = {"mlflow": {}, "cairn": {}}


def child_env(side: str | None = None) -> dict[str, str]:
    """The environment of every subprocess: no inherited MLflow/Cairn settings, no PYTHONPATH."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MLFLOW_", "CAIRN_")) and k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    env["MLFLOW_ENABLE_ASYNC_LOGGING"] = "false"  # MLflow's default, stated: synchronous logging
    env["GIT_PYTHON_REFRESH"] = "quiet"
    env.update(SIDE_ENV.get(side, {}))
    return env


def ensure_mlflow_python(explicit: str | None) -> str:
    """The MLflow interpreter: --mlflow-python, or the pinned virtualenv (made on first use)."""
    if explicit:
        return explicit
    python = MLFLOW_VENV / "bin" / "python"
    if not python.exists():
        log(f"creating {MLFLOW_VENV.relative_to(ROOT)} ...")
        subprocess.run([sys.executable, "-m", "venv", str(MLFLOW_VENV)], check=True)
    if installed_version(str(python), "mlflow") != MLFLOW_VERSION:
        log(f"installing mlflow=={MLFLOW_VERSION} into {MLFLOW_VENV.relative_to(ROOT)} (a few minutes) ...")
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"mlflow=={MLFLOW_VERSION}"],
                       check=True)
    return str(python)


def installed_version(python: str, dist: str) -> str | None:
    code = f"import importlib.metadata as m; print(m.version({dist!r}))"
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, env=child_env())
    return out.stdout.strip() if out.returncode == 0 else None


class SideFailed(Exception):
    pass


def wall_time(python: str, code: str, cwd: str) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([python, "-c", code], cwd=cwd, env=child_env(),
                          capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SideFailed(f"`python -c {code!r}` failed:\n{tail(proc.stderr)}")
    return seconds


def call_side(python: str, side: str, workload: str, phase: str, workdir: Path,
              params: dict[str, int]) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [python, str(BENCH / f"side_{side}.py"), workload, phase, str(workdir), json.dumps(params)]
    proc = subprocess.run(argv, cwd=workdir, env=child_env(side), capture_output=True, text=True,
                          timeout=CHILD_TIMEOUT_S)
    results = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not results:
        raise SideFailed(f"{side} {workload} {phase} exited {proc.returncode}:\n"
                         f"{tail(proc.stderr or proc.stdout)}")
    return json.loads(results[-1][len(RESULT_PREFIX):])


def tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def prepare(w: Workload, side: str, python: str, params: dict[str, int], tmp: Path) -> None:
    """Untimed, once per side: the data a workload reads, or a warm-up import."""
    tmp.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if w.name == "import":
        wall_time(python, f"import {side}", str(tmp))  # .pyc files and the OS page cache
    elif w.setup:
        call_side(python, side, w.name, "setup", tmp / "data", params)
        log(f"  {side}: setup {time.perf_counter() - t0:.1f} s")


def sample(w: Workload, side: str, python: str, params: dict[str, int], tmp: Path, rep: int) -> float:
    """One timed repetition in fresh processes: a rate, or a latency in seconds."""
    if w.name == "import":  # wall time of `python -c "import M"` minus that of `python -c pass`
        bare = wall_time(python, "pass", str(tmp))
        return wall_time(python, f"import {side}", str(tmp)) - bare
    workdir = tmp / ("data" if w.setup else f"rep{rep}")
    res = call_side(python, side, w.name, "measure", workdir, params)
    if not w.setup:
        shutil.rmtree(workdir)
    return res["count"] / res["seconds"] if w.is_rate else res["seconds"]


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"
    return f"{value:,.0f} {unit}" if value >= 100 else f"{value:.3g} {unit}"


def size_text(w: Workload, params: dict[str, int]) -> str:
    if w.name == "import":
        return "whole package"
    if w.name == "search":
        return f"median of {params['searches']} searches over {params['n_runs']:,} runs"
    return f"{params['n']:,} {w.what}"


def run_workload(w: Workload, pythons: dict[str, str], sides: tuple[str, ...], reps: int,
                 quick: bool) -> dict[str, Any]:
    """Both sides, their repetitions interleaved so that load on the machine hits both alike."""
    log(f"[{w.name}] {w.title}")
    entry: dict[str, Any] = {"name": w.name, "title": w.title, "unit": w.unit,
                             "better": "higher" if w.is_rate else "lower", "target": w.target}
    outs = {side: {"params": (p := w.params(side, quick)), "size": size_text(w, p), "samples": []}
            for side in sides}
    entry.update(outs)

    def attempt(side: str, fn, *args) -> float | None:
        try:
            return fn(w, side, pythons[side], outs[side]["params"], Path(tmp, side), *args)
        except (SideFailed, subprocess.TimeoutExpired) as exc:
            outs[side]["error"] = str(exc)
            log(f"  {side}: ERROR\n" + "\n".join("    " + line for line in str(exc).splitlines()))
            return None

    with tempfile.TemporaryDirectory(prefix=f"bench-{w.name}-") as tmp:
        for side in sides:
            attempt(side, prepare)
        for rep in range(reps):
            for side in sides:
                if "error" not in outs[side]:
                    value = attempt(side, sample, rep)
                    if value is not None:
                        outs[side]["samples"].append(value)
                        log(f"  {side}: repetition {rep + 1}/{reps}: {fmt(value, w.unit)}")
    for out in outs.values():
        if "error" not in out:
            out["median"] = statistics.median(out["samples"])
    m, c = (outs.get(s, {}).get("median") for s in SIDES)
    if m is not None and c is not None:
        if w.is_rate:
            entry["ratio"] = c / m
        else:  # a latency: clamp at 1 ms so timer noise around zero cannot divide by zero
            entry["ratio"] = m / max(c, 1e-3)
        entry["passed"] = entry["ratio"] >= w.target
    return entry


def print_table(entries: list[dict[str, Any]], versions: dict[str, str | None], reps: int) -> None:
    head = ["workload", f"MLflow {versions['mlflow'] or ''}".strip(),
            f"Cairn {versions['cairn'] or ''}".strip(), "ratio", "target", "result"]
    rows = []
    for e in entries:
        cells = [e["name"]]
        for side in SIDES:
            s = e.get(side)
            cells.append("skipped" if s is None else "ERROR" if "error" in s else fmt(s["median"], e["unit"]))
        ratio = e.get("ratio")
        cells.append("-" if ratio is None else f"{ratio:,.1f}x")
        cells.append(f">= {e['target']:,g}x")
        errored = any("error" in e.get(s, {}) for s in SIDES)
        cells.append("ERROR" if errored else "-" if ratio is None else "PASS" if e["passed"] else "FAIL")
        rows.append(cells)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    print()
    print(line(head))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(line(r))
    print(f"\nMedians of {reps} repetition(s), each a fresh process; ratio = how many times better Cairn is.")
    for e in entries:
        sizes = "; ".join(f"{side}: {e[side]['size']}" for side in SIDES if side in e)
        print(f"  {e['name']:<12} {sizes}")


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo").splitlines()
                if line.startswith("model name")), platform.processor())
    commit = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                            capture_output=True, text=True).stdout.strip() or None
    return {"platform": platform.platform(), "cpu": cpu, "cpus": os.cpu_count(),
            "python": platform.python_version(), "commit": commit}


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="workloads: " + ", ".join(BY_NAME))
    p.add_argument("--quick", action="store_true", help="small sizes and one repetition: a smoke run")
    p.add_argument("--only", action="append", metavar="NAME",
                   help="run only this workload (repeatable, or comma-separated)")
    p.add_argument("--side", choices=("both", *SIDES), default="both", help="run one side only")
    p.add_argument("--reps", type=int, help="repetitions per workload (default 5, 1 with --quick)")
    p.add_argument("--mlflow-python", help="use this interpreter (with mlflow installed) for MLflow")
    p.add_argument("--check", action="store_true", help="exit 1 when a workload misses its target")
    p.add_argument("--cairn-fsync", action="store_true",
                   help="run Cairn with CAIRN_FSYNC=1 (fsync every journal append, as MLflow's "
                        "SQLite commits do) instead of its default")
    args = p.parse_args(argv)
    names = [n for chunk in args.only or [] for n in chunk.split(",") if n]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        p.error(f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(BY_NAME)}")
    args.workloads = [BY_NAME[n] for n in names] if names else WORKLOADS
    args.reps = args.reps or (1 if args.quick else 5)
    if args.reps < 1:
        p.error("--reps must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sides = SIDES if args.side == "both" else (args.side,)
    if args.cairn_fsync:
        SIDE_ENV["cairn"]["CAIRN_FSYNC"] = "1"
    pythons = {"cairn": sys.executable}
    if "mlflow" in sides:
        pythons["mlflow"] = ensure_mlflow_python(args.mlflow_python)
    versions = {"mlflow": installed_version(pythons["mlflow"], "mlflow") if "mlflow" in sides else None,
                "cairn": installed_version(pythons["cairn"], "cairn") if "cairn" in sides else None}
    started = dt.datetime.now(dt.timezone.utc)
    load = [os.getloadavg()[0]]
    entries = [run_workload(w, pythons, sides, args.reps, args.quick) for w in args.workloads]
    load.append(os.getloadavg()[0])
    report = {"started": started.isoformat(timespec="seconds"),
              "seconds": round((dt.datetime.now(dt.timezone.utc) - started).total_seconds(), 1),
              "quick": args.quick, "reps": args.reps, "cairn_fsync": args.cairn_fsync,
              "versions": versions,
              "machine": machine(), "load_average": load, "workloads": entries}
    print_table(entries, versions, args.reps)
    if args.cairn_fsync:
        print("Cairn ran with CAIRN_FSYNC=1: every journal append fsynced.")
    if max(load) > (os.cpu_count() or 1):
        print(f"\nwarning: load average {load[0]:.1f} at the start, {load[1]:.1f} at the end, on "
              f"{os.cpu_count()} CPUs: other work shared the machine, so the figures are noisy.")
    RESULTS.mkdir(exist_ok=True)
    suffix = ("-quick" if args.quick else "") + ("-fsync" if args.cairn_fsync else "")
    path = RESULTS / f"bench-{started:%Y%m%dT%H%M%SZ}{suffix}.json"
    text = json.dumps(report, indent=2) + "\n"
    path.write_text(text)
    (RESULTS / "latest.json").write_text(text)
    print(f"\nresults: {path.relative_to(ROOT)}")
    if any("error" in e.get(s, {}) for e in entries for s in SIDES):
        return 2
    return 1 if args.check and not all(e.get("passed", True) for e in entries) else 0


if __name__ == "__main__":
    sys.exit(main())
