"""Review of backup and restore: paths that reach the store or the backup by another name
(a symlink, the backup itself, a directory around it)."""

from __future__ import annotations

import os
import time

import pytest

import cairn
from cairn.errors import InvalidArgument, NotFound
from cairn.lifecycle.backup import backup
from cairn.lifecycle.backup_format import MANIFEST
from cairn.lifecycle.restore import restore
from cairn.store import close_stores


@pytest.fixture(autouse=True)
def no_key(monkeypatch):
    for name in ("CAIRN_MASTER_KEY", "CAIRN_MASTER_KEY_FILE", "CAIRN_MASTER_KEY_OLD",
                 "CAIRN_KEY_PROVIDER", "CAIRN_COLD_OBJECTS"):
        monkeypatch.delenv(name, raising=False)
    yield
    close_stores()


def _store(tmp_path, where) -> str:
    c = cairn.Client(str(where))
    run = c.create_run(c.create_experiment("review").id)
    c.log_param(run.id, "p", "1")
    f = tmp_path / "a.txt"
    f.write_bytes(b"review artifact " * 10)
    c.log_artifact(run.id, f)
    c.set_terminated(run.id)
    return run.id


def test_destination_inside_the_store_through_a_symlink_is_refused(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    store = tmp_path / "link" / "store"
    _store(tmp_path, store)
    for dest in (store / "bk", store / "objects" / "bk"):
        with pytest.raises(InvalidArgument, match="outside the store"):
            backup(cairn.Client(str(store)).store, dest)
        assert not dest.exists()
    assert not (tmp_path / "real" / "store" / "bk").exists()


@pytest.fixture
def taken(tmp_path):
    _store(tmp_path, tmp_path / "store")
    backup(cairn.Client(str(tmp_path / "store")).store, tmp_path / "bk")
    close_stores()
    return tmp_path / "bk"


@pytest.mark.parametrize("where", ["itself", "parent", "child", "objects"])
def test_restore_never_targets_the_backup_it_reads(taken, where):
    target = {"itself": taken, "parent": taken.parent, "child": taken / "restored",
              "objects": taken / "objects"}[where]
    before = sorted(p.relative_to(taken) for p in taken.rglob("*"))
    with pytest.raises(InvalidArgument, match="backup"):
        restore(taken, str(target), force=True)
    assert sorted(p.relative_to(taken) for p in taken.rglob("*")) == before
    assert (taken / MANIFEST).is_file()
    restore(taken, str(taken.parent / "elsewhere"))  # the backup is still whole


def test_a_database_restore_keeps_its_objects_out_of_the_backup(taken):
    with pytest.raises(InvalidArgument, match="outside the backup"):
        restore(taken, "postgresql://nobody@127.0.0.1:9/none", objects=str(taken / "objects"),
                force=True)
    assert (taken / MANIFEST).is_file()


def test_a_backup_never_overwrites_another_store(tmp_path):
    _store(tmp_path, tmp_path / "store")
    other = tmp_path / "other"
    c = cairn.Client(str(other))
    precious = c.create_run(c.create_experiment("precious").id).id
    close_stores()
    before = sorted(p.relative_to(other) for p in other.rglob("*"))
    with pytest.raises(InvalidArgument, match="holds no Cairn backup"):
        backup(cairn.Client(str(tmp_path / "store")).store, other)
    assert sorted(p.relative_to(other) for p in other.rglob("*")) == before
    close_stores()
    assert cairn.Client(str(other)).get_run(precious).experiment == "precious"


def test_an_interrupted_backup_is_no_backup_and_the_next_one_finishes_it(tmp_path,
                                                                          monkeypatch):
    import cairn.lifecycle.backup as mod

    rid = _store(tmp_path, tmp_path / "store")
    store = cairn.Client(str(tmp_path / "store")).store

    def killed(*_a, **_k):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(mod, "write_manifest", killed)
        with pytest.raises(KeyboardInterrupt):
            backup(store, tmp_path / "bk")
    assert not (tmp_path / "bk" / MANIFEST).exists()
    with pytest.raises(Exception, match="not a complete Cairn backup"):
        restore(tmp_path / "bk", str(tmp_path / "r0"))
    assert not (tmp_path / "r0").exists()
    assert backup(store, tmp_path / "bk").ok
    assert sorted(p.name for p in (tmp_path / "bk").iterdir() if p.is_file()) == \
        ["index.db", MANIFEST, "objects.txt"]
    restore(tmp_path / "bk", str(tmp_path / "r1"))
    close_stores()
    assert cairn.Client(str(tmp_path / "r1")).get_run(rid).params == {"p": "1"}


def test_a_second_backup_after_purge_and_gc_drops_what_went(tmp_path):
    from cairn import clock
    from cairn.lifecycle.gc import collect
    from cairn.lifecycle.trash import purge

    store = tmp_path / "store"
    keep = _store(tmp_path, store)
    c = cairn.Client(str(store))
    gone = c.create_run(c.create_experiment("doomed").id)
    f = tmp_path / "g.txt"
    f.write_bytes(b"garbage to be " * 100)
    c.log_artifact(gone.id, f)
    c.set_terminated(gone.id)
    bk = tmp_path / "bk"
    first = backup(c.store, bk)
    c.delete_run(gone.id)
    purge(c.store, older_than_ms=None, now_ms=clock.now_ms(), dry_run=False, actor="review")
    old = time.time() - 2 * 86_400  # past GC's grace
    for f in (store / "objects").glob("??/*"):
        os.utime(f, (old, old))
    assert collect(c.store, grace_s=0).freed >= 1
    second = backup(c.store, bk)
    assert second.ok and second.objects < first.objects
    listed = {line.split()[0] for line in (bk / "objects.txt").read_text().splitlines()}
    on_disk = {p.parent.name + p.name for p in (bk / "objects").glob("??/*")}
    assert listed == on_disk, "a collected object was left in the backup"
    close_stores()
    restore(bk, str(tmp_path / "r"))
    close_stores()
    r = cairn.Client(str(tmp_path / "r"))
    from cairn.doctor import diagnose

    assert diagnose(r.store).ok
    assert r.get_run(keep).params == {"p": "1"}
    with pytest.raises(NotFound):
        r.get_run(gone.id)
