"""Overhead of autologging on a small real PyTorch training loop (a benchmark, not a test).

The same loop -- an MLP regression on CPU, ``--steps`` optimizer steps -- runs in three modes:

* ``plain``: PyTorch only, no cairn at all;
* ``off``:   inside ``cairn.start_run()`` with autolog and system metrics off (what a run
  costs by itself: creation, environment capture, ending);
* ``on``:    inside ``cairn.start_run(system_metrics=True)`` (the background sampler at its
  default 10 s interval) with ``cairn.autolog.pytorch.track(...)``: params, the learning rate
  (optimizer hook) and the loss (``t.log(loss=loss)`` called every step) every ``--every``
  steps (default 10, the tracker's default), an epoch metric, the model at the end.

The overhead of autolog + system metrics is ``on`` against ``off`` (the target: < 3 %);
``on`` against ``plain`` is printed too.  Each repetition is a fresh interpreter; the modes
alternate (plain, off, on, plain, ...) so a change of load on a shared machine falls on all.
The figure is the median over repetitions of the wall time from just before the run starts
to just after it ends (interpreter start, imports and store creation excluded).

    .venv/bin/python benchmarks/autolog_overhead.py                  # 10k steps, 7 repetitions
    .venv/bin/python benchmarks/autolog_overhead.py --steps 2000 --reps 3   # a quick look
    .venv/bin/python benchmarks/autolog_overhead.py --interleaved    # on a busy machine

``--interleaved`` runs one loop in one process inside one run with system metrics on,
alternating blocks of ``--block`` steps with the tracker attached and detached; the
background threads' CPU time (flusher, sampler, read per thread with psutil) is charged to the
tracked blocks.  It measures the per-step cost without run start and end, and is far less
sensitive to other processes on the machine than separate runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CHILD = r"""
import json, os, sys, tempfile, time
import torch

mode, steps, threads, every = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
torch.manual_seed(0)
X = torch.randn(4096, 32)
y = X @ torch.randn(32, 1) + 0.1 * torch.randn(4096, 1)
model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64),
                            torch.nn.ReLU(), torch.nn.Linear(64, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
sched = torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.8)
batch, per_epoch = 64, 4096 // 64


def loop(tracker=None):
    step = 0
    while step < steps:
        for i in range(0, 4096, batch):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(X[i:i + batch]), y[i:i + batch])
            loss.backward()
            opt.step()
            if tracker is not None:
                tracker.log(loss=loss)
            step += 1
            if step == steps:
                break
        sched.step()
        if tracker is not None:
            tracker.epoch(last_loss=loss)
    return float(loss)


if mode == "plain":
    t0 = time.perf_counter(); c0 = time.process_time()
    final = loop()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
else:
    import cairn
    from cairn.autolog import pytorch as cairn_torch

    cairn.set_tracking_uri(os.path.join(tempfile.mkdtemp(prefix="cairn-bench-"), "store"))
    cairn.Client().get_or_create_experiment("Default")  # store creation is not training time
    t0 = time.perf_counter(); c0 = time.process_time()
    if mode == "off":
        with cairn.start_run(system_metrics=False):
            final = loop()
    else:
        with cairn.start_run(system_metrics=True):
            with cairn_torch.track(model, opt, sched, data=X, targets=y,
                                   log_every_n_steps=every) as t:
                final = loop(t)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
print(json.dumps({"mode": mode, "wall_s": wall, "cpu_s": cpu, "final_loss": final}))
"""

# One process, one run with system metrics on, one model: blocks of steps alternate between
# tracked (the tracker's optimizer hooks attached, t.log called) and plain (hooks detached, no
# call), so load changes on a shared machine fall on both and nothing else differs (two
# "identical" models in one process differ by several % in speed).  Background threads
# (flusher, sampler) are charged to the tracked blocks from their own CPU times (psutil).
INTERLEAVED = r"""
import json, os, sys, tempfile, threading, time
import psutil, torch
import cairn
from cairn.autolog import pytorch as cairn_torch

steps, threads, block, every = (int(a) for a in sys.argv[1:5])
torch.set_num_threads(threads)
torch.manual_seed(0)
X = torch.randn(4096, 32)
y = X @ torch.randn(32, 1) + 0.1 * torch.randn(4096, 1)
model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64),
                            torch.nn.ReLU(), torch.nn.Linear(64, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
sched = torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.8)
state = {"i": 0}


def run_block(tracker):
    for _ in range(block):
        i = state["i"]
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(X[i:i + 64]), y[i:i + 64])
        loss.backward()
        opt.step()
        if tracker is not None:
            tracker.log(loss=loss)
        state["i"] = (i + 64) % 4096
        if state["i"] == 0:
            sched.step()
            if tracker is not None:
                tracker.epoch(last_loss=loss)


cairn.set_tracking_uri(os.path.join(tempfile.mkdtemp(prefix="cairn-bench-"), "store"))
wall = {"plain": 0.0, "on": 0.0}
main_cpu = {"plain": 0.0, "on": 0.0}
with cairn.start_run(system_metrics=True) as run:
    with cairn_torch.track(model, opt, sched, data=X, targets=y, log_every_n_steps=every) as t:
        hooks = (opt._optimizer_step_pre_hooks, opt._optimizer_step_post_hooks)
        attached = [dict(h) for h in hooks]
        run_block(t)  # warm-up
        for b in range(steps // block):
            for mode in (("plain", "on") if b % 2 == 0 else ("on", "plain")):
                for h, saved in zip(hooks, attached):
                    h.clear()
                    if mode == "on":
                        h.update(saved)
                w0, c0 = time.perf_counter(), time.thread_time()
                run_block(t if mode == "on" else None)
                wall[mode] += time.perf_counter() - w0
                main_cpu[mode] += time.thread_time() - c0
        background = {th.name: th.native_id for th in threading.enumerate()
                      if th.name in ("cairn-flusher", "cairn-sysmetrics")}
        times = {th.id: th.user_time + th.system_time for th in psutil.Process().threads()}
        bg_cpu = {name: times.get(nid, 0.0) for name, nid in background.items()}
print(json.dumps({"wall_s": wall, "main_cpu_s": main_cpu, "background_cpu_s": bg_cpu}))
"""


def interleaved(args: argparse.Namespace) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    results = []
    for rep in range(args.reps):
        out = subprocess.run([sys.executable, "-c", INTERLEAVED, str(args.steps), str(args.threads),
                              str(args.block), str(args.every)],
                             capture_output=True, text=True, env=env, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        bg = sum(r["background_cpu_s"].values())
        # the flusher and sampler work for the tracked blocks, whichever block is running
        r["overhead"] = (r["wall_s"]["on"] - r["wall_s"]["plain"] + bg) / r["wall_s"]["plain"]
        r["overhead_cpu"] = (r["main_cpu_s"]["on"] - r["main_cpu_s"]["plain"] + bg) / r["main_cpu_s"]["plain"]
        results.append(r)
        print(f"rep {rep + 1}/{args.reps}: plain {r['wall_s']['plain']:.3f} s, on {r['wall_s']['on']:.3f} s "
              f"wall; background threads {bg * 1000:.0f} ms cpu -> {r['overhead'] * 100:+.2f} % wall, "
              f"{r['overhead_cpu'] * 100:+.2f} % cpu", flush=True)
    med = statistics.median(r["overhead"] for r in results)
    med_cpu = statistics.median(r["overhead_cpu"] for r in results)
    print(f"\n{args.steps} steps per mode, blocks of {args.block}, logging every {args.every}, "
          f"median of {args.reps}: "
          f"autolog + system metrics {med * 100:+.2f} % wall, {med_cpu * 100:+.2f} % main-thread "
          f"cpu (background threads included in both); target < 3 %")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"mode": "interleaved", "steps": args.steps, "block": args.block,
                       "reps": args.reps, "median_overhead": med, "median_overhead_cpu": med_cpu,
                       "samples": results}, f, indent=2)
    return 0


def run_once(mode: str, steps: int, threads: int, every: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    env["CAIRN_CAPTURE_ENV"] = "1"
    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(steps), str(threads), str(every)],
                         capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    ap.add_argument("--every", type=int, default=10,
                    help="the tracker's log_every_n_steps (default 10, its default; 1: every step)")
    ap.add_argument("--json", help="also write the samples and figures to this file")
    ap.add_argument("--interleaved", action="store_true",
                    help="one process per repetition, plain and tracked blocks alternating "
                         "(robust to a machine whose load changes; excludes run start/end)")
    ap.add_argument("--block", type=int, default=250, help="steps per block with --interleaved")
    args = ap.parse_args()
    if args.interleaved:
        return interleaved(args)
    samples: dict[str, list[dict]] = {"plain": [], "off": [], "on": []}
    for rep in range(args.reps):
        for mode in samples:
            r = run_once(mode, args.steps, args.threads, args.every)
            samples[mode].append(r)
            print(f"rep {rep + 1}/{args.reps} {mode:>5}: {r['wall_s']:.3f} s wall, "
                  f"{r['cpu_s']:.3f} s cpu", flush=True)
    med = {m: statistics.median(s["wall_s"] for s in samples[m]) for m in samples}
    cpu = {m: statistics.median(s["cpu_s"] for s in samples[m]) for m in samples}
    overhead = med["on"] / med["off"] - 1
    cpu_overhead = cpu["on"] / cpu["off"] - 1
    print(f"\n{args.steps} steps, logging every {args.every}, median of {args.reps} "
          f"(wall / cpu seconds): "
          + ", ".join(f"{m} {med[m]:.3f} / {cpu[m]:.3f}" for m in samples))
    print(f"autolog + system metrics (on vs off): {overhead * 100:+.2f} % wall, "
          f"{cpu_overhead * 100:+.2f} % cpu, {(med['on'] - med['off']) / args.steps * 1e6:+.1f} us "
          f"per step; target < 3 %")
    print(f"on vs plain PyTorch: {(med['on'] / med['plain'] - 1) * 100:+.2f} % wall, "
          f"{(cpu['on'] / cpu['plain'] - 1) * 100:+.2f} % cpu")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"steps": args.steps, "reps": args.reps, "threads": args.threads, "every": args.every,
                       "median_wall_s": med, "median_cpu_s": cpu, "overhead": overhead,
                       "cpu_overhead": cpu_overhead, "samples": samples,
                       "python": sys.version.split()[0], "time": time.time()}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
