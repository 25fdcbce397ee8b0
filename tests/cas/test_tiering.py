"""Tiering: a cold object store beside the hot one (cairn.cas.tiering).

Local hot store with a cold directory and with a cold S3 bucket (the moto server): moves,
transparent reads of loose objects, chunks and packs, last-read tracking, dry runs, a
move killed at each of its steps, and cold stores that cannot be written or reached.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from s3_fixtures import s3_bucket, s3_client, s3_endpoint, s3_env  # noqa: F401  (fixtures)
from test_cas_backends import (  # noqa: F401  (collected again, on a tiered backend)
    test_empty_object, test_iter_oids_and_delete, test_malformed_oid_is_rejected,
    test_missing_object_is_not_found, test_put_get_round_trip,
)

from cairn.cas import ObjectStore
from cairn.cas.packs import PackWriter
from cairn.cas.tiering import (
    DAY_MS, TieredBackend, _merge_by_shard, configure, find_tiered, move_cold,
)
from cairn.errors import InvalidArgument, NotFound, StoreUnavailable

ROOT = Path(__file__).resolve().parents[2]
DAY = DAY_MS


@pytest.fixture(params=["dir", "s3"])
def cold(request, tmp_path):
    """A cold tier: ``(spec, endpoint_url)``."""
    if request.param == "dir":
        return str(tmp_path / "cold"), None
    bucket = request.getfixturevalue("s3_bucket")
    return f"s3://{bucket}/cold", request.getfixturevalue("s3_endpoint")


@pytest.fixture
def backend(tmp_path):
    """The conformance suite's backend: a tiered local store with a cold directory."""
    store = ObjectStore.local(tmp_path / "hot")
    configure(store, str(tmp_path / "cold"))
    return store.backend


def _hot_files(root: Path) -> set[str]:
    return {p.parent.name + p.name for p in root.glob("??/*") if not p.name.startswith(".")}


def _fill(store: ObjectStore, tmp_path: Path) -> dict:
    """Loose objects, a chunked file and a pack: what a store holds."""
    loose = [store.put_bytes(f"object {i}\n".encode() * (i + 1)) for i in range(8)]
    big = tmp_path / "big.bin"
    big.write_bytes(random.Random(1).randbytes(300_000))
    entry = store.put_file(big, "big.bin")
    members = {f"member {i}".encode(): None for i in range(5)}
    with PackWriter(store) as pw:
        for content in members:
            import hashlib

            oid = hashlib.sha256(content).hexdigest()
            members[content] = oid
            pw.add(oid, content)
    return {"loose": loose, "entry": entry, "members": members}


def test_move_then_read_transparently(tmp_path, cold):
    spec, endpoint = cold
    hot = tmp_path / "store" / "objects"
    store = ObjectStore.local(hot, chunk_threshold=64 * 1024)
    made = _fill(store, tmp_path)
    before = set(store.backend.iter_oids())
    assert len(made["entry"].chunks) > 1 and store.packs.packs()
    configure(store, spec, endpoint)

    now = store.backend.config().since + 31 * DAY
    report = move_cold(store, older_than_days=30, now=now)
    assert report.moved == report.candidates == len(before) and report.moved_bytes > 0
    assert _hot_files(hot) == set()  # everything left the hot store

    # A new process's store, without any setting, finds the cold tier from tiers.json.
    again = ObjectStore.local(hot, chunk_threshold=64 * 1024)
    assert list(again.backend.iter_oids()).__len__() == len(before)
    assert set(again.backend.iter_oids()) == before
    for i, oid in enumerate(made["loose"]):
        assert again.get_bytes(oid) == f"object {i}\n".encode() * (i + 1)
    out = again.checkout(made["entry"], tmp_path / "out" / "big.bin")
    assert out.read_bytes() == (tmp_path / "big.bin").read_bytes()
    for content, oid in made["members"].items():  # a pack moved cold serves its members
        assert again.get_bytes(oid) == content
    assert all(again.has(o) for o in before) and not again.missing(before)
    assert again.backend.size(made["loose"][0]) > 0
    result = again.verify()
    assert result.ok and result.checked == len(before)

    # Written again: nothing new in the hot store (it is stored, cold).
    assert again.put_bytes(b"object 0\n") == made["loose"][0]
    assert _hot_files(hot) == set()


def test_delete_removes_from_both_tiers_and_listing_dedups(tmp_path, cold):
    spec, endpoint = cold
    store = ObjectStore.local(tmp_path / "hot")
    a, b = store.put_bytes(b"a" * 100), store.put_bytes(b"b" * 100)
    configure(store, spec, endpoint)
    move_cold(store, older_than_days=0, now=store.backend.config().since + 1)
    tb = store.backend
    tb.hot.put(a, tb.cold().get(a))  # both tiers hold a, as after an interrupted move
    assert sorted(tb.iter_oids()) == sorted([a, b])
    tb.delete(a)
    tb.delete(b)
    assert not store.has(a) and not store.has(b)
    assert list(tb.iter_oids()) == [] and list(tb.cold().iter_oids()) == []
    with pytest.raises(NotFound, match="cold tier"):
        tb.delete(a)
    with pytest.raises(NotFound):
        store.get_bytes(b)


def test_recently_read_objects_stay_and_dry_run_moves_nothing(tmp_path, cairn_clock):
    hot = tmp_path / "hot"
    store = ObjectStore.local(hot)
    read, unread = store.put_bytes(b"read often" * 10), store.put_bytes(b"never read" * 10)
    configure(store, str(tmp_path / "cold"))
    cairn_clock.advance(20 * 86400)
    reader = ObjectStore.local(hot)  # another store object: as another process would
    assert reader.get_bytes(read) == b"read often" * 10
    reader.backend.close()  # records its reads (a process does at exit, or every 5 s)
    cairn_clock.advance(11 * 86400)

    dry = move_cold(store, older_than_days=30, dry_run=True)
    assert (dry.candidates, dry.moved, dry.oids) == (1, 0, [unread])
    assert _hot_files(hot) == {read, unread}
    assert not any((tmp_path / "cold").rglob("*/*"))

    report = move_cold(store, older_than_days=30)
    assert (report.moved, report.oids) == ([1, [unread]][0], [unread])
    assert _hot_files(hot) == {read}
    # A read of a cold object does not bring it back, and is still correct.
    assert reader.get_bytes(unread) == b"never read" * 10
    assert _hot_files(hot) == {read}


def test_reads_are_not_counted_before_a_cold_tier_nor_by_verify(tmp_path, cairn_clock):
    hot = tmp_path / "hot"
    store = ObjectStore.local(hot)
    oid = store.put_bytes(b"x" * 100)
    store.get_bytes(oid)
    store.backend.close()
    assert not (hot / "tier-index.sqlite").exists()  # no tier: nothing tracked
    configure(store, str(tmp_path / "cold"))
    cairn_clock.advance(40 * 86400)
    assert store.verify().ok  # a check, not a use
    store.backend.close()
    assert move_cold(store, older_than_days=30).moved == 1


def test_the_setting_records_the_tier_and_a_store_keeps_it(tmp_path, monkeypatch):
    hot = tmp_path / "hot"
    monkeypatch.setenv("CAIRN_COLD_OBJECTS", str(tmp_path / "cold"))
    store = ObjectStore.local(hot)
    oid = store.put_bytes(b"y" * 100)
    assert store.backend.config(fresh=True).cold == str(tmp_path / "cold")
    assert (hot / "tiers.json").exists()
    move_cold(store, older_than_days=0)
    monkeypatch.delenv("CAIRN_COLD_OBJECTS")
    assert ObjectStore.local(hot).get_bytes(oid) == b"y" * 100
    monkeypatch.setenv("CAIRN_COLD_OBJECTS", str(tmp_path / "elsewhere"))
    with pytest.warns(UserWarning, match="already have the cold tier"):
        assert ObjectStore.local(hot).get_bytes(oid) == b"y" * 100


def test_a_running_reader_finds_objects_moved_after_it_opened(tmp_path):
    hot = tmp_path / "hot"
    reader = ObjectStore.local(hot)
    oid = reader.put_bytes(b"z" * 100)
    assert reader.get_bytes(oid)  # opened, and saw no cold tier
    mover = ObjectStore.local(hot)
    configure(mover, str(tmp_path / "cold"))
    move_cold(mover, older_than_days=0)
    assert reader.get_bytes(oid) == b"z" * 100


def test_bad_cold_tiers_are_refused(tmp_path):
    store = ObjectStore.local(tmp_path / "hot")
    store.put_bytes(b"keep me" * 10)
    for bad in ("", "ftp://host/x", "s3://", "bad\x00path", "\ud800"):
        with pytest.raises(InvalidArgument):
            configure(store, bad)
    with pytest.raises(InvalidArgument, match="hot object store itself"):
        configure(store, str(tmp_path / "hot"))
    with pytest.raises(InvalidArgument, match="no cold tier"):
        move_cold(store, older_than_days=0)
    configure(store, str(tmp_path / "cold"))
    configure(store, str(tmp_path / "cold"))  # idempotent
    with pytest.raises(InvalidArgument, match="cannot be changed"):
        configure(store, str(tmp_path / "other"))
    for days in (-1, float("nan"), float("inf")):
        with pytest.raises(InvalidArgument):
            move_cold(store, older_than_days=days)
    assert len(_hot_files(tmp_path / "hot")) == 1


def test_unwritable_and_unreachable_cold_tiers_name_themselves(tmp_path, s3_env,  # noqa: F811
                                                                s3_endpoint):  # noqa: F811
    hot = tmp_path / "hot"
    store = ObjectStore.local(hot)
    oids = {store.put_bytes(f"{i}".encode() * 50) for i in range(3)}
    blocker = tmp_path / "cold"
    configure(store, str(blocker))
    move_cold(store, older_than_days=0)  # everything cold
    oids |= {store.put_bytes(f"new {i}".encode() * 50) for i in range(3)}

    # The cold directory went away (an unmounted disk): reads and moves say so.
    blocker.rename(tmp_path / "unmounted")
    cold_one = next(o for o in oids if o not in _hot_files(hot))
    with pytest.raises(StoreUnavailable, match=f"cold tier {blocker}.*not there"):
        ObjectStore.local(hot).get_bytes(cold_one)
    with pytest.raises(InvalidArgument, match=f"cold tier {blocker} is not there"):
        move_cold(store, older_than_days=0)
    # ... or cannot be written (a file where a shard directory would go).
    (tmp_path / "unmounted").rename(blocker)
    for shard in {o[:2] for o in _hot_files(hot)}:
        (blocker / shard).mkdir(exist_ok=True)
        (blocker / shard).rmdir()
        (blocker / shard).write_bytes(b"in the way")
    with pytest.raises(StoreUnavailable, match=f"the cold tier {blocker} could not store"):
        move_cold(store, older_than_days=0)
    again = ObjectStore.local(hot)
    assert all(again.get_bytes(o) for o in oids)  # nothing lost

    # An S3 cold tier nobody answers for.
    hot2 = ObjectStore.local(tmp_path / "hot2")
    hot2.put_bytes(b"q" * 100)
    configure(hot2, "s3://nowhere/cold", "http://127.0.0.1:9")
    with pytest.raises(StoreUnavailable, match="cold tier s3://nowhere/cold"):
        move_cold(hot2, older_than_days=0)
    assert len(_hot_files(tmp_path / "hot2")) == 1

    # An S3 cold tier that refuses writes (its bucket is not there).
    hot3 = ObjectStore.local(tmp_path / "hot3")
    kept = hot3.put_bytes(b"k" * 100)
    configure(hot3, "s3://no-such-bucket-here/cold", s3_endpoint)
    with pytest.raises(StoreUnavailable,
                       match="cold tier s3://no-such-bucket-here/cold could not store.*bucket was not"):
        move_cold(hot3, older_than_days=0)
    assert hot3.get_bytes(kept) == b"k" * 100 and len(_hot_files(tmp_path / "hot3")) == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_cold_directory(tmp_path):
    store = ObjectStore.local(tmp_path / "hot")
    oid = store.put_bytes(b"r" * 100)
    configure(store, str(tmp_path / "cold"))
    (tmp_path / "cold").chmod(0o555)
    try:
        with pytest.raises(Exception, match=f"cold tier {tmp_path / 'cold'}"):
            move_cold(store, older_than_days=0)
    finally:
        (tmp_path / "cold").chmod(0o755)
    assert store.get_bytes(oid) == b"r" * 100


KILLED_MOVE = textwrap.dedent("""
    import os, sys, time
    from cairn.cas import ObjectStore
    from cairn.cas import tier_move, tier_state
    from cairn.cas.backends.local import LocalBackend
    from cairn.cas.tiering import move_cold

    step, after = sys.argv[2], 5
    calls = {"n": 0}
    def pause_after(fn):
        def wrapper(self, *args):
            out = fn(self, *args)
            if step_applies(self):
                calls["n"] += 1
                if calls["n"] == after:
                    print("PAUSED", flush=True)
                    time.sleep(60)
            return out
        return wrapper
    hot_root = os.path.abspath(sys.argv[1])
    def step_applies(self):
        if step == "index":
            return True
        where = str(self.root)
        return where.startswith(hot_root) if step == "delete" else not where.startswith(hot_root)
    if step == "put":
        LocalBackend.put = pause_after(LocalBackend.put)
    elif step == "index":
        tier_state.TierIndex.add_cold = pause_after(tier_state.TierIndex.add_cold)
    else:
        LocalBackend.delete = pause_after(LocalBackend.delete)
    move_cold(ObjectStore.local(sys.argv[1]), older_than_days=0)
""")


@pytest.mark.parametrize("step", ["put", "index", "delete"])
def test_a_move_killed_at_any_step_loses_nothing(tmp_path, step):
    hot = tmp_path / "hot"
    store = ObjectStore.local(hot)
    contents = {store.put_bytes(f"obj {i}".encode() * 40): f"obj {i}".encode() * 40
                for i in range(20)}
    configure(store, str(tmp_path / "cold"))
    proc = subprocess.Popen([sys.executable, "-c", KILLED_MOVE, str(hot), step],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    try:
        line = proc.stdout.readline()
        assert line.strip() == "PAUSED", proc.stderr.read()
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    after_kill = ObjectStore.local(hot)
    assert set(after_kill.backend.iter_oids()) == set(contents)
    for oid, content in contents.items():
        assert after_kill.get_bytes(oid) == content
    assert 0 < len(_hot_files(hot)) < len(contents)

    report = move_cold(after_kill, older_than_days=0)  # the next run finishes the job
    assert report.moved == report.candidates and _hot_files(hot) == set()
    final = ObjectStore.local(hot)
    assert final.verify().ok and final.verify().checked == len(contents)
    assert sorted(final.backend.iter_oids()) == sorted(contents)


def test_merge_by_shard_lists_each_oid_once():
    rng = random.Random(7)
    for _ in range(50):
        pool = [rng.randbytes(32).hex() for _ in range(rng.randint(0, 60))]
        pool += [f"{s:02x}" + "0" * 62 for s in rng.sample(range(256), 3)]
        hot = {o for o in pool if rng.random() < 0.6}
        cold = {o for o in pool if o not in hot or rng.random() < 0.3}
        hot_order = [o for shard in sorted({o[:2] for o in hot})
                     for o in rng.sample(sorted(o for o in hot if o[:2] == shard),
                                         len([o for o in hot if o[:2] == shard]))]
        merged = list(_merge_by_shard(iter(hot_order), iter(sorted(cold))))
        assert len(merged) == len(set(merged)) and set(merged) == hot | cold


def test_non_local_backends_are_left_alone_and_found_under_encryption_like_layers(tmp_path):
    from cairn.cas import MemoryBackend
    from cairn.cas.tiering import tiered

    mem = MemoryBackend()
    assert tiered(mem) is mem
    tb = ObjectStore.local(tmp_path / "o").backend
    assert find_tiered(tb) is tb and isinstance(tb, TieredBackend)

    class Outer:
        def __init__(self, inner):
            self.inner = inner

    assert find_tiered(Outer(Outer(tb))) is tb and find_tiered(Outer(mem)) is None
    with pytest.raises(InvalidArgument, match="cannot have a cold tier"):
        configure(ObjectStore(mem), str(tmp_path / "cold"))


def test_gc_sweeps_both_tiers_and_keeps_what_is_referenced(tmp_path, monkeypatch):
    import time

    import cairn
    import cairn.lifecycle.gc as gclib
    from cairn.lifecycle.gc import collect

    # Seconds-old objects stand for old ones here: gc's floor for records still in a
    # writer's buffer (30 s whatever the grace) would keep every one of them.
    monkeypatch.setattr(gclib, "WRITE_WINDOW_S", 0.0)
    monkeypatch.setenv("CAIRN_CAPTURE_ENV", "0")
    client = cairn.Client(str(tmp_path / ".cairn"))
    run = client.create_run()
    (tmp_path / "kept.txt").write_text("referenced\n" * 30)
    client.log_artifact(run.id, tmp_path / "kept.txt")
    client.set_terminated(run.id)
    objects = client.store.objects
    cold_orphan = objects.put_bytes(b"garbage, moved cold" * 10)
    configure(objects, str(tmp_path / "cold"))
    move_cold(objects, older_than_days=0)
    hot_orphan = objects.put_bytes(b"garbage, still hot" * 10)
    tb = find_tiered(objects.backend)
    # A put of a cold object makes it young: gc must not take it from under a writer.
    young = objects.put_bytes(b"young again" * 10)
    move_cold(objects, older_than_days=0)
    assert young not in _hot_files(tmp_path / ".cairn" / "objects")
    # Everything is older than the grace period (and gc's 30 s write window) ...
    when = time.time() - 2 * 86_400
    for f in [*(tmp_path / ".cairn" / "objects").glob("??/*"), *(tmp_path / "cold").glob("??/*")]:
        os.utime(f, (when, when))
    if tb.index is not None:
        tb.index._write("UPDATE cold SET moved_at = ?", [(int(when * 1000),)])
    assert tb.freshen(young)  # ... but this, put again just now

    done = collect(client.store, grace_s=1.0)
    assert not objects.has(cold_orphan) and not objects.has(hot_orphan)
    assert objects.has(young)  # freshened after the cutoff
    assert cold_orphan not in {p.parent.name + p.name for p in (tmp_path / "cold").glob("??/*")}
    assert done.freed >= 2
    client.download_artifacts(run.id, "", tmp_path / "out")
    assert (tmp_path / "out" / "kept.txt").read_text() == "referenced\n" * 30
    assert objects.verify().ok


def test_s3_hot_store_with_a_cold_directory(tmp_path, s3_bucket, s3_endpoint, cairn_clock):  # noqa: F811
    from cairn.server.serve import open_objects

    store = open_objects(f"s3://{s3_bucket}/hot", s3_endpoint)
    tb = find_tiered(store.backend)
    assert tb is not None and tb.index is None  # no shared file: reads go in batches
    read, unread = store.put_bytes(b"read in s3" * 20), store.put_bytes(b"cold in s3" * 20)
    configure(store, str(tmp_path / "cold"))
    keys = {o["Key"] for o in tb.client.list_objects_v2(Bucket=s3_bucket)["Contents"]}
    assert "hot/tiers.json" in keys

    cairn_clock.advance(25 * 86400)
    other = open_objects(f"s3://{s3_bucket}/hot", s3_endpoint)  # another replica
    assert other.get_bytes(read) == b"read in s3" * 20
    other.backend.close()
    cairn_clock.advance(10 * 86400)
    report = move_cold(store, older_than_days=30, now=cairn_clock.now_ms())
    assert report.oids == [unread]
    assert not tb.hot.exists(unread) and tb.hot.exists(read)
    fresh = open_objects(f"s3://{s3_bucket}/hot", s3_endpoint)
    assert fresh.get_bytes(unread) == b"cold in s3" * 20 and fresh.has(unread)
    assert sorted(fresh.backend.iter_oids()) == sorted([read, unread])
    assert fresh.verify().ok
    batches = [k for k in (o["Key"] for o in tb.client.list_objects_v2(
        Bucket=s3_bucket, Prefix="hot/tier-reads/").get("Contents", ()))]
    assert len(batches) == 1  # merged by the move, the moved object's read dropped
    fresh.backend.delete(unread)
    assert not fresh.has(unread) and not any((tmp_path / "cold").glob("??/*"))


def test_an_encrypted_store_moves_ciphertext(tmp_path, monkeypatch):
    import base64

    monkeypatch.setenv("CAIRN_MASTER_KEY", base64.b64encode(bytes(range(32))).decode())
    store = ObjectStore.local(tmp_path / "hot")
    secret = b"a secret line that must never be stored in clear\n" * 20
    oid = store.put_bytes(secret)
    assert find_tiered(store.backend) is not None and store.backend is not find_tiered(
        store.backend)  # encryption outside, tiering inside
    configure(store, str(tmp_path / "cold"))
    assert move_cold(store, older_than_days=0).moved >= 1
    cold_files = list((tmp_path / "cold").glob("??/*"))
    assert cold_files and not any(b"secret line" in p.read_bytes() for p in cold_files)
    assert ObjectStore.local(tmp_path / "hot").get_bytes(oid) == secret
    monkeypatch.delenv("CAIRN_MASTER_KEY")
    from cairn.errors import EncryptionError

    with pytest.raises(EncryptionError):
        ObjectStore.local(tmp_path / "hot").get_bytes(oid)


READER = textwrap.dedent("""
    import hashlib, sys, time
    from cairn.cas import ObjectStore
    store = ObjectStore.local(sys.argv[1])
    oids = sys.argv[2].split(",")
    print("READY", flush=True)
    reads, deadline = 0, time.monotonic() + float(sys.argv[3])
    while time.monotonic() < deadline:
        for oid in oids:
            assert hashlib.sha256(store.get_bytes(oid)).hexdigest() == oid
            reads += 1
    print("READS", reads, flush=True)
""")


@pytest.mark.slow
def test_readers_in_other_processes_never_miss_an_object_during_a_move(tmp_path):
    hot = tmp_path / "hot"
    store = ObjectStore.local(hot)
    oids = [store.put_bytes(f"shared {i}".encode() * 30) for i in range(150)]
    configure(store, str(tmp_path / "cold"))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    readers = [subprocess.Popen([sys.executable, "-c", READER, str(hot), ",".join(oids), "4"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env) for _ in range(3)]
    try:
        for r in readers:
            assert r.stdout.readline().strip() == "READY"
        report = move_cold(store, older_than_days=0)
        outs = [r.communicate(timeout=60) for r in readers]
    finally:
        for r in readers:
            if r.poll() is None:
                r.kill()
                r.communicate()
    assert report.moved == len(oids) and _hot_files(hot) == set()
    for r, (out, err) in zip(readers, outs):
        assert r.returncode == 0, err
        assert int(out.split()[-1]) >= len(oids)


def test_the_days_setting(tmp_path, monkeypatch):
    store = ObjectStore.local(tmp_path / "hot")
    store.put_bytes(b"d" * 100)
    configure(store, str(tmp_path / "cold"))
    later = store.backend.config().since + 10 * DAY
    assert move_cold(store, dry_run=True, now=later).candidates == 0  # default: 30 days
    monkeypatch.setenv("CAIRN_TIER_AFTER_DAYS", "7")
    report = move_cold(store, dry_run=True, now=later)
    assert (report.older_than_days, report.candidates) == (7.0, 1)
    monkeypatch.setenv("CAIRN_TIER_AFTER_DAYS", "soon")
    with pytest.raises(InvalidArgument, match="CAIRN_TIER_AFTER_DAYS='soon'"):
        move_cold(store, now=later)


def test_one_index_shared_by_threads(tmp_path):
    import threading

    from cairn.cas.tier_state import TierIndex

    index = TierIndex(tmp_path / "tier-index.sqlite")
    oids = [f"{i:064x}" for i in range(300)]
    errors: list[BaseException] = []

    def counting() -> None:
        try:
            for i in range(0, 300, 3):
                index.record_reads({o: i for o in oids[i:i + 3]})
        except BaseException as exc:  # pragma: no cover - what the test looks for
            errors.append(exc)

    def moving() -> None:
        try:
            for i, oid in enumerate(oids):
                index.add_cold(oid, i, i)
                assert index.touch_cold(oid, i + 1)
                if i % 2:
                    assert index.remove_cold_if_old(oid, i + 2) == i
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=f) for f in (counting, moving, counting)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert list(index.iter_cold()) == oids[0::2] and len(index.last_reads()) == 300
    index.close()


def test_a_damaged_tiers_file_is_named_and_the_hot_store_still_works(tmp_path):
    hot = tmp_path / "hot"
    store = ObjectStore.local(hot)
    moved = store.put_bytes(b"moved" * 30)
    configure(store, str(tmp_path / "cold"))
    move_cold(store, older_than_days=0)
    (hot / "tiers.json").write_text("{not json")
    damaged = ObjectStore.local(hot)
    kept = damaged.put_bytes(b"new" * 30)  # stored hot
    assert damaged.get_bytes(kept) == b"new" * 30
    with pytest.raises(InvalidArgument, match="tiers.json is damaged"):
        damaged.get_bytes(moved)
    with pytest.raises(InvalidArgument, match="tiers.json is damaged"):
        move_cold(damaged, older_than_days=0)
