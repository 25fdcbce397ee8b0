"""Review of encryption at rest: a store encrypted while another process, opened without a
key, goes on writing to it."""

from __future__ import annotations

import base64

import pytest
from procs import reap_processes, spawn, wait_for_line  # noqa: F401  (reap_processes: a fixture)

import cairn
from cairn.cas import ObjectStore
from cairn.cas.keyprovider import Keyring, parse_key, using
from cairn.cas.rekey import encrypt_existing
from cairn.doctor import diagnose
from cairn.errors import EncryptionError
from cairn.store import close_stores

KEY = base64.b64encode(b"\x5a" * 32).decode()

WRITER = """
import sys, cairn
c = cairn.Client(sys.argv[1])
run = c.create_run(c.create_experiment("e").id)
def art(n):
    path = f"{sys.argv[1]}-{n}.txt"
    open(path, "w").write(f"plain {n} " * 30)
    c.log_artifact(run.id, path)
art(0)
print("READY", run.id, flush=True)
sys.stdin.readline()
try:
    art(1)
    print("WROTE", flush=True)
except cairn.errors.CairnError as exc:
    print("REFUSED", type(exc).__name__, flush=True)
c.set_terminated(run.id)
"""


@pytest.fixture(autouse=True)
def no_key(monkeypatch):
    for name in ("CAIRN_MASTER_KEY", "CAIRN_MASTER_KEY_FILE", "CAIRN_MASTER_KEY_OLD",
                 "CAIRN_KEY_PROVIDER", "CAIRN_COLD_OBJECTS"):
        monkeypatch.delenv(name, raising=False)
    yield
    close_stores()


def test_a_keyless_writer_never_leaves_an_unreadable_object(tmp_path):
    store = tmp_path / "store"
    w = spawn(store, WRITER, store, stdin=True)
    run_id = wait_for_line(w, "READY")
    with using(Keyring([parse_key(KEY, "key")])):
        assert encrypt_existing(ObjectStore.local(store / "objects")).complete
    w.stdin.write("go\n")
    w.stdin.flush()
    out, err = w.communicate(timeout=60)
    assert w.returncode == 0, err
    assert "REFUSED EncryptionError" in out, out  # a clear error, not a plaintext object
    close_stores()
    with using(Keyring([parse_key(KEY, "key")])):
        c = cairn.Client(str(store))
        got = c.download_artifacts(run_id, "", tmp_path / "out")
        assert diagnose(c.store).ok
    assert sorted(p.name for p in got.iterdir()) == ["store-0.txt"]


def test_a_keyless_reader_of_a_store_sealed_meanwhile_is_told_why(tmp_path):
    plain = ObjectStore.local(tmp_path / "objects")
    oid = plain.put_bytes(b"before the key " * 10)
    with using(Keyring([parse_key(KEY, "key")])):
        assert encrypt_existing(ObjectStore.local(tmp_path / "objects")).complete
    plain.drop_caches()
    with pytest.raises(EncryptionError, match="encrypted after this process opened it"):
        plain.get_bytes(oid)
    with pytest.raises(EncryptionError, match="CAIRN_MASTER_KEY"):
        plain.put_bytes(b"after the key")


OLD = base64.b64encode(b"\x61" * 32).decode()
NEW = base64.b64encode(b"\x72" * 32).decode()

ROTATION_WRITER = """
import sys
from cairn.cas import ObjectStore
from cairn.errors import EncryptionError
store = ObjectStore.local(sys.argv[1])
store.put_bytes(b"before the rotation " * 20)
print("READY", flush=True)
sys.stdin.readline()
try:
    print("WROTE", store.put_bytes(b"after the rotation " * 20), flush=True)
except EncryptionError as exc:
    print("REFUSED", exc, flush=True)
"""


def test_a_writer_opened_before_a_rotation_leaves_nothing_under_the_retired_key(tmp_path):
    from cairn.cas import LocalBackend
    from cairn.cas.crypto import parse_header
    from cairn.cas.rekey import rotate

    root = tmp_path / "objects"
    w = spawn(tmp_path / "unused", ROTATION_WRITER, root, stdin=True,
              env={"CAIRN_MASTER_KEY": OLD})
    wait_for_line(w, "READY")
    new = parse_key(NEW, "new")
    with using(Keyring([parse_key(OLD, "old"), new])):
        report = rotate(ObjectStore.local(root), new)
    assert report.complete and report.rewritten == 1
    w.stdin.write("go\n")
    w.stdin.flush()
    out, err = w.communicate(timeout=60)
    assert w.returncode == 0, err
    assert "REFUSED" in out and "CAIRN_MASTER_KEY" in out and OLD not in out, out
    b = LocalBackend(root)
    assert {parse_header(o, b.get(o)).key_id for o in b.iter_oids()} == {new.key_id}
    with using(Keyring([new])):  # the old key can be destroyed: everything reads without it
        s = ObjectStore.local(root)
        assert all(s.get_bytes(o) for o in b.iter_oids())


def test_a_key_file_that_is_a_fifo_is_refused_not_waited_on(tmp_path):
    import os
    import subprocess
    import sys

    fifo = tmp_path / "key.fifo"
    os.mkfifo(fifo, 0o600)
    code = ("from cairn.cas.keyprovider import read_key_file\n"
            "from cairn.errors import EncryptionError\n"
            "try:\n    read_key_file(__import__('sys').argv[1])\n"
            "except EncryptionError as exc:\n    print('REFUSED', exc)\n")
    try:
        out = subprocess.run([sys.executable, "-c", code, str(fifo)], capture_output=True,
                             text=True, timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail("reading a FIFO as the master key file hangs")
    assert "REFUSED" in out.stdout and "not a regular file" in out.stdout, out


@pytest.mark.slow
def test_tampered_objects_fail_every_read_path_never_giving_wrong_bytes(tmp_path, monkeypatch):
    import os

    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from cairn.errors import CorruptObject

    monkeypatch.setenv("CAIRN_MASTER_KEY", KEY)
    store = tmp_path / "store"
    c = cairn.Client(str(store))
    run = c.create_run(c.create_experiment("t").id)
    art = tmp_path / "art.txt"
    art.write_bytes(b"artifact bytes " * 100)
    c.log_artifact(run.id, art)
    c.set_terminated(run.id)
    X = np.random.RandomState(0).randn(20, 2)
    c.register_model("m", LogisticRegression().fit(X, (X[:, 0] > 0).astype(int)))
    src = tmp_path / "data"
    src.mkdir()
    for i in range(20):
        (src / f"f{i}.txt").write_bytes(b"row %d\n" % i * 50)
    v = c.data.add(src, "d")
    close_stores()
    for f in (store / "objects").glob("??/*"):
        raw = bytearray(f.read_bytes())
        raw[-20] ^= 0x01  # one bit of the ciphertext
        os.chmod(f, 0o644)
        f.write_bytes(bytes(raw))
    c = cairn.Client(str(store))
    with pytest.raises(CorruptObject):
        c.download_artifacts(run.id, "", tmp_path / "out1")
    with pytest.raises(CorruptObject):
        c.load_model("models:/m/1.0.0")
    with pytest.raises(CorruptObject):
        c.data.checkout(v.ref, tmp_path / "out2")
    for out in (tmp_path / "out1", tmp_path / "out2"):
        for p in out.rglob("*") if out.exists() else ():
            assert not p.is_file() or p.read_bytes() in (art.read_bytes(),
                                                          *(q.read_bytes() for q in
                                                            src.iterdir())), p


BUSY_WRITER = """
import os, sys
from cairn.cas import ObjectStore
from cairn.errors import EncryptionError
store = ObjectStore.local(sys.argv[1])
n = 0
print("READY", flush=True)
while not os.path.exists(sys.argv[2]):
    try:
        store.put_bytes(b"%s object %d " % (sys.argv[3].encode(), n) * 30)
    except EncryptionError:
        print("REFUSED", n, flush=True)
        break
    n += 1
print("DONE", n, flush=True)
"""


@pytest.mark.slow
def test_rotation_while_two_processes_write_leaves_every_object_under_the_new_key(tmp_path):
    from cairn.cas import LocalBackend
    from cairn.cas.crypto import parse_header
    from cairn.cas.rekey import rotate

    root, stop = tmp_path / "objects", tmp_path / "stop"
    with using(Keyring([parse_key(OLD, "old")])):
        seed = ObjectStore.local(root)
        for i in range(300):
            seed.put_bytes(b"seed %d " % i * 40)
    writers = [spawn(tmp_path / "unused", BUSY_WRITER, root, stop, f"w{k}",
                     env={"CAIRN_MASTER_KEY": OLD}) for k in range(2)]
    for w in writers:
        wait_for_line(w, "READY")
    new = parse_key(NEW, "new")
    with using(Keyring([parse_key(OLD, "old"), new])):
        report = rotate(ObjectStore.local(root), new, workers=2)
    stop.touch()
    outs = [w.communicate(timeout=60)[0] for w in writers]
    assert report.complete, report
    assert all("REFUSED" in out for out in outs), outs
    b = LocalBackend(root)
    ids = {o: parse_header(o, b.get(o)).key_id for o in b.iter_oids()}
    assert set(ids.values()) == {new.key_id}, \
        f"{sum(v != new.key_id for v in ids.values())} object(s) left under the retired key"
