"""Encryption at rest: AES-256-GCM throughput, and what it costs a local object store.

    .venv/bin/python benchmarks/crypto_bench.py           # ~1 min
    .venv/bin/python benchmarks/crypto_bench.py --quick   # small sizes, a smoke run
    .venv/bin/python benchmarks/crypto_bench.py --ratios  # run.py's log_metric, log_batch and
                                                          # history, with and without a key

``run()`` returns the numbers (``lifecycle_bench.py`` imports it):

- ``seal`` / ``open``: MB/s of :func:`cairn.cas.crypto.seal` and ``open_sealed`` (a fresh
  data key, its wrap, one GCM call) for objects of 64 KiB, 256 KiB, 4 MiB and 64 MiB; median
  of several repetitions.
- ``store``: ``put_file`` and a verified ``read_file`` of a 256 MiB file of random bytes
  (chunked, so about 4,000 objects) through ``ObjectStore.local`` with and without a master
  key, each put into a fresh store (an existing object is never rewritten).
- ``layout``: the design choice of where the wrapped key lives.  Puts of small objects with
  the key in the object's header (one file) against a separate key record per object (two
  files), and a rotation: rewriting every object's header against rewriting every record.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

MiB = 1 << 20
# 256 KiB is the largest chunk of a big file, 4 MiB the largest unchunked file, 16 MiB a pack.
SIZES = {"64 KiB": 64 << 10, "256 KiB": 256 << 10, "4 MiB": 4 * MiB, "16 MiB": 16 * MiB,
         "64 MiB": 64 * MiB}
KEY = base64.b64encode(b"\x42" * 32).decode()


def _median(fn: Callable[[], Any], reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _aead(sizes: dict[str, int], budget: float) -> dict[str, dict[str, float]]:
    from cairn.cas.crypto import open_sealed, seal
    from cairn.cas.keyprovider import Keyring, aesgcm, parse_key

    key = parse_key(KEY, "bench")
    ring = Keyring([key])
    aead = aesgcm(b"\x01" * 32)
    out: dict[str, dict[str, float]] = {}
    for label, n in sizes.items():
        data = b"r" + os.urandom(n - 1)
        oid = hashlib.sha256(data).hexdigest()
        inner = max(1, int(64 * MiB // n))  # time batches of >= 64 MiB: less timer noise
        reps = max(3, min(9, int(budget / max(n * inner / 1e9, 1e-3))))
        sealed = bytes(seal(oid, data, key))
        assert open_sealed(oid, sealed, ring, lambda k: False) == data

        def enc(inner: int = inner, oid: str = oid, data: bytes = data) -> None:
            for _ in range(inner):
                seal(oid, data, key)

        def dec(inner: int = inner, oid: str = oid, sealed: bytes = sealed) -> None:
            for _ in range(inner):
                open_sealed(oid, sealed, ring, lambda k: False)

        # The cipher alone, into a buffer made once: what AES-GCM itself does on this CPU
        # (seal also makes a data key, wraps it, and writes into a new buffer).
        scratch = bytearray(n + 16)

        def cipher(inner: int = inner, data: bytes = data, scratch: bytearray = scratch) -> None:
            for _ in range(inner):
                aead.encrypt_into(b"\0" * 12, data, b"", scratch)

        enc()  # warm up
        out[label] = {"seal_MBps": n * inner / _median(enc, reps) / 1e6,
                      "open_MBps": n * inner / _median(dec, reps) / 1e6,
                      "cipher_MBps": n * inner / _median(cipher, reps) / 1e6}
    return out


def _store(size: int, reps: int, root: Path) -> dict[str, dict[str, float]]:
    from cairn.cas import ObjectStore

    src = root / "big.bin"
    with open(src, "wb") as f:
        for _ in range(size // MiB):
            f.write(os.urandom(MiB))
    times: dict[str, dict[str, list[float]]] = {
        label: {"put": [], "read": []} for label in ("plain", "encrypted")}
    try:
        for i in range(reps):
            # ABBA order, so that load from elsewhere on the machine hits both alike.
            for label in ("plain", "encrypted")[::1 if i % 2 == 0 else -1]:
                if label == "plain":
                    os.environ.pop("CAIRN_MASTER_KEY", None)
                else:
                    os.environ["CAIRN_MASTER_KEY"] = KEY
                where = root / f"{label}-{i}"
                store = ObjectStore.local(where)  # fresh: an existing object is never rewritten
                t0 = time.perf_counter()
                entry = store.put_file(src, "big.bin")
                times[label]["put"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                n = sum(len(b) for b in store.read_file(entry))
                times[label]["read"].append(time.perf_counter() - t0)
                assert n == size
                shutil.rmtree(where)
    finally:
        os.environ.pop("CAIRN_MASTER_KEY", None)
    return {label: {"put_MBps": size / statistics.median(t["put"]) / 1e6,
                    "read_MBps": size / statistics.median(t["read"]) / 1e6}
            for label, t in times.items()}


def _layout(count: int, root: Path, rounds: int = 4) -> dict[str, float]:
    """Key in the header vs a key record beside each object (both through LocalBackend),
    in alternating rounds; rates are medians over the rounds."""
    from cairn.cas.backends.local import LocalBackend
    from cairn.cas.crypto import parse_header, rewrap, seal, unwrap_dek
    from cairn.cas.keyprovider import Keyring, parse_key

    old, new = parse_key(KEY, "old"), parse_key(base64.b64encode(b"\x43" * 32).decode(), "new")
    ring = Keyring([old])
    rates: dict[str, list[float]] = {k: [] for k in (
        "put_header", "put_separate", "rotate_header", "rotate_separate")}

    def header_layout(where: Path, oids: list[str], blobs: list[bytes]) -> tuple[float, float]:
        b = LocalBackend(where)
        t0 = time.perf_counter()
        for oid, blob in zip(oids, blobs):
            b.put(oid, seal(oid, blob, old))  # type: ignore[arg-type]
        put = time.perf_counter() - t0
        t0 = time.perf_counter()
        for oid in oids:
            stored = b.get(oid)
            h = parse_header(oid, stored)
            b.put(oid, rewrap(oid, stored, h, unwrap_dek(oid, h, ring, lambda k: False), new))
        return put, time.perf_counter() - t0

    def separate_layout(where: Path, oids: list[str], blobs: list[bytes]) -> tuple[float, float]:
        objects, records = LocalBackend(where / "objects"), LocalBackend(where / "keys")
        t0 = time.perf_counter()
        for oid, blob in zip(oids, blobs):
            sealed = seal(oid, blob, old)
            h = parse_header(oid, sealed)
            objects.put(oid, memoryview(sealed)[h.body:])  # type: ignore[arg-type]
            records.put(oid, bytes(sealed[:h.body]))
        put = time.perf_counter() - t0
        t0 = time.perf_counter()
        for oid in oids:
            rec = records.get(oid)
            h = parse_header(oid, rec + b"\0" * 16)
            dek = unwrap_dek(oid, h, ring, lambda k: False)
            records.put(oid, rewrap(oid, rec + b"\0" * 16, h, dek, new)[:-16])
        return put, time.perf_counter() - t0

    for r in range(rounds):
        blobs = [os.urandom(16 << 10) for _ in range(count)]
        oids = [hashlib.sha256(b).hexdigest() for b in blobs]
        layouts = (("header", header_layout), ("separate", separate_layout))
        for name, fn in layouts[::1 if r % 2 == 0 else -1]:
            put, rotate = fn(root / f"layout-{name}-{r}", oids, blobs)
            rates[f"put_{name}"].append(count / put)
            rates[f"rotate_{name}"].append(count / rotate)
            shutil.rmtree(root / f"layout-{name}-{r}")
    return {"objects": count, "object_KiB": 16,
            **{f"{k}_per_s": statistics.median(v) for k, v in rates.items()}}


def ratios(reps: int = 4, quick: bool = False,
           names: tuple[str, ...] = ("log_metric", "log_batch", "history")
           ) -> dict[str, dict[str, Any]]:
    """log_metric, log_batch and history of benchmarks/run.py, Cairn with and without a master
    key, repetitions alternated so that load on the machine hits both alike; medians."""
    sys.path.insert(0, str(Path(__file__).parent))
    import run as harness  # benchmarks/run.py

    samples: dict[str, dict[str, list[float]]] = {}
    for name in names:
        w = harness.BY_NAME[name]
        samples[name] = {"plain": [], "encrypted": []}
        for rep in range(reps):
            # ABBA order: whatever favours the first (or second) run of a pair hits both.
            for label in ("plain", "encrypted")[::1 if rep % 2 == 0 else -1]:
                if label == "encrypted":
                    harness.SIDE_ENV["cairn"]["CAIRN_MASTER_KEY"] = KEY
                else:
                    harness.SIDE_ENV["cairn"].pop("CAIRN_MASTER_KEY", None)
                entry = harness.run_workload(w, {"cairn": sys.executable}, ("cairn",), 1, quick)
                if "error" in entry["cairn"]:
                    raise RuntimeError(entry["cairn"]["error"])
                samples[name][label].append(entry["cairn"]["median"])
        harness.SIDE_ENV["cairn"].pop("CAIRN_MASTER_KEY", None)
    out = {}
    for name, by in samples.items():
        plain, enc = statistics.median(by["plain"]), statistics.median(by["encrypted"])
        out[name] = {"plain": plain, "encrypted": enc, "encrypted_over_plain": enc / plain,
                     "unit": harness.BY_NAME[name].unit, "samples": by}
    return out


def run(quick: bool = False) -> dict[str, Any]:
    sizes = dict(list(SIZES.items())[:3]) if quick else SIZES
    with tempfile.TemporaryDirectory(prefix="cairn-crypto-bench-") as tmp:
        root = Path(tmp)
        return {
            "aead": _aead(sizes, 0.5 if quick else 2.0),
            "store": _store(32 * MiB if quick else 256 * MiB, 2 if quick else 4, root),
            "layout": _layout(300 if quick else 1000, root),
        }


def main() -> None:
    quick = "--quick" in sys.argv[1:]
    if "--ratios" in sys.argv[1:]:
        for name, r in ratios(1 if quick else 4, quick).items():
            print(f"{name:<11} plain {r['plain']:>12,.0f} {r['unit']:<9} encrypted "
                  f"{r['encrypted']:>12,.0f} {r['unit']:<9} encrypted/plain "
                  f"{r['encrypted_over_plain']:.2f}")
        return
    res = run(quick)
    print(f"{'object':>8}  {'seal MB/s':>10}  {'open MB/s':>10}  {'AES-GCM alone':>14}")
    for label, r in res["aead"].items():
        print(f"{label:>8}  {r['seal_MBps']:>10,.0f}  {r['open_MBps']:>10,.0f}  "
              f"{r['cipher_MBps']:>14,.0f}")
    size = "32 MiB" if quick else "256 MiB"
    print(f"\nObjectStore.local, a {size} file of random bytes:")
    for label, r in res["store"].items():
        print(f"  {label:<10} put_file {r['put_MBps']:>8,.0f} MB/s   read {r['read_MBps']:>8,.0f} MB/s")
    lay = res["layout"]
    print(f"\nWhere the wrapped key lives ({lay['objects']} objects of 16 KiB, local disk):")
    print(f"  put:      in the header {lay['put_header_per_s']:>9,.0f}/s   separate record "
          f"{lay['put_separate_per_s']:>9,.0f}/s")
    print(f"  rotation: in the header {lay['rotate_header_per_s']:>9,.0f}/s   separate record "
          f"{lay['rotate_separate_per_s']:>9,.0f}/s")


if __name__ == "__main__":
    main()
