"""Master key rotation: re-wraps data keys only, and survives being killed half-way."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time

import pytest
from procs import reap_processes, spawn  # noqa: F401  (reap_processes: a fixture)
from serving import CAIRN

from cairn.cas import LocalBackend, ObjectStore
from cairn.cas.crypto import MARKER_NAME, parse_header
from cairn.cas.keyprovider import Keyring, parse_key, using
from cairn.cas.rekey import rotate
from cairn.errors import EncryptionError

OLD = base64.b64encode(b"\x11" * 32).decode()
NEW = base64.b64encode(b"\x22" * 32).decode()
OLD_ID, NEW_ID = parse_key(OLD, "o").key_id, parse_key(NEW, "n").key_id


@pytest.fixture(autouse=True)
def no_key(monkeypatch):
    for name in ("CAIRN_MASTER_KEY", "CAIRN_MASTER_KEY_FILE", "CAIRN_MASTER_KEY_OLD",
                 "CAIRN_KEY_PROVIDER"):
        monkeypatch.delenv(name, raising=False)


def fill(root, monkeypatch, n: int) -> dict[str, bytes]:
    monkeypatch.setenv("CAIRN_MASTER_KEY", OLD)
    store = ObjectStore.local(root)
    content = {}
    for i in range(n):
        data = b"object %d " % i * (1 + i % 50)
        content[store.put_bytes(data)] = data
    monkeypatch.delenv("CAIRN_MASTER_KEY")
    return content


def key_ids(root) -> dict[str, str]:
    b = LocalBackend(root)
    return {oid: parse_header(oid, b.get(oid)).key_id for oid in b.iter_oids()}


def write_key(path, text) -> str:
    path.write_text(text + "\n")
    path.chmod(0o600)
    return str(path)


def test_rotation_rewraps_headers_and_keeps_the_ciphertext(tmp_path, monkeypatch):
    root = tmp_path / "objects"
    content = fill(root, monkeypatch, 30)
    before = {oid: LocalBackend(root).get(oid) for oid in content}
    with using(Keyring([parse_key(OLD, "o")])):
        store = ObjectStore.local(root)
    report = rotate(store, parse_key(NEW, "n"), workers=4)
    assert report.complete and report.rewritten == 30 and report.total == 30
    for oid, stored in before.items():
        after = LocalBackend(root).get(oid)
        h0, h1 = parse_header(oid, stored), parse_header(oid, after)
        assert h1.key_id == NEW_ID and h0.key_id == OLD_ID
        assert stored[h0.body:] == after[h1.body:]  # not re-encrypted
        assert h1.nonce == h0.nonce
    marker = json.loads((root / MARKER_NAME).read_text())
    assert marker["key_id"] == NEW_ID and marker["previous_key_ids"] == []
    assert marker["retired_key_ids"] == [OLD_ID]
    monkeypatch.setenv("CAIRN_MASTER_KEY", NEW)
    fresh = ObjectStore.local(root)
    assert all(fresh.get_bytes(o) == d for o, d in content.items())
    monkeypatch.setenv("CAIRN_MASTER_KEY", OLD)
    with pytest.raises(EncryptionError, match="wrong master key"):
        ObjectStore.local(root)
    # Running it again is harmless: nothing left to do.
    with using(Keyring([parse_key(NEW, "n")])):
        again = rotate(ObjectStore.local(root), parse_key(NEW, "n"))
    assert again.complete and again.rewritten == 0 and again.already == 30


ROTATE_SLOWLY = """
import sys, time
from cairn.cas import ObjectStore
from cairn.cas.keyprovider import Keyring, parse_key, using
from cairn.cas.rekey import rotate

root, old, new = sys.argv[1:4]
old, new = parse_key(old, "old"), parse_key(new, "new")
with using(Keyring([old, new])):
    store = ObjectStore.local(root)
inner = store.backend.inner
real_put = inner.put

def put(oid, data):  # a slow disk, so that the parent can kill us half-way
    time.sleep(0.01)
    real_put(oid, data)

inner.put = put
print("rotating", flush=True)
rotate(store, new, workers=2)
print("done", flush=True)
"""


@pytest.mark.slow
def test_rotation_killed_half_way_keeps_every_object_readable_then_resumes(tmp_path,
                                                                            monkeypatch):
    root = tmp_path / "objects"
    content = fill(root, monkeypatch, 300)
    proc = spawn(tmp_path / "store", ROTATE_SLOWLY, root, OLD, NEW)
    assert proc.stdout.readline().strip() == "rotating"
    deadline = time.time() + 60
    while True:
        done = sum(1 for k in key_ids(root).values() if k == NEW_ID)
        if done >= 40:
            break
        assert time.time() < deadline and proc.poll() is None, proc.stderr.read()
        time.sleep(0.02)
    proc.kill()  # SIGKILL: no cleanup, no final marker write
    proc.wait(10)
    ids = key_ids(root)
    assert 0 < sum(k == NEW_ID for k in ids.values()) < 300
    assert set(ids.values()) == {OLD_ID, NEW_ID}
    marker = json.loads((root / MARKER_NAME).read_text())
    assert marker["key_id"] == NEW_ID and marker["previous_key_ids"] == [OLD_ID]

    # Both keys given: every object reads, and new objects are sealed with the new key.
    monkeypatch.setenv("CAIRN_MASTER_KEY", NEW)
    monkeypatch.setenv("CAIRN_MASTER_KEY_OLD", OLD)
    both = ObjectStore.local(root)
    assert all(both.get_bytes(o) == d for o, d in content.items())
    late = both.put_bytes(b"written during the rotation")
    assert key_ids(root)[late] == NEW_ID
    # The new key alone: a not-yet-rewrapped object names the setting that is missing.
    monkeypatch.delenv("CAIRN_MASTER_KEY_OLD")
    only_new = ObjectStore.local(root)
    stale = next(o for o, k in ids.items() if k == OLD_ID)
    with pytest.raises(EncryptionError, match="CAIRN_MASTER_KEY_OLD"):
        only_new.get_bytes(stale)
    # The old key alone is told the store is being rotated.
    monkeypatch.setenv("CAIRN_MASTER_KEY", OLD)
    with pytest.raises(EncryptionError, match="being rotated"):
        ObjectStore.local(root)
    monkeypatch.delenv("CAIRN_MASTER_KEY")

    # `cairn encryption status` says so; the same rotate command, run again, finishes.
    env = {**os.environ, "CAIRN_MASTER_KEY": OLD}
    status = subprocess.run([*CAIRN, "encryption", "status", "--objects", str(root), "--json"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert json.loads(status.stdout)["rotating_from"] == [OLD_ID]
    new_file = write_key(tmp_path / "new.key", NEW)
    out = subprocess.run([*CAIRN, "encryption", "rotate", "--new-key-file", new_file,
                          "--objects", str(root), "--json"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["complete"] and report["total"] == 301
    assert report["rewritten"] + report["already"] == 301 and report["rewritten"] < 300
    assert set(key_ids(root).values()) == {NEW_ID}
    assert NEW not in out.stdout + out.stderr and OLD not in out.stdout + out.stderr
    monkeypatch.setenv("CAIRN_MASTER_KEY", NEW)
    done = ObjectStore.local(root)
    assert done.verify().ok
    assert all(done.get_bytes(o) == d for o, d in content.items())


def test_rotation_without_the_old_key_lists_what_is_left(tmp_path, monkeypatch):
    root = tmp_path / "objects"
    fill(root, monkeypatch, 5)
    third = base64.b64encode(b"\x33" * 32).decode()
    env = {**os.environ}
    env.pop("CAIRN_MASTER_KEY", None)
    new_file = write_key(tmp_path / "new.key", NEW)
    # No current key at all: a clear error, nothing changed.
    before = (root / MARKER_NAME).read_bytes()
    out = subprocess.run([*CAIRN, "encryption", "rotate", "--new-key-file", new_file,
                          "--objects", str(root)], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 1 and "current master key" in out.stderr
    # A key that is not the store's: refused before anything is rewritten.
    out = subprocess.run([*CAIRN, "encryption", "rotate", "--new-key-file", new_file,
                          "--objects", str(root)], env={**env, "CAIRN_MASTER_KEY": third},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "wrong master key" in out.stderr
    assert (root / MARKER_NAME).read_bytes() == before
    assert set(key_ids(root).values()) == {OLD_ID}


def test_a_cold_tier_holds_ciphertext_and_rotation_rewrites_it_there(tmp_path, monkeypatch):
    from cairn.cas.tiering import configure, move_cold

    root, cold = tmp_path / "objects", tmp_path / "cold"
    content = fill(root, monkeypatch, 10)
    monkeypatch.setenv("CAIRN_MASTER_KEY", OLD)
    store = ObjectStore.local(root)
    configure(store, str(cold))
    report = move_cold(store, older_than_days=0, now=int(time.time() * 1000) + 10**9)
    assert report is not None
    in_cold = set(LocalBackend(cold).iter_oids())
    assert in_cold == set(content) and not set(LocalBackend(root).iter_oids())
    for oid in in_cold:
        assert b"object" not in LocalBackend(cold).get(oid)
        assert parse_header(oid, LocalBackend(cold).get(oid)).key_id == OLD_ID
    with using(Keyring([parse_key(OLD, "o")])):
        done = rotate(ObjectStore.local(root), parse_key(NEW, "n"))
    assert done.complete and done.rewritten == 10
    assert not set(LocalBackend(root).iter_oids())  # not warmed up by the rotation
    assert {parse_header(o, LocalBackend(cold).get(o)).key_id for o in in_cold} == {NEW_ID}
    monkeypatch.setenv("CAIRN_MASTER_KEY", NEW)
    fresh = ObjectStore.local(root)
    assert all(fresh.get_bytes(o) == d for o, d in content.items())
