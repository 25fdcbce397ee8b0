"""Garbage collection of a store of N objects, 10% of them garbage: ``cairn gc`` against
``dvc gc -w -f`` on a DVC cache holding the same files, in one run::

    .venv/bin/python benchmarks/lifecycle_bench.py                    # 1,000,000 objects
    .venv/bin/python benchmarks/lifecycle_bench.py --objects 100000   # smaller
    .venv/bin/python benchmarks/lifecycle_bench.py --side cairn --json out.json

How the stores are built (fast, by writing files directly, not through either tool):

- the objects: N small files (about 100 bytes each, all different); 90% are live, 10% are
  garbage.  Cairn keeps each as ``objects/ab/cdef…`` (its oid is the SHA-256, the file is
  the one-byte tag ``r`` and the content, as ``docs/objects.md`` describes), DVC as
  ``.dvc/cache/files/md5/ab/cdef…`` (the MD5, the content as it is).
- what refers to the live ones: for Cairn, rows of the index's ``artifacts`` table, 1,000 per
  run, for runs made through the API (``Client.create_run``); for DVC, one tracked directory
  (``data.dvc``) whose ``.dir`` manifest in the cache lists them.

Then each side runs its garbage collection once as a command (``cairn --store S gc --grace 0
--no-retention --no-purge --json``; ``dvc gc -w -f``), timed from start to exit, and the
result is checked (both deleted exactly the garbage).  With ``--reps R`` the stores are built
again for each repetition and the figures are medians.  DVC runs from its own virtualenv,
benchmarks/.dvc-venv (made and filled with DVC 3.x on first use, or ``--dvc-python``).

It also measures what freshening costs a writer (``--puts FILES``, 0 to skip):
``log_artifacts`` of that many small files, new and already stored, with today's put (a
put that finds its object freshens it) and with the put before garbage collection existed.

Unless ``--no-crypto``, the encryption throughput of benchmarks/crypto_bench.py (``run``,
quick mode) is printed too.  Exit status 0; 1 with ``--check`` when Cairn is not at least 3x
faster than DVC.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from pipeline_bench import ensure_dvc_python, env, log, precompile  # noqa: E402

CAIRN = str(Path(sys.executable).parent / "cairn")
PER_RUN = 1000
_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL


def content(i: int) -> bytes:
    return f"cairn lifecycle benchmark object {i:010d}\n".encode() * 2


def is_garbage(i: int, frac: float) -> bool:
    return (i * 7919) % 1000 < frac * 1000  # spread over the shards, not the last tenth


# Written a day ago as far as either tool can tell: cairn gc keeps what the last 30 seconds
# wrote whatever its grace (a writer's record may still be on its way), dvc gc has no grace.
_OLD_NS = (time.time_ns() - 86_400 * 10**9,) * 2


def write_file(path: str, data: bytes, mode: int = 0o444) -> None:
    fd = os.open(path, _FLAGS, mode)
    try:
        os.write(fd, data)
        os.utime(fd, ns=_OLD_NS)
    finally:
        os.close(fd)


def shards(root: Path) -> None:
    for i in range(256):
        (root / f"{i:02x}").mkdir(parents=True, exist_ok=True)


# -- Cairn -------------------------------------------------------------------------------

def build_cairn(base: Path, n: int, frac: float) -> dict[str, Any]:
    os.environ["CAIRN_CAPTURE_ENV"] = "0"
    import cairn

    t0 = time.perf_counter()
    store_dir = base / "cairn"
    client = cairn.Client(str(store_dir))
    objects = store_dir / "objects"
    shards(objects)
    live = [i for i in range(n) if not is_garbage(i, frac)]
    runs = []
    for _ in range((len(live) + PER_RUN - 1) // PER_RUN):
        run = client.create_run(name="bench")
        client.set_terminated(run.id)
        runs.append(run.id)
    client.store.close()
    rows = []
    for i in range(n):
        data = content(i)
        oid = hashlib.sha256(data).hexdigest()
        write_file(f"{objects}/{oid[:2]}/{oid[2:]}", b"r" + data)
        if not is_garbage(i, frac):
            rows.append((runs[len(rows) // PER_RUN], f"part-{i:010d}.txt", len(data), oid))
    db = sqlite3.connect(store_dir / "index.db")
    with db:
        db.executemany("INSERT INTO artifacts (run_id, path, size, digest, chunks) "
                       "VALUES (?, ?, ?, ?, NULL)", rows)
    db.close()
    return {"live": len(rows), "garbage": n - len(rows), "runs": len(runs),
            "build_s": time.perf_counter() - t0}


def gc_cairn(base: Path) -> tuple[float, dict[str, Any]]:
    store_dir = base / "cairn"
    cmd = [CAIRN, "--store", str(store_dir), "gc", "--grace", "0", "--no-retention",
           "--no-purge", "--json"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env(), capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"cairn gc failed:\n{proc.stderr[-3000:]}")
    return seconds, json.loads(proc.stdout)


def count_objects(root: Path) -> int:
    return sum(1 for s in os.scandir(root) if len(s.name) == 2 and s.is_dir()
               for e in os.scandir(s.path) if not e.name.startswith("."))


# -- DVC ---------------------------------------------------------------------------------

def build_dvc(base: Path, n: int, frac: float, dvc: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    repo = base / "dvc"
    repo.mkdir()
    dvc_bin = str(Path(dvc).parent / "dvc")
    subprocess.run([dvc_bin, "init", "-q", "--no-scm"], cwd=repo, env=env(), check=True)
    cache = repo / ".dvc" / "cache" / "files" / "md5"
    shards(cache)
    entries = []
    for i in range(n):
        data = content(i)
        md5 = hashlib.md5(data).hexdigest()
        write_file(f"{cache}/{md5[:2]}/{md5[2:]}", data)
        if not is_garbage(i, frac):
            entries.append({"md5": md5, "relpath": f"part-{i:010d}.txt"})
    entries.sort(key=lambda e: e["relpath"])
    manifest = json.dumps(entries, sort_keys=True).encode()
    dir_md5 = hashlib.md5(manifest).hexdigest()
    write_file(f"{cache}/{dir_md5[:2]}/{dir_md5[2:]}.dir", manifest)
    size = sum(len(content(i)) for i in range(n) if not is_garbage(i, frac))
    (repo / "data.dvc").write_text(
        f"outs:\n- md5: {dir_md5}.dir\n  size: {size}\n  nfiles: {len(entries)}\n"
        f"  hash: md5\n  path: data\n")
    return {"live": len(entries), "garbage": n - len(entries),
            "build_s": time.perf_counter() - t0}


def gc_dvc(base: Path, dvc: str) -> float:
    repo = base / "dvc"
    cmd = [str(Path(dvc).parent / "dvc"), "gc", "-w", "-f"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=repo, env=env(), capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"dvc gc failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return seconds


# -- what freshening costs a writer -------------------------------------------------------

def put_overhead(files: int, reps: int, tmp: Path) -> dict[str, Any]:
    """``log_artifacts`` of ``files`` small files, new content and content already stored
    (every put then finds its object and freshens it), with this version's put and with the
    put before garbage collection existed (exists, then put); medians of ``reps``."""
    os.environ["CAIRN_CAPTURE_ENV"] = "0"
    import cairn
    from cairn.cas import codec
    from cairn.cas.odb import ObjectStore

    def old_store(self: Any, oid: str, data: bytes) -> None:
        if not self.backend.exists(oid):
            self.backend.put(oid, codec.encode(data))

    new_store = ObjectStore._store
    impls = {"before gc": old_store, "with freshen": new_store}
    times: dict[str, dict[str, list[float]]] = {k: {"new": [], "dedup": []} for k in impls}
    # Interleaved, so the disk's moods (other processes' writes) fall on both alike.
    for rep in range(reps):
        for label, impl in impls.items():
            ObjectStore._store = impl  # type: ignore[method-assign]
            base = Path(tempfile.mkdtemp(prefix="lifecycle-put-", dir=tmp))
            try:
                src = base / "src"
                src.mkdir()
                for i in range(files):
                    (src / f"f{i}.txt").write_bytes(f"{label} {rep} file {i}\n".encode() * 8)
                client = cairn.Client(str(base / "store"))
                for case in ("new", "dedup"):
                    run = client.create_run(name="put")
                    t0 = time.perf_counter()
                    client.log_artifacts(run.id, src)
                    times[label][case].append(time.perf_counter() - t0)
                    client.set_terminated(run.id)
                client.store.close()
            finally:
                shutil.rmtree(base, ignore_errors=True)
    out = {label: {case: statistics.median(v) for case, v in cases.items()}
           for label, cases in times.items()}
    ObjectStore._store = new_store  # type: ignore[method-assign]
    return out


# -- the run -----------------------------------------------------------------------------

def once(side: str, n: int, frac: float, dvc: str | None, tmp: Path) -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix=f"lifecycle-{side}-", dir=tmp))
    try:
        if side == "cairn":
            built = build_cairn(base, n, frac)
            log(f"cairn: built {n:,} objects in {built['build_s']:.1f} s; collecting ...")
            seconds, report = gc_cairn(base)
            left = count_objects(base / "cairn" / "objects")
            ok = report["freed"] == built["garbage"] and left == built["live"]
            return {"seconds": seconds, "freed": report["freed"], "left": left, "ok": ok,
                    **built}
        assert dvc is not None
        built = build_dvc(base, n, frac, dvc)
        log(f"dvc: built {n:,} objects in {built['build_s']:.1f} s; collecting ...")
        seconds = gc_dvc(base, dvc)
        left = count_objects(base / "dvc" / ".dvc" / "cache" / "files" / "md5") - 1  # the .dir
        return {"seconds": seconds, "freed": n - left, "left": left,
                "ok": left == built["live"], **built}
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--objects", type=int, default=1_000_000, help="objects in each store")
    ap.add_argument("--garbage", type=float, default=0.10, help="share that is garbage")
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--side", choices=["both", "cairn", "dvc", "none"], default="both",
                    help="none: only the put overhead and encryption figures")
    ap.add_argument("--dvc-python", default=None)
    ap.add_argument("--tmp", default=None, help="where to build the stores (default TMPDIR)")
    ap.add_argument("--no-crypto", action="store_true", help="skip encryption throughput")
    ap.add_argument("--puts", type=int, default=2000, metavar="FILES",
                    help="files per log_artifacts in the put-overhead measurement (0: skip)")
    ap.add_argument("--json", default=None, help="write the results to this file")
    ap.add_argument("--check", action="store_true", help="exit 1 unless cairn >= 3x faster")
    args = ap.parse_args()
    if args.objects < 10 or not 0 < args.garbage < 1:
        ap.error("--objects must be >= 10 and --garbage between 0 and 1")
    precompile()
    dvc = ensure_dvc_python(args.dvc_python) if args.side in ("both", "dvc") else None
    sides = {"both": ["cairn", "dvc"], "none": []}.get(args.side, [args.side])
    tmp = Path(args.tmp or tempfile.gettempdir())
    runs: dict[str, list[dict[str, Any]]] = {s: [] for s in sides}
    for _ in range(args.reps):
        for side in sides:
            r = once(side, args.objects, args.garbage, dvc, tmp)
            if not r["ok"]:
                raise SystemExit(f"{side} gc left {r['left']} objects, expected {r['live']}")
            runs[side].append(r)
    med = {s: statistics.median(r["seconds"] for r in rs) for s, rs in runs.items()}
    n = args.objects
    if sides:
        print(f"GC of {n:,} objects ({args.garbage:.0%} garbage), local disk, "
              f"median of {args.reps}:")
        print(f"{'':10}{'seconds':>10}{'objects/s':>12}{'freed':>10}")
    for s in sides:
        print(f"{s:10}{med[s]:>10.2f}{n / med[s]:>12,.0f}{runs[s][-1]['freed']:>10,}")
    result: dict[str, Any] = {"objects": n, "garbage": args.garbage, "reps": args.reps,
                              "seconds": med, "runs": runs}
    ratio = None
    if "cairn" in med and "dvc" in med:
        ratio = med["dvc"] / med["cairn"]
        result["ratio"] = ratio
        print(f"cairn gc {ratio:.1f}x faster than dvc gc -w -f (target >= 3x)")
    if args.puts:
        puts = put_overhead(args.puts, 9, tmp)
        result["puts"] = puts
        print(f"log_artifacts of {args.puts:,} small files (median of 9, interleaved):")
        for label, r in puts.items():
            print(f"  {label:>13}: new content {r['new']:.3f} s, content already stored "
                  f"{r['dedup']:.3f} s")
        for k in ("new", "dedup"):
            change = puts["with freshen"][k] / puts["before gc"][k] - 1
            print(f"  freshening changes the {k} case by {change:+.1%}")
    if not args.no_crypto and (HERE / "crypto_bench.py").exists():
        import crypto_bench

        crypto = crypto_bench.run(quick=True)
        result["crypto"] = crypto
        print("encryption (benchmarks/crypto_bench.py, quick):")
        for label, r in crypto.get("aead", {}).items():
            print(f"  {label:>8}: {json.dumps(r)}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    if args.check and ratio is not None and ratio < 3:
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
