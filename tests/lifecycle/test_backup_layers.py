"""Backups of an encrypted store (ciphertext copied as stored, with its marker, no key
needed) and of a store with a cold tier (its cold objects are in the backup too)."""

from __future__ import annotations

import base64
import shutil

import pytest

import cairn
from cairn.doctor import diagnose
from cairn.lifecycle.backup import backup
from cairn.lifecycle.restore import restore
from cairn.store import close_stores

KEY = base64.b64encode(bytes([7]) * 32).decode()
SECRET = b"plaintext that must never reach the backup " * 20


@pytest.fixture(autouse=True)
def no_key(monkeypatch):
    for name in ("CAIRN_MASTER_KEY", "CAIRN_MASTER_KEY_FILE", "CAIRN_MASTER_KEY_OLD",
                 "CAIRN_KEY_PROVIDER", "CAIRN_COLD_OBJECTS"):
        monkeypatch.delenv(name, raising=False)
    yield
    close_stores()


def _logged(store, tmp_path) -> str:
    c = cairn.Client(str(store))
    run = c.create_run(c.create_experiment("layers").id)
    f = tmp_path / "secret.txt"
    f.write_bytes(SECRET)
    c.log_artifact(run.id, f)
    c.set_terminated(run.id)
    return run.id


def test_encrypted_store_is_backed_up_without_its_key(tmp_path, monkeypatch):
    monkeypatch.setenv("CAIRN_MASTER_KEY", KEY)
    store = tmp_path / "store"
    rid = _logged(store, tmp_path)
    close_stores()
    monkeypatch.delenv("CAIRN_MASTER_KEY")  # backup and restore need no key
    report = backup(cairn.Client(str(store)).store, tmp_path / "bk")
    assert report.ok and report.objects >= 1
    bk = tmp_path / "bk"
    assert (bk / "objects" / "encryption.json").is_file(), "the marker travels with the objects"
    stored = [p.read_bytes() for p in (bk / "objects").glob("??/*")]
    assert stored and all(b.startswith(b"CAE") for b in stored)
    assert not any(SECRET[:40] in b for p in bk.rglob("*") if p.is_file()
                   for b in [p.read_bytes()])
    restore(bk, str(tmp_path / "restored"))
    close_stores()
    monkeypatch.setenv("CAIRN_MASTER_KEY", KEY)  # reading the restored store needs it
    c = cairn.Client(str(tmp_path / "restored"))
    assert diagnose(c.store).ok
    out = c.download_artifacts(rid, "secret.txt", tmp_path / "out")
    assert out.read_bytes() == SECRET


def test_cold_objects_are_in_the_backup(tmp_path):
    from cairn.cas.tiering import configure, move_cold

    store = tmp_path / "store"
    rid = _logged(store, tmp_path)
    objects = cairn.Client(str(store)).store.objects
    configure(objects, str(tmp_path / "cold"))
    move_cold(objects, older_than_days=0, now=objects.backend.config().since + 1)
    assert not [p for p in (store / "objects").glob("??/*")], "every object went cold"
    report = backup(cairn.Client(str(store)).store, tmp_path / "bk")
    assert report.ok and not report.missing
    shutil.rmtree(tmp_path / "cold")  # the backup alone holds every object
    restore(tmp_path / "bk", str(tmp_path / "restored"))
    close_stores()
    c = cairn.Client(str(tmp_path / "restored"))
    assert c.download_artifacts(rid, "secret.txt", tmp_path / "out").read_bytes() == SECRET
