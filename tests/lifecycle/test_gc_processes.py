"""cairn gc as real processes on a local store: killed with SIGKILL mid-sweep then finished
by the next gc, and run again and again while 8 writer processes log artifacts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from procs import _default_signals, reap_processes, spawn  # noqa: F401 - the fixture

import cairn
from cairn.lifecycle.gc import collect
from cairn.lifecycle.roots import referenced


def lb(objects):
    from cairn.cas.backends.local import LocalBackend

    b = objects.backend
    while not isinstance(b, LocalBackend):
        b = next(getattr(b, a) for a in ("inner", "hot", "backend") if hasattr(b, a))
    return b


def stored(objects) -> set[str]:
    return set(objects.backend.iter_oids())


def garbage(objects, n: int, tag: str, age: float) -> list[str]:
    oids = [objects.put_bytes(f"garbage {tag} {i}".encode() * 20) for i in range(n)]
    when = time.time() - age
    for oid in oids:
        os.utime(lb(objects).path(oid), (when, when))
    return oids

pytestmark = pytest.mark.slow


def count_files(root) -> int:
    n = 0
    for shard in os.scandir(root):
        if shard.is_dir() and len(shard.name) == 2:
            n += sum(1 for e in os.scandir(shard.path) if not e.name.startswith("."))
    return n


def test_sigkill_mid_sweep_loses_nothing_and_the_next_gc_finishes(store_dir, tmp_path):
    client = cairn.Client(str(store_dir))
    src = tmp_path / "arts"
    src.mkdir()
    for i in range(40):
        (src / f"f{i}.txt").write_bytes(f"referenced {i}\n".encode() * 30)
    run = client.create_run(name="kept")
    client.log_artifacts(run.id, src)
    client.set_terminated(run.id)
    objects = client.store.objects
    junk = set(garbage(objects, 20_000, tag="kill", age=60))
    roots = referenced(client.store)
    total = count_files(lb(objects).root)
    env = {**os.environ, "CAIRN_TRACKING_URI": str(store_dir)}
    gc = subprocess.Popen([sys.executable, "-m", "cairn.cli.main", "gc", "--grace", "0",
                           "--no-retention", "--no-purge"], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, preexec_fn=_default_signals)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and gc.poll() is None:
            left = count_files(lb(objects).root)
            if left < total - 500:  # the sweep is under way
                break
            time.sleep(0.005)
        assert gc.poll() is None, "gc finished before it could be killed: make more garbage"
        gc.send_signal(signal.SIGKILL)
        gc.wait(30)
    finally:
        if gc.poll() is None:
            gc.kill()
        gc.communicate()
    assert gc.returncode == -signal.SIGKILL
    left = stored(objects)
    assert junk & left, "killed before the sweep ended"
    assert len(junk - left) >= 500
    # Nothing referenced was lost, even now (an object renamed aside is put back below).
    report = collect(client.store, grace_s=0)
    assert report.freed >= len(junk & left)
    assert not junk & stored(objects)
    result = objects.verify(roots)
    assert result.ok and result.checked == len(roots)
    assert not list(lb(objects).root.rglob(".gc-*"))
    out = tmp_path / "out"
    client.download_artifacts(run.id, "", out)
    assert (out / "f7.txt").read_bytes() == b"referenced 7\n" * 30


WRITER = """
import os, sys, time
import cairn

wid, rounds, shared = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
work = os.path.join(sys.argv[4], f"w{wid}")
os.makedirs(work, exist_ok=True)
digests = []
for r in range(rounds):
    with cairn.start_run(name=f"w{wid}-{r}") as run:
        d = os.path.join(work, str(r))
        os.makedirs(d, exist_ok=True)
        # Unique content, and content that old garbage objects already hold (the dedup race).
        with open(os.path.join(d, "own.txt"), "wb") as f:
            f.write(f"writer {wid} round {r}\\n".encode() * 40)
        with open(os.path.join(d, "shared.txt"), "wb") as f:
            f.write(f"garbage shared {(wid * rounds + r) % shared}".encode() * 20)
        cairn.log_artifacts(d)
        time.sleep(0.02)
    print("RUN", run.id, flush=True)
print("DONE", flush=True)
"""


def test_gc_with_grace_0_while_8_writers_log_artifacts_loses_nothing(store_dir, tmp_path):
    client = cairn.Client(str(store_dir))
    src = tmp_path / "before"
    src.mkdir()
    for i in range(30):
        (src / f"b{i}.txt").write_bytes(f"logged before gc {i}".encode() * 25)
    run = client.create_run(name="before")
    client.log_artifacts(run.id, src)
    client.set_terminated(run.id)
    objects = client.store.objects
    shared = 40
    # Old garbage whose content the writers log again: each such put finds the object.
    old = garbage(objects, shared, tag="shared", age=120)
    junk = set(garbage(objects, 300, tag="plain", age=120))
    before = referenced(client.store)
    assert len(before) == 30 and not before & set(old)

    writers = [spawn(store_dir, WRITER, w, 12, shared, tmp_path, env={"CAIRN_CAPTURE_ENV": "0"})
               for w in range(8)]
    gc_runs = []
    gc_client = cairn.Client(str(store_dir))
    while any(w.poll() is None for w in writers):
        gc_runs.append(collect(gc_client.store, grace_s=0))
    gc_runs.append(collect(gc_client.store, grace_s=0))
    logged = []
    for w in writers:
        out, err = w.communicate(timeout=120)
        assert w.returncode == 0, err
        assert "DONE" in out
        logged += [line.split()[1] for line in out.splitlines() if line.startswith("RUN")]
    assert len(logged) == 8 * 12 and len(gc_runs) >= 3
    assert sum(r.freed for r in gc_runs) >= len(junk)  # gc did collect while writers ran

    reader = cairn.Client(str(store_dir))
    after = referenced(reader.store)
    assert before <= after
    for rid in logged:  # every writer's every artifact is in the index ...
        assert {e.path for e in reader.list_artifacts(rid)} == {"own.txt", "shared.txt"}
    assert len(after) == 30 + 8 * 12 + len({(w * 12 + r) % shared for w in range(8)
                                             for r in range(12)})
    result = objects.verify(after)  # ... and every referenced object is there and whole
    assert result.ok and result.checked == len(after), result
    assert not junk & stored(objects)
