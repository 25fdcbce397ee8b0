"""Review of backup and restore with encryption at rest: an incremental backup after a key
rotation must hold the re-wrapped objects, not the copies made under the old key."""

from __future__ import annotations

import base64

import pytest

import cairn
from cairn.cas.crypto import parse_header
from cairn.cas.keyprovider import Keyring, parse_key, using
from cairn.cas.rekey import rotate
from cairn.doctor import diagnose
from cairn.lifecycle.backup import backup
from cairn.lifecycle.restore import restore
from cairn.store import close_stores

OLD = base64.b64encode(b"\x31" * 32).decode()
NEW = base64.b64encode(b"\x42" * 32).decode()
NEW_ID = parse_key(NEW, "new").key_id
SECRET = b"rotated secret " * 50


@pytest.fixture(autouse=True)
def no_key(monkeypatch):
    for name in ("CAIRN_MASTER_KEY", "CAIRN_MASTER_KEY_FILE", "CAIRN_MASTER_KEY_OLD",
                 "CAIRN_KEY_PROVIDER", "CAIRN_COLD_OBJECTS"):
        monkeypatch.delenv(name, raising=False)
    yield
    close_stores()


def test_a_backup_after_a_rotation_is_readable_with_the_new_key_alone(tmp_path, monkeypatch):
    store = tmp_path / "store"
    monkeypatch.setenv("CAIRN_MASTER_KEY", OLD)
    c = cairn.Client(str(store))
    run = c.create_run(c.create_experiment("rot").id)
    f = tmp_path / "s.txt"
    f.write_bytes(SECRET)
    c.log_artifact(run.id, f)
    c.set_terminated(run.id)
    close_stores()
    monkeypatch.delenv("CAIRN_MASTER_KEY")
    bk = tmp_path / "bk"
    assert backup(cairn.Client(str(store)).store, bk).objects_copied >= 1
    close_stores()

    with using(Keyring([parse_key(OLD, "old"), parse_key(NEW, "new")])):
        objects = cairn.cas.ObjectStore.local(store / "objects")
        assert rotate(objects, parse_key(NEW, "new")).complete
    close_stores()

    second = backup(cairn.Client(str(store)).store, bk)  # incremental, into the same DEST
    assert second.ok
    for p in (bk / "objects").glob("??/*"):
        oid = p.parent.name + p.name
        assert parse_header(oid, p.read_bytes()).key_id == NEW_ID, \
            f"{oid} in the backup is still wrapped by the retired key"
    restore(bk, str(tmp_path / "restored"))
    close_stores()
    monkeypatch.setenv("CAIRN_MASTER_KEY", NEW)  # the old key may be destroyed now
    r = cairn.Client(str(tmp_path / "restored"))
    assert diagnose(r.store).ok
    assert r.download_artifacts(run.id, "s.txt", tmp_path / "out").read_bytes() == SECRET


def test_gc_in_a_restored_store_never_touches_the_original_cold_tier(tmp_path):
    import os
    import time

    from cairn import clock
    from cairn.cas.tiering import configure, move_cold
    from cairn.lifecycle.gc import collect
    from cairn.lifecycle.trash import purge

    store = tmp_path / "store"
    c = cairn.Client(str(store))
    run = c.create_run(c.create_experiment("cold").id)
    f = tmp_path / "s.txt"
    f.write_bytes(SECRET)
    c.log_artifact(run.id, f)
    c.set_terminated(run.id)
    objects = c.store.objects
    configure(objects, str(tmp_path / "cold"))
    move_cold(objects, older_than_days=0, now=objects.backend.config().since + 1)
    cold_before = sorted(p.name for p in (tmp_path / "cold").rglob("*") if p.is_file())
    assert cold_before
    backup(c.store, tmp_path / "bk")
    close_stores()
    restore(tmp_path / "bk", str(tmp_path / "restored"))
    close_stores()
    # A trial restore, cleaned up: its run deleted and collected.  Its tiers.json still
    # names the original's cold tier, which it must leave alone.
    r = cairn.Client(str(tmp_path / "restored"))
    r.delete_run(run.id)
    purge(r.store, older_than_ms=None, now_ms=clock.now_ms(), dry_run=False, actor="review")
    old = time.time() - 2 * 86_400
    for p in (tmp_path / "restored" / "objects").glob("??/*"):
        os.utime(p, (old, old))
    assert collect(r.store, grace_s=0).freed >= 1
    close_stores()
    assert sorted(p.name for p in (tmp_path / "cold").rglob("*") if p.is_file()) == cold_before
    o = cairn.Client(str(store))
    assert o.download_artifacts(run.id, "s.txt", tmp_path / "out").read_bytes() == SECRET
