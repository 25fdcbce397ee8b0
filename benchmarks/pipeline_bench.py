#!/usr/bin/env python3
"""A 100-stage pipeline run by ``dvc repro`` and by ``cairn pipeline run``, in one run
(issue #20): a no-op re-run >= 10x faster than DVC's; one changed dependency re-runs only
its downstream stages; per-stage overhead of a first run < 50 ms over the bare commands.

    .venv/bin/python benchmarks/pipeline_bench.py                     # 100 stages, 3 repetitions
    .venv/bin/python benchmarks/pipeline_bench.py --stages 20 --reps 1  # a smoke run
    .venv/bin/python benchmarks/pipeline_bench.py --side cairn --json out.json

The pipeline is written once as ``dvc.yaml``: half the stages are a chain (each reads the
previous one's output), half a fan-out (each reads one shared source file); every command is
a tiny shell line (``{ cat IN; echo i; } > OUT``).  Per repetition, in a fresh git
repository for each side (``dvc init`` for DVC; for Cairn a store in a temporary directory):

    bare       every stage's command through ``sh -c``, one after another, in order
    first      the first run of the whole pipeline (both sides one stage at a time)
    noop       a re-run with nothing changed
    changed    the chain's source file edited, then a re-run: the chain's stages must run
               and none of the fan-out's

Each side is timed as the wall time of its command-line process.  DVC runs from its own
virtualenv, benchmarks/.dvc-venv (made and filled with DVC 3.x on first use, or
``--dvc-python``).  Figures are medians over ``--reps``.  Exit status: 0; 1 with ``--check``
when a target is missed; 2 when a side failed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DVC_VENV = HERE / ".dvc-venv"
DVC_SPEC = "dvc>=3,<4"
CAIRN = str(Path(sys.executable).parent / "cairn")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def ensure_dvc_python(explicit: str | None) -> str:
    if explicit:
        return explicit
    python = DVC_VENV / "bin" / "python"
    if not python.exists():
        log(f"creating {DVC_VENV.relative_to(ROOT)} ...")
        subprocess.run([sys.executable, "-m", "venv", str(DVC_VENV)], check=True)
    if subprocess.run([str(python), "-c", "import dvc"], capture_output=True).returncode:
        log(f"installing {DVC_SPEC} into {DVC_VENV.relative_to(ROOT)} (a few minutes) ...")
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", DVC_SPEC], check=True)
    return str(python)


def stages(n: int) -> list[dict[str, Any]]:
    """Half a chain, half a fan-out; each stage: name, cmd, deps, outs."""
    chain = n // 2
    out = []
    for i in range(chain):
        src = "data/chain_src.txt" if i == 0 else f"chain/c{i - 1}.txt"
        out.append({"name": f"chain{i}", "cmd": f"{{ cat {src}; echo {i}; }} > chain/c{i}.txt",
                    "deps": [src], "outs": [f"chain/c{i}.txt"]})
    for i in range(n - chain):
        out.append({"name": f"fan{i}", "cmd": f"{{ cat data/fan_src.txt; echo {i}; }} > fan/f{i}.txt",
                    "deps": ["data/fan_src.txt"], "outs": [f"fan/f{i}.txt"]})
    return out


def dvc_yaml(st: list[dict[str, Any]]) -> str:
    lines = ["stages:"]
    for s in st:
        lines += [f"  {s['name']}:", f"    cmd: {json.dumps(s['cmd'])}",
                  "    deps:", *[f"      - {d}" for d in s["deps"]],
                  "    outs:", *[f"      - {o}" for o in s["outs"]]]
    return "\n".join(lines) + "\n"


def make_project(base: Path, st: list[dict[str, Any]]) -> Path:
    proj = base / "proj"
    for d in ("data", "chain", "fan"):
        (proj / d).mkdir(parents=True)
    (proj / "data/chain_src.txt").write_text("chain source\n")
    (proj / "data/fan_src.txt").write_text("fan source\n")
    (proj / "dvc.yaml").write_text(dvc_yaml(st))
    (proj / ".gitignore").write_text("/chain\n/fan\ncairn.lock\n")
    for args in (["init", "-q"], ["config", "user.email", "b@example.com"],
                 ["config", "user.name", "bench"]):
        subprocess.run(["git", *args], cwd=proj, check=True)
    return proj


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["DVC_NO_ANALYTICS"] = "1"
    e.pop("CAIRN_TRACKING_URI", None)
    # Both sides start from compiled bytecode, as installed tools do (pip compiles DVC's at
    # install; Cairn's editable sources are compiled by precompile()): with this variable
    # set, as on some CI machines, Cairn would compile its modules on every start.
    e.pop("PYTHONDONTWRITEBYTECODE", None)
    return e


def precompile() -> None:
    """Bytecode for Cairn's modules, which an editable install does not compile."""
    import compileall

    import cairn

    compileall.compile_dir(str(Path(cairn.__file__).parent), quiet=1)


def timed(cmd: list[str], cwd: Path) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}"
                           f"\n{proc.stderr[-2000:]}")
    return seconds, proc.stdout + proc.stderr


def bare(st: list[dict[str, Any]], base: Path) -> float:
    proj = make_project(base, st)
    t0 = time.perf_counter()
    for s in st:
        subprocess.run(["sh", "-c", s["cmd"]], cwd=proj, check=True)
    return time.perf_counter() - t0


def side_once(side: str, st: list[dict[str, Any]], base: Path, dvc: str | None) -> dict[str, Any]:
    proj = make_project(base, st)
    if side == "dvc":
        dvc_bin = str(Path(dvc).parent / "dvc")  # type: ignore[arg-type]
        subprocess.run([dvc_bin, "init", "-q"], cwd=proj, env=env(), check=True)
        subprocess.run(["git", "add", "-A"], cwd=proj, check=True)
        subprocess.run(["git", "commit", "-qm", "init"], cwd=proj, check=True)
        cmd = [dvc_bin, "repro"]
    else:
        subprocess.run(["git", "add", "-A"], cwd=proj, check=True)
        subprocess.run(["git", "commit", "-qm", "init"], cwd=proj, check=True)
        cmd = [CAIRN, "--store", str(base / "store"), "pipeline", "run", "-f", "dvc.yaml",
               "--json"]
    out: dict[str, Any] = {}
    out["first"], _ = timed(cmd, proj)
    time.sleep(0.2)  # past the racy-timestamp window of both tools' stat caches
    out["noop"], _ = timed(cmd, proj)
    out["noop2"], _ = timed(cmd, proj)
    (proj / "data/chain_src.txt").write_text("chain source, edited\n")
    out["changed"], text = timed(cmd, proj)
    if side == "dvc":
        out["changed_ran"] = text.count("Running stage")
    else:
        doc = json.loads(text[:text.rindex("}") + 1])
        out["changed_ran"] = sum(s["status"] == "ran" for s in doc["stages"])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stages", type=int, default=100)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--side", choices=["both", "cairn", "dvc"], default="both")
    ap.add_argument("--dvc-python", default=None)
    ap.add_argument("--json", default=None, help="Write the figures to this file.")
    ap.add_argument("--check", action="store_true", help="Exit 1 when a target is missed.")
    args = ap.parse_args()
    st = stages(args.stages)
    precompile()
    dvc = ensure_dvc_python(args.dvc_python) if args.side in ("both", "dvc") else None
    sides = ["cairn", "dvc"] if args.side == "both" else [args.side]
    runs: dict[str, list[dict[str, Any]]] = {s: [] for s in sides}
    bares: list[float] = []
    try:
        for rep in range(args.reps):
            with tempfile.TemporaryDirectory(prefix="cairn-pbench-") as tmp:
                bares.append(bare(st, Path(tmp)))
            for side in sides:
                with tempfile.TemporaryDirectory(prefix=f"cairn-pbench-{side}-") as tmp:
                    runs[side].append(side_once(side, st, Path(tmp), dvc))
            log(f"rep {rep + 1}/{args.reps}: bare {bares[-1]:.2f}s; " + "; ".join(
                f"{s} first {runs[s][-1]['first']:.2f}s noop {runs[s][-1]['noop2']:.3f}s"
                for s in sides))
    except RuntimeError as exc:
        log(str(exc))
        return 2
    med = {s: {k: statistics.median(r[k] for r in runs[s])
               for k in ("first", "noop", "noop2", "changed", "changed_ran")} for s in sides}
    b = statistics.median(bares)
    n = args.stages
    chain = n // 2
    result: dict[str, Any] = {"stages": n, "reps": args.reps, "bare_s": b, "median": med}
    print(f"{n} stages ({chain} chained, {n - chain} fan-out), median of {args.reps}")
    print(f"{'':24}{'cairn':>10}{'dvc':>10}{'dvc/cairn':>11}")
    rows = [("first run (s)", "first"), ("no-op re-run (s)", "noop"),
            ("no-op again (s)", "noop2"), ("one dep changed (s)", "changed"),
            ("  stages that ran", "changed_ran")]
    for label, k in rows:
        c = med.get("cairn", {}).get(k)
        d = med.get("dvc", {}).get(k)
        ratio = f"{d / c:.1f}x" if c and d and k != "changed_ran" else ""
        print(f"{label:24}{c if c is not None else '-':>10.4}{d if d is not None else '-':>10.4}"
              f"{ratio:>11}" if isinstance(c, float) and isinstance(d, float) else
              f"{label:24}{str(c if c is not None else '-'):>10}{str(d if d is not None else '-'):>10}"
              f"{ratio:>11}")
    print(f"bare commands: {b:.3f}s ({b / n * 1000:.1f} ms a stage)")
    misses = []
    if "cairn" in med:
        overhead = (med["cairn"]["first"] - b) / n * 1000
        result["cairn_overhead_ms_per_stage"] = overhead
        print(f"cairn per-stage overhead on a first run: {overhead:.1f} ms (target < 50)")
        if overhead >= 50:
            misses.append("per-stage overhead")
        if med["cairn"]["changed_ran"] != chain:
            misses.append("changed dependency: cairn ran the wrong stages")
    if "dvc" in med:
        overhead = (med["dvc"]["first"] - b) / n * 1000
        result["dvc_overhead_ms_per_stage"] = overhead
        print(f"dvc per-stage overhead on a first run: {overhead:.1f} ms")
    if "cairn" in med and "dvc" in med:
        ratio = med["dvc"]["noop"] / med["cairn"]["noop"]
        result["noop_ratio"] = ratio
        print(f"no-op re-run: cairn {ratio:.1f}x faster than dvc (target >= 10x)")
        if ratio < 10:
            misses.append("no-op ratio")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    if misses:
        print("missed: " + ", ".join(misses))
    return 1 if misses and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
