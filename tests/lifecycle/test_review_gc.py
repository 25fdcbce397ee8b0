"""Review of cairn gc: races between a repack and a writer that deduplicates against the
pack being repacked (the writer asks ``missing`` and refers to what it found)."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

import cairn
from cairn.entities import FileEntry, RecordBatch
from cairn.lifecycle import roots
from cairn.lifecycle.gc import collect

from .test_gc import backdate, run_with_artifacts


@pytest.fixture
def store(client):
    return client.store


def _mostly_dead_pack(store, tmp_path):
    from cairn.cas.packs import PackWriter

    objects = store.objects
    blobs = [f"review member {i} ".encode() * 50 for i in range(10)]
    with PackWriter(objects) as w:
        for b in blobs:
            w.add(hashlib.sha256(b).hexdigest(), b)
    (pack,) = w.written
    run_with_artifacts(tmp_path, {f"l{i}.txt": b for i, b in enumerate(blobs[:2])})
    oids = [hashlib.sha256(b).hexdigest() for b in blobs]
    for oid in oids[:2]:  # only packed from now on
        objects.backend.delete(oid)
    backdate(objects)
    return pack, blobs, oids


@pytest.mark.parametrize("grace", [0, 3600])
def test_a_member_found_by_a_writer_during_the_repack_stays_readable(client, store, tmp_path,
                                                                     monkeypatch, grace):
    """The writer asks what is missing after gc's re-mark (a dead member is found in the pack,
    which freshens it), then records a run naming it: the repack must not drop it."""
    pack, blobs, oids = _mostly_dead_pack(store, tmp_path)
    dead, dead_bytes = oids[5], blobs[5]
    original = roots.Marker.mark
    calls: list[int] = []

    def mark(self):
        out = original(self)
        calls.append(1)
        if len(calls) == 2:  # after the re-mark: the writer dedups against the pack
            assert store.objects.missing({dead}) == set()
        return out

    monkeypatch.setattr(roots.Marker, "mark", mark)
    collect(store, grace_s=grace)
    monkeypatch.setattr(roots.Marker, "mark", original)
    run = client.create_run(name="late writer")
    store.write(RecordBatch(run_id=run.id, writer_id="cd" * 8, seq=1,
                            time=int(time.time() * 1000),
                            artifacts=(FileEntry("dead.txt", len(dead_bytes), dead),)))
    store.objects.drop_caches()
    assert store.objects.get_bytes(dead) == dead_bytes
    # and a later collection (the repacked pack older than the grace) keeps it too
    backdate(store.objects)
    collect(store, grace_s=0)
    store.objects.drop_caches()
    assert store.objects.get_bytes(dead) == dead_bytes
    assert cairn is not None


def test_missing_reports_members_of_a_pack_deleted_under_it(client, store, tmp_path):
    """A collection deleted the pack after the writer located a member in it: the freshen
    fails, so the member is missing and the writer stores it again (before, ``missing``
    ignored the failed freshen and the writer referred to an object stored nowhere)."""
    pack, blobs, oids = _mostly_dead_pack(store, tmp_path)
    store.objects.backend.delete(pack)  # the index still locates its members
    assert store.objects.missing({oids[5]}) == {oids[5]}
    store.objects.put_bytes(blobs[5])
    store.objects.drop_caches()
    assert store.objects.get_bytes(oids[5]) == blobs[5]


def test_a_young_object_left_aside_by_another_gc_is_put_back(store):
    """A collection renamed an object aside just after a writer freshened it (a deduplicated
    put), and was killed (or has not yet read the time and put it back).  The writer's
    record has not arrived: the object is unreferenced but young, and must come back."""
    from .test_gc import lb, stored

    content = b"a writer just found this stored and will refer to it" * 5
    x = store.objects.put_bytes(content)  # modified now: young
    p = lb(store.objects).path(x)
    os.rename(p, p.parent / f".gc-{x[2:]}-0badcafe")
    report = collect(store, grace_s=0)
    assert x in stored(store.objects) and report.freed == 0
    assert store.objects.get_bytes(x) == content
    assert not list(lb(store.objects).root.rglob(".gc-*"))


def test_cli_dry_run_counts_what_the_purge_before_the_sweep_would_free(client, store,
                                                                        store_dir, tmp_path,
                                                                        monkeypatch):
    """`cairn gc --dry-run` is the plan of `cairn gc`: the objects of a run the purge would
    remove are in its garbage, as they are in the real run's."""
    import json

    from .test_gc import cli, stored

    run_id = run_with_artifacts(tmp_path, {"t.txt": b"in the trash long enough" * 20})
    digest = client.list_artifacts(run_id)[0].digest
    client.delete_run(run_id)
    backdate(store.objects)
    monkeypatch.setenv("CAIRN_TRASH_DAYS", "0")
    dry = json.loads(cli(store_dir, "gc", "--dry-run", "--json", "--grace", "0").stdout)
    assert [i["identifier"] for i in dry["purge"]["purged"]] == [run_id]
    assert digest in stored(store.objects)
    real = json.loads(cli(store_dir, "gc", "--json", "--grace", "0").stdout)
    assert digest not in stored(store.objects)
    assert real["freed"] == dry["garbage"] >= 1
    assert real["freed_bytes"] == dry["garbage_bytes"]


def test_artifacts_only_the_journals_name_are_kept(client, store, tmp_path):
    """A record replay set aside (quarantine: kept to be repaired) and a record of a run the
    index has not got yet (its creation record has not arrived) name objects the index does
    not: gc keeps them."""
    from .test_gc import stored

    from cairn.store import journal, quarantine

    quarantined = store.objects.put_bytes(b"named by a quarantined record" * 10)
    pending = store.objects.put_bytes(b"named by a record waiting for its run" * 10)
    backdate(store.objects)
    run = client.create_run(name="has a quarantined record")
    wid = "ef" * 8
    jdir = store.root / "runs" / run.id / "journal"
    jdir.mkdir(parents=True, exist_ok=True)
    # a record the index refuses (a lone surrogate is no UTF-8): replay sets it aside
    (jdir / f"{wid}.cjl").write_bytes(journal.encode_batch(RecordBatch(
        run_id=run.id, writer_id=wid, seq=1, time=int(time.time() * 1000),
        params={"p": "x\ud800y"}, artifacts=(FileEntry("q.txt", 290, quarantined),))))
    store.recover()
    assert quarantine.list_run(store.root, run.id)
    lost_run = "ab" * 16  # a run directory without its creation record yet
    ldir = store.root / "runs" / lost_run / "journal"
    ldir.mkdir(parents=True)
    (ldir / f"{'12' * 8}.cjl").write_bytes(journal.encode_batch(RecordBatch(
        run_id=lost_run, writer_id="12" * 8, seq=2, time=int(time.time() * 1000),
        artifacts=(FileEntry("p.txt", 370, pending),))))
    collect(store, grace_s=0)
    assert {quarantined, pending} <= stored(store.objects)


def test_a_model_registered_from_an_expired_run_during_gc_keeps_its_files(client, store,
                                                                           tmp_path,
                                                                           monkeypatch):
    """The mark finds a run's artifact TTL passed (its files garbage); before the sweep the
    run's files are registered as a model version (which makes the run a source, and its
    files the model's): the sweep must not take them."""
    from cairn.lifecycle import retention as R
    from cairn.registry.from_run import register_from_run
    from cairn.registry.service import Registry

    weights = b"weights of a model registered while gc sweeps" * 100
    run_id = run_with_artifacts(tmp_path, {"w.bin": weights})
    R.set_artifacts_ttl(store, run_id, 1, actor="test")
    backdate(store.objects)
    later = int(time.time() * 1000) + 3 * 86_400_000
    original = roots.Marker.mark
    calls: list[int] = []

    def mark(self):
        out = original(self)
        calls.append(1)
        if len(calls) == 2:  # after the re-mark, before the sweep
            register_from_run(Registry(client), "late-model", run_id, "w.bin")
        return out

    monkeypatch.setattr(roots.Marker, "mark", mark)
    collect(store, grace_s=0, now_ms=later)
    monkeypatch.setattr(roots.Marker, "mark", original)
    digest = hashlib.sha256(weights).hexdigest()
    store.objects.drop_caches()
    assert store.objects.get_bytes(digest) == weights
