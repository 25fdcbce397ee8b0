"""Data versioning benchmarks: the speed targets of issue 4, and DVC side by side.

    .venv/bin/python benchmarks/data_bench.py                # everything (~10-20 min, ~8 GB disk)
    .venv/bin/python benchmarks/data_bench.py --quick        # small sizes: a smoke run (~1 min)
    .venv/bin/python benchmarks/data_bench.py --only small --only push
    .venv/bin/python benchmarks/data_bench.py --no-dvc       # skip the DVC comparison
    .venv/bin/python benchmarks/data_bench.py --only edit --repeat 3   # median of 3

Workloads (targets on the 2-core reference machine):

  small    add 100k files of 4 KB (< 30 s), re-add them unchanged (< 3 s), check out (info)
  hash     hash a 2 GB file (>= 500 MB/s) and add it (chunk + hash + compress + write, info)
  edit     a 1 GB file with 1% of its bytes changed in place adds < 3% new storage
  push     push 10k small files to a local S3-compatible server (moto, a subprocess)
           >= 10x faster than one request per file
  dvc      `dvc add` and `dvc push` of the same files, as ratios DVC time / Cairn time

DVC runs from its own virtual environment, ``benchmarks/.dvc-venv`` (created with
``python -m venv benchmarks/.dvc-venv && benchmarks/.dvc-venv/bin/pip install 'dvc[s3]'``;
git-ignored).  Results are printed and written to ``benchmarks/results/data-<time>.json``.
This is a script, not a test: nothing here runs under pytest.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DVC_VENV = HERE / ".dvc-venv"
MiB = 1024 * 1024


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def dir_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except FileNotFoundError:
                pass
    return total


def make_small_files(root: Path, n: int, size: int) -> None:
    """n files of `size` bytes in folders of 1000; distinct, compressible-ish content."""
    rnd = os.urandom(size * 64)
    root.mkdir(parents=True)
    for d in range((n + 999) // 1000):
        sub = root / f"d{d:03d}"
        sub.mkdir()
        for i in range(min(1000, n - d * 1000)):
            k = d * 1000 + i
            off = (k * 7919) % (len(rnd) - size)
            (sub / f"f{i:04d}.bin").write_bytes(rnd[off:off + size - 8] + k.to_bytes(8, "little"))
    past = time.time() - 3600  # written "an hour ago": no file is racily clean
    for p in root.rglob("*.bin"):
        os.utime(p, (past, past))


def make_big_file(path: Path, size: int) -> None:
    """``size`` random bytes with no repeated content, quickly: one random 8 MiB block,
    XORed with a different 64-bit key for each block written.  (The same block with only
    its first bytes varied would be chunked into the same chunks after the first cut, so
    dedup would flatter the add and the chunk-list numbers.)"""
    import numpy as np

    base = np.frombuffer(os.urandom(8 * MiB), dtype=np.uint64)
    with open(path, "wb") as f:
        written = 0
        k = 0
        while written < size:
            n = min(8 * MiB, size - written)
            key = int.from_bytes(hashlib.sha256(k.to_bytes(8, "little")).digest()[:8], "little")
            f.write((base ^ np.uint64(key)).tobytes()[:n])
            written += n
            k += 1
    past = time.time() - 3600
    os.utime(path, (past, past))


_stores: list[Path] = []


def client(store: Path):
    """A client on a fresh store directory (each call gets its own, never reused)."""
    import cairn

    store = store.with_name(f"{store.name}-{len(_stores)}")
    _stores.append(store)
    return cairn.Client(str(store))


def close_stores() -> None:
    from cairn.store import _STORES

    for path in _stores:
        st = _STORES.pop(str(path.resolve()), None)
        if st is not None:
            st.close()
        shutil.rmtree(path, ignore_errors=True)
    _stores.clear()


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def cpu_seconds() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed_cpu(fn):
    """(wall seconds, CPU seconds of this process, result): CPU time is what an idle machine's
    wall time would be for work that does not wait on the disk, so a busy machine shows it."""
    c = cpu_seconds()
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, cpu_seconds() - c, out


# -- workloads -------------------------------------------------------------------------

def bench_small(work: Path, n: int, size: int) -> dict:
    src = work / "small"
    if not src.exists():
        log(f"small: writing {n:,} files of {size} bytes ...")
        make_small_files(src, n, size)
    store = work / "store-small"
    ds = client(store).data
    log("small: add ...")
    t_add, c_add, v = timed_cpu(lambda: ds.add(src, "small"))
    log(f"small: add {t_add:.2f}s; re-add ...")
    t_readd, c_readd, again = timed_cpu(lambda: ds.add(src, "small"))
    assert again.created is False, "unchanged re-add made a new version"
    out = work / "checkout-small"
    shutil.rmtree(out, ignore_errors=True)
    t_co, _ = timed(lambda: ds.checkout(v, out))
    shutil.rmtree(out, ignore_errors=True)
    objects = sum(1 for _ in ds.objects.backend.iter_oids())
    return {"files": n, "file_size": size, "add_s": t_add, "readd_s": t_readd,
            "add_cpu_s": c_add, "readd_cpu_s": c_readd,
            "checkout_s": t_co, "objects": objects, "packs": len(v.packs),
            "store_bytes": dir_bytes(Path(ds.store.root)), "targets": {"add_s": 30.0, "readd_s": 3.0}}


def bench_hash(work: Path, size: int) -> dict:
    path = work / "big.bin"
    if not path.exists() or path.stat().st_size != size:
        log(f"hash: writing a {size / MiB:,.0f} MiB file ...")
        make_big_file(path, size)

    def sha() -> str:
        h = hashlib.sha256()
        with open(path, "rb", buffering=0) as f:
            buf = bytearray(16 * MiB)
            view = memoryview(buf)
            while True:
                n = f.readinto(buf)
                if not n:
                    return h.hexdigest()
                h.update(view[:n])

    sha()  # warm the page cache, so both numbers measure CPU and not the disk
    t_hash, _ = timed(sha)
    store = work / "store-big"
    ds = client(store).data
    log("hash: add ...")
    t_add, c_add, _ = timed_cpu(lambda: ds.add(path, "big"))
    objects = sum(1 for _ in ds.objects.backend.iter_oids())
    return {"bytes": size, "hash_s": t_hash, "hash_mb_s": size / 1e6 / t_hash,
            "add_s": t_add, "add_cpu_s": c_add, "add_mb_s": size / 1e6 / t_add,
            "objects": objects, "targets": {"hash_mb_s": 500.0}}


def bench_edit(work: Path, size: int, regions: int) -> dict:
    """Add a file, change 1% of its bytes in ``regions`` evenly spaced runs, add it again:
    how much the second version adds to the object store, split into chunk bytes and the
    tree (the chunk list: metadata every version pays in full)."""
    src = work / "edit"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir()
    path = src / "weights.bin"
    make_big_file(path, size)
    store = work / "store-edit"
    ds = client(store).data
    t_add, _ = timed(lambda: ds.add(src, "weights"))
    objects_dir = Path(ds.store.root) / "objects"
    backend = ds.objects.backend
    before_oids = set(backend.iter_oids())
    before = dir_bytes(objects_dir)
    changed = size // 100  # 1% of the bytes, in `regions` evenly spaced runs, in place
    run = changed // regions
    with open(path, "r+b") as f:
        for r in range(regions):
            f.seek((r * size) // regions + size // (2 * regions))
            f.write(os.urandom(run))
    v2 = ds.add(src, "weights")
    assert v2.version == 2
    added = dir_bytes(objects_dir) - before  # everything: objects, shards, the pack index
    new_oids = set(backend.iter_oids()) - before_oids
    tree_bytes = backend.size(v2.tree)
    chunk_bytes = sum(backend.size(o) for o in new_oids if o != v2.tree)
    (entry,) = ds.objects.get_tree(v2.tree)
    return {"bytes": size, "changed_bytes": changed, "regions": regions, "run_bytes": run,
            "new_bytes": added, "new_fraction": added / size,
            "new_objects": len(new_oids), "new_chunk_bytes": chunk_bytes,
            "tree_bytes": tree_bytes, "tree_fraction": tree_bytes / size,
            "chunks": len(entry.chunks), "add_s": t_add,
            "targets": {"new_fraction": 0.03}}


def bench_edit_repeated(work: Path, size: int, regions: int, repeat: int) -> dict:
    """``bench_edit`` ``repeat`` times on fresh random files: the median run, and them all."""
    runs = []
    for i in range(repeat):
        log(f"edit: {regions} runs, repetition {i + 1}/{repeat} ...")
        runs.append(bench_edit(work, size, regions))
        close_stores()
    runs.sort(key=lambda r: r["new_fraction"])
    out = dict(runs[len(runs) // 2])
    out["repeat"] = repeat
    out["new_fractions"] = [r["new_fraction"] for r in runs]
    return out


class MotoServer:
    """moto's S3 server as a subprocess on a free loopback port."""

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "MotoServer":
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                      "-p", str(self.port)], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("moto server did not start")

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)

    def bucket(self, name: str) -> str:
        import boto3

        boto3.client("s3", endpoint_url=self.url, region_name="us-east-1").create_bucket(
            Bucket=name)
        return name


def bench_push(work: Path, n: int, size: int, moto: MotoServer) -> dict:
    from cairn.data.remotes import add_remote

    src = work / f"push-{n}"
    if not src.exists():
        make_small_files(src, n, size)
    out = {"files": n, "file_size": size, "targets": {"speedup": 10.0}}
    for label, pack in (("packed", True), ("one_request_per_file", False)):
        store = work / f"store-push-{label}"
        ds = client(store).data
        ds.add(src, "small", pack=pack)
        bucket = moto.bucket(f"push-{label.replace('_', '-')}-{time.time_ns() % 10**8}")
        add_remote(ds.store.root, "origin", f"s3://{bucket}/cairn", endpoint_url=moto.url)
        log(f"push: {label} ...")
        t, res = timed(lambda: ds.push("small", progress=False, workers=8))  # noqa: B023  (called at once)
        out[label] = {"seconds": t, "objects": res.objects, "bytes": res.bytes}
    out["speedup"] = out["one_request_per_file"]["seconds"] / out["packed"]["seconds"]
    return out


def bench_dvc(work: Path, n: int, size: int, moto: MotoServer | None) -> dict:
    dvc = DVC_VENV / "bin" / "dvc"
    if not dvc.exists():
        return {"skipped": f"{dvc} not found; create benchmarks/.dvc-venv (see the docstring)"}
    src = work / f"dvc-src-{n}"
    if not src.exists():
        make_small_files(src, n, size)
    out: dict = {"files": n, "file_size": size}
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "DVC_NO_ANALYTICS": "1"}

    def sh(*args: str, cwd: Path) -> float:
        t = time.perf_counter()
        subprocess.run([str(dvc), *args], cwd=cwd, env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return time.perf_counter() - t

    repo = work / "dvc-repo"
    shutil.rmtree(repo, ignore_errors=True)
    repo.mkdir()
    shutil.copytree(src, repo / "data", copy_function=os.link)  # same files, no copy
    sh("init", "--no-scm", "-q", cwd=repo)
    log("dvc: add ...")
    out["dvc_add_s"] = sh("add", "data", cwd=repo)
    store = work / "store-dvc-cmp"
    ds = client(store).data
    out["cairn_add_s"], _ = timed(lambda: ds.add(src, "small"))
    out["add_ratio"] = out["dvc_add_s"] / out["cairn_add_s"]
    if moto is not None:
        b1 = moto.bucket(f"dvc-{time.time_ns() % 10**8}")
        sh("remote", "add", "-d", "origin", f"s3://{b1}/dvc", cwd=repo)
        sh("remote", "modify", "origin", "endpointurl", moto.url, cwd=repo)
        log("dvc: push ...")
        out["dvc_push_s"] = sh("push", "-j", "8", cwd=repo)
        from cairn.data.remotes import add_remote

        b2 = moto.bucket(f"cairn-{time.time_ns() % 10**8}")
        add_remote(ds.store.root, "origin", f"s3://{b2}/cairn", endpoint_url=moto.url)
        out["cairn_push_s"], _ = timed(lambda: ds.push("small", progress=False, workers=8))
        out["push_ratio"] = out["dvc_push_s"] / out["cairn_push_s"]
    version = subprocess.run([str(dvc), "--version"], capture_output=True, text=True).stdout
    out["dvc_version"] = version.strip()
    shutil.rmtree(repo, ignore_errors=True)
    return out


# -- harness ---------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    p.add_argument("--only", action="append", choices=["small", "hash", "edit", "push", "dvc"])
    p.add_argument("--no-dvc", action="store_true")
    p.add_argument("--work", default=None, help="scratch directory (default: a temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the scratch directory")
    p.add_argument("--repeat", type=int, default=1, metavar="N",
                   help="run the edit cases N times on fresh files and report the median")
    args = p.parse_args(argv)
    for key, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                       ("AWS_DEFAULT_REGION", "us-east-1")):
        os.environ.setdefault(key, value)  # moto accepts any credentials
    q = args.quick
    sizes = {"small_n": 2_000 if q else 100_000, "small_size": 4096,
             "big": (64 if q else 2048) * MiB, "edit": (64 if q else 1024) * MiB,
             # Runs of ~107 KB either way: quick mode's 64 MiB file gets 1/16 of the runs.
             "edit_regions": (1, 6) if q else (10, 100),
             "push_n": 1_000 if q else 10_000, "dvc_n": 1_000 if q else 10_000}
    only = set(args.only or ["small", "hash", "edit", "push", "dvc"])
    if args.no_dvc:
        only.discard("dvc")
    work = Path(args.work or tempfile.mkdtemp(prefix="cairn-data-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                                 "load_before": os.getloadavg()},
                     "quick": q, "sizes": sizes}
    try:
        if "small" in only:
            results["small"] = bench_small(work, sizes["small_n"], sizes["small_size"])
        if "hash" in only:
            results["hash"] = bench_hash(work, sizes["big"])
        if "edit" in only:
            few, many = sizes["edit_regions"]
            results["edit"] = bench_edit_repeated(work, sizes["edit"], few, args.repeat)
            results["edit_scattered"] = bench_edit_repeated(work, sizes["edit"], many,
                                                            args.repeat)
        if only & {"push", "dvc"}:
            with MotoServer() as moto:
                if "push" in only:
                    results["push"] = bench_push(work, sizes["push_n"], 4096, moto)
                if "dvc" in only:
                    results["dvc"] = bench_dvc(work, sizes["dvc_n"], 4096, moto)
    finally:
        close_stores()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    results["machine"]["load_after"] = os.getloadavg()
    report(results)
    print(f"load average before/after: {results['machine']['load_before'][0]:.1f} / "
          f"{results['machine']['load_after'][0]:.1f} on {os.cpu_count()} CPUs "
          "(a busy machine inflates wall times; CPU times do not)")
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    (out_dir / f"data-{stamp}{'-quick' if q else ''}.json").write_text(
        json.dumps(results, indent=2))
    return 0


def report(r: dict) -> None:
    rows = []
    if "small" in r:
        s = r["small"]
        rows.append((f"add {s['files']:,} files of {s['file_size']} B",
                     f"{s['add_s']:.2f} s (cpu {s['add_cpu_s']:.2f} s)", "< 30 s", s["add_s"] < 30))
        rows.append(("re-add them unchanged", f"{s['readd_s']:.2f} s (cpu {s['readd_cpu_s']:.2f} s)",
                     "< 3 s", s["readd_s"] < 3))
        rows.append(("check them out", f"{s['checkout_s']:.2f} s", "-", None))
        rows.append(("objects stored for them", f"{s['objects']:,} ({s['packs']} packs)", "-", None))
    if "hash" in r:
        h = r["hash"]
        rows.append((f"hash a {h['bytes'] / MiB:,.0f} MiB file", f"{h['hash_mb_s']:,.0f} MB/s",
                     ">= 500 MB/s", h["hash_mb_s"] >= 500))
        rows.append(("add it (chunk, hash, compress, write)",
                     f"{h['add_mb_s']:,.0f} MB/s (cpu {h['add_cpu_s']:.1f} s), "
                     f"{h['objects']:,} objects", "-", None))
    for key in ("edit", "edit_scattered"):
        if key in r:
            e = r[key]
            runs = e.get("new_fractions", [e["new_fraction"]])
            spread = (f", of {len(runs)}: " + " ".join(f"{100 * x:.2f}" for x in runs)
                      if len(runs) > 1 else "")
            rows.append((f"1% changed in {e['regions']} runs of a {e['bytes'] / MiB:,.0f} MiB file",
                         f"{100 * e['new_fraction']:.2f}% new{spread}", "< 3%",
                         e["new_fraction"] < 0.03))
            rows.append(("  of which the tree (chunk list)",
                         f"{100 * e['tree_fraction']:.3f}% ({e['tree_bytes']:,} B, "
                         f"{e['chunks']:,} chunks)", "-", None))
            rows.append(("  new objects", f"{e['new_objects']:,}", "-", None))
    if "push" in r:
        p = r["push"]
        rows.append((f"push {p['files']:,} small files: packed",
                     f"{p['packed']['seconds']:.2f} s ({p['packed']['objects']} objects)", "-", None))
        rows.append(("  one request per file",
                     f"{p['one_request_per_file']['seconds']:.2f} s "
                     f"({p['one_request_per_file']['objects']} objects)", "-", None))
        rows.append(("  speedup", f"{p['speedup']:.1f}x", ">= 10x", p["speedup"] >= 10))
    if "dvc" in r:
        d = r["dvc"]
        if "skipped" in d:
            rows.append(("DVC comparison", "skipped", d["skipped"], None))
        else:
            rows.append((f"add {d['files']:,} files: DVC / Cairn",
                         f"{d['dvc_add_s']:.2f} s / {d['cairn_add_s']:.2f} s = "
                         f"{d['add_ratio']:.1f}x", "-", None))
            if "push_ratio" in d:
                rows.append(("push them: DVC / Cairn", f"{d['dvc_push_s']:.2f} s / "
                             f"{d['cairn_push_s']:.2f} s = {d['push_ratio']:.1f}x", "-", None))
    width = max(len(r[0]) for r in rows) if rows else 10
    for name, value, target, ok in rows:
        mark = "" if ok is None else ("  ok" if ok else "  MISSED")
        print(f"{name:<{width}}  {value:<34} {target}{mark}")


if __name__ == "__main__":
    sys.exit(main())
