"""cairn gc on a local store: every kind of root kept, garbage collected, dry run, grace,
the deduplicated-write race, packs, leftovers of killed writers, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import cairn
from cairn.cas.backends.base import capability
from cairn.errors import InvalidArgument
from cairn.lifecycle.gc import collect, parse_duration
from cairn.lifecycle.roots import referenced

DAY = 86_400


def lb(objects):
    """The local directory under the layers (tiering, encryption) a store may add."""
    from cairn.cas.backends.local import LocalBackend

    b = objects.backend
    while not isinstance(b, LocalBackend):
        b = next(getattr(b, a) for a in ("inner", "hot", "backend") if hasattr(b, a))
    return b


def backdate(objects, seconds: float = 2 * DAY) -> None:
    """Make every stored object (and temp file) look ``seconds`` old."""
    root = lb(objects).root
    when = time.time() - seconds
    for shard in root.iterdir():
        if shard.is_dir() and len(shard.name) == 2:
            for f in shard.iterdir():
                os.utime(f, (when, when))


def stored(objects) -> set[str]:
    return set(objects.backend.iter_oids())


def garbage(objects, n: int = 3, tag: str = "g", age: float = 120) -> list[str]:
    """``n`` unreferenced objects, ``age`` seconds old (gc keeps what was written in the last
    WRITE_WINDOW_S seconds, whatever the grace)."""
    oids = [objects.put_bytes(f"garbage {tag} {i}".encode() * 20) for i in range(n)]
    when = time.time() - age
    for oid in oids:
        os.utime(lb(objects).path(oid), (when, when))
    return oids


def check_kept(objects, oids) -> None:
    oids = set(oids)
    assert oids, "nothing referenced: the test would prove nothing"
    result = objects.verify(oids)
    assert result.ok and result.checked == len(oids), result


def run_with_artifacts(tmp_path: Path, files: dict[str, bytes]) -> str:
    src = tmp_path / f"art-{time.monotonic_ns()}"
    src.mkdir()
    for name, data in files.items():
        (src / name).write_bytes(data)
    with cairn.start_run() as run:
        cairn.log_artifacts(str(src))
    return run.id


@pytest.fixture
def store(client):
    return client.store


# -- roots, one kind at a time ------------------------------------------------------------

def test_run_artifacts_are_kept_and_garbage_is_collected(client, store, tmp_path):
    big = os.urandom(5 * 1024 * 1024)  # chunked: its chunks are the roots, not its digest
    run_id = run_with_artifacts(tmp_path, {"a.txt": b"alpha", "big.bin": big})
    junk = garbage(store.objects)
    roots = referenced(store)
    assert len(roots) > 3 and not roots & set(junk)
    report = collect(store, grace_s=0)
    assert report.freed == len(junk) and report.garbage == len(junk)
    assert not stored(store.objects) & set(junk)
    check_kept(store.objects, roots)
    out = tmp_path / "out"
    client.download_artifacts(run_id, "", out)
    assert (out / "big.bin").read_bytes() == big


def test_model_versions_are_roots(client, store, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"w" * 4000)
    client.register_model("m", model)
    tree = store.objects.get_tree(_tree_of(store, "m"))
    junk = garbage(store.objects)
    collect(store, grace_s=0)
    check_kept(store.objects, {e.digest for e in tree})
    assert not stored(store.objects) & set(junk)


def _tree_of(store, name: str) -> str:
    import sqlalchemy as sa

    from cairn.store.sql import tables as T

    with store.index.read() as conn:
        return conn.execute(sa.select(T.model_versions.c.tree_oid)
                            .where(T.model_versions.c.name == name)).scalar_one()


def test_data_set_versions_and_their_packs_are_roots(client, store, tmp_path):
    d = tmp_path / "ds"
    d.mkdir()
    for i in range(20):
        (d / f"f{i}.txt").write_text(f"row {i}\n" * 10)
    v = client.data.add(d, "ds")
    assert v.packs, "small files are packed"
    junk = garbage(store.objects)
    collect(store, grace_s=0)
    check_kept(store.objects, {v.tree, *v.packs})
    assert not stored(store.objects) & set(junk)
    out = tmp_path / "out"
    client.data.checkout("ds@1", out)
    assert (out / "f7.txt").read_text() == "row 7\n" * 10


def test_a_runs_code_snapshot_is_a_root(store_dir, tmp_path):
    from cairn.environment import source_oids

    script = tmp_path / "train_script.py"
    script.write_text("import cairn\nwith cairn.start_run() as r:\n    print('RUN', r.id)\n")
    env = {**os.environ, "CAIRN_TRACKING_URI": str(store_dir), "CAIRN_CAPTURE_ENV": "1"}
    out = subprocess.run([sys.executable, str(script)], env=env, cwd=tmp_path,
                         capture_output=True, text=True, check=True)
    run_id = out.stdout.split("RUN", 1)[1].strip()
    client = cairn.Client(str(store_dir))
    oids = source_oids(client.get_run(run_id).env)
    assert oids, "the script's source was captured"
    junk = garbage(client.store.objects)
    collect(client.store, grace_s=0)
    check_kept(client.store.objects, oids)
    assert not stored(client.store.objects) & set(junk)


def test_pipeline_cache_records_are_roots(client, store, tmp_path):
    from cairn.pipelines.cache import RECORD_TAG, save_record

    d = tmp_path / "out.txt"
    d.write_text("out\n")
    v = client.data.add(d, "out.txt")
    record = save_record(client, {"key": "k" * 64, "stage": "s",
                                  "outs": {"out.txt": {"digest": "x", "kind": "file",
                                                       "tree": v.tree, "dataset": "out.txt",
                                                       "version": 1}}})
    run = client.create_run(name="stage")
    client.set_tag(run.id, RECORD_TAG, record)
    client.set_terminated(run.id)
    junk = garbage(store.objects)
    collect(store, grace_s=0)
    check_kept(store.objects, {record, v.tree})
    assert not stored(store.objects) & set(junk)


def test_the_trash_is_a_root_until_it_is_purged(client, store, tmp_path):
    run_id = run_with_artifacts(tmp_path, {"kept.txt": b"in the trash, still mine"})
    digest = client.list_artifacts(run_id)[0].digest
    client.delete_run(run_id)
    collect(store, grace_s=0)
    check_kept(store.objects, {digest})
    from cairn.lifecycle.trash import purge

    purge(store, older_than_ms=None, now_ms=int(time.time() * 1000), dry_run=False, actor="test")
    backdate(store.objects)
    collect(store, grace_s=0)
    assert digest not in stored(store.objects)


def test_expired_artifacts_are_garbage_unless_kept(client, store, tmp_path):
    from cairn.lifecycle.retention import EXPIRES_TAG

    now = int(time.time() * 1000)
    expired = run_with_artifacts(tmp_path, {"e.txt": b"expired artifact"})
    kept = run_with_artifacts(tmp_path, {"k.txt": b"expired but tagged keep"})
    later = run_with_artifacts(tmp_path, {"l.txt": b"expires tomorrow"})
    for rid, when in ((expired, now - 1), (kept, now - 1), (later, now + DAY * 1000)):
        client.set_tag(rid, EXPIRES_TAG, str(when))
    client.set_tag(kept, "keep", "true")
    digests = {rid: client.list_artifacts(rid)[0].digest for rid in (expired, kept, later)}
    backdate(store.objects)
    report = collect(store, grace_s=0, now_ms=now)
    assert report.expired_runs == 1
    left = stored(store.objects)
    assert digests[expired] not in left
    assert {digests[kept], digests[later]} <= left
    # The run stays; only its files went.
    assert client.get_run(expired).tags[EXPIRES_TAG] == str(now - 1)


# -- dry run, grace, the race ---------------------------------------------------------------

def test_dry_run_changes_nothing_and_predicts_the_real_run(client, store, tmp_path):
    run_with_artifacts(tmp_path, {"a.txt": b"a" * 300, "b.txt": b"b" * 300})
    junk = garbage(store.objects, 25)
    before = {p: p.stat().st_mtime_ns for p in lb(store.objects).root.rglob("*")}
    dry = collect(store, grace_s=0, dry_run=True)
    after = {p: p.stat().st_mtime_ns for p in lb(store.objects).root.rglob("*")}
    assert before == after
    real = collect(store, grace_s=0)
    assert dry.garbage == real.freed == len(junk)
    assert dry.garbage_bytes == real.freed_bytes > 0
    assert dry.live == real.live and dry.scanned == real.scanned


def test_objects_younger_than_the_grace_are_kept(store):
    junk = garbage(store.objects, 4)
    report = collect(store, grace_s=3600)
    assert report.young == len(junk) and report.freed == 0
    assert set(junk) <= stored(store.objects)
    backdate(store.objects, 2 * 3600)
    report = collect(store, grace_s=3600)
    assert report.freed == len(junk)
    assert not set(junk) & stored(store.objects)


def test_a_run_still_being_written_holds_back_what_is_newer_than_its_start(client, store):
    """A live writer's buffered records may name objects no index shows yet, so gc keeps
    what is newer than the start of the oldest run still running; a run made through
    MLflow's routes (heartbeat far in the future: it never sends one) holds nothing back,
    or one such run left RUNNING would stop every collection for good."""
    from cairn.store.wire import INT64_MAX

    live = client.create_run()
    store.update_run_row(live.id, start_time=int(time.time() * 1000) - 600_000)
    junk = garbage(store.objects, 3, "open", age=120)  # newer than the live run's start
    report = collect(store, grace_s=0)
    assert report.freed == 0 and set(junk) <= stored(store.objects)
    client.set_terminated(live.id)
    forgotten = client.create_run()
    store.update_run_row(forgotten.id, start_time=int(time.time() * 1000) - 90 * 86_400_000,
                         heartbeat=INT64_MAX)
    report = collect(store, grace_s=0)
    assert report.freed == len(junk) and not set(junk) & stored(store.objects)


def test_the_grace_setting_and_durations(store, monkeypatch):
    assert parse_duration("0") == 0 and parse_duration("90") == 90
    assert parse_duration("1d12h") == 1.5 * DAY and parse_duration("30m") == 1800
    for bad in ("", "soon", "-1d", "1x"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    junk = garbage(store.objects, 2)
    monkeypatch.setenv("CAIRN_GC_GRACE", "1h")
    assert collect(store).grace_s == 3600 and set(junk) <= stored(store.objects)
    monkeypatch.setenv("CAIRN_GC_GRACE", "later")
    with pytest.raises(InvalidArgument, match="CAIRN_GC_GRACE"):
        collect(store)
    for bad in (-1, float("nan"), "1d", True):
        with pytest.raises(InvalidArgument):
            collect(store, grace_s=bad)
    assert set(junk) <= stored(store.objects)


def test_a_deduplicated_write_during_gc_keeps_the_old_object(client, store, tmp_path,
                                                             monkeypatch):
    """The classic race: X is old garbage; while gc runs, a writer stores the same content
    (the put finds X and writes nothing) and refers to it after gc marked.  X must stay."""
    content = b"the same bytes, logged again" * 10
    x = store.objects.put_bytes(content)
    backdate(store.objects)
    from cairn.lifecycle import roots

    calls = []
    original = roots.Marker.mark

    def mark_then_write(self):
        out = original(self)
        calls.append(1)
        if len(calls) == 2:  # after the last mark: the writer's put lands now
            assert store.objects.put_bytes(content) == x
        return out

    monkeypatch.setattr(roots.Marker, "mark", mark_then_write)
    report = collect(store, grace_s=3600)
    assert report.kept_meanwhile == 1 and report.freed == 0
    assert x in stored(store.objects)
    # ... and the writer's reference, made after gc, finds its object.
    f = tmp_path / "x.bin"
    f.write_bytes(content)
    monkeypatch.undo()
    with cairn.start_run() as run:
        cairn.log_artifact(str(f))
    assert client.list_artifacts(run.id)[0].digest == x
    check_kept(store.objects, {x})


def test_a_put_of_an_existing_object_freshens_it(store):
    x = store.objects.put_bytes(b"freshen me")
    backdate(store.objects)
    path = lb(store.objects).path(x)
    old = path.stat().st_mtime
    store.objects.put_bytes(b"freshen me")
    assert path.stat().st_mtime > old + DAY
    assert oct(path.stat().st_mode & 0o777) == oct(0o444)


def test_a_reference_made_during_the_mark_is_seen_by_the_re_mark(client, store, tmp_path,
                                                                 monkeypatch):
    from cairn.lifecycle import roots

    f = tmp_path / "late.txt"
    f.write_bytes(b"referenced while gc marks")
    x = store.objects.put_bytes(f.read_bytes())
    backdate(store.objects)
    original = roots.Marker.mark
    calls = []

    def mark(self):
        out = original(self)
        calls.append(1)
        if len(calls) == 1:  # between the two marks: referred to, without any put
            from cairn.entities import FileEntry, RecordBatch

            run = client.create_run(name="late")
            client.store.write(RecordBatch(
                run_id=run.id, writer_id="ab" * 8, seq=1, time=int(time.time() * 1000),
                artifacts=(FileEntry("late.txt", f.stat().st_size, x),)))
        return out

    monkeypatch.setattr(roots.Marker, "mark", mark)
    report = collect(store, grace_s=0)
    assert report.kept_meanwhile >= 1 and x in stored(store.objects)


# -- packs -------------------------------------------------------------------------------

def test_a_mostly_garbage_pack_is_repacked_and_its_live_members_stay_readable(client, store,
                                                                              tmp_path):
    from cairn.cas.packs import PackWriter

    objects = store.objects
    blobs = [f"member {i} ".encode() * 50 for i in range(10)]
    with PackWriter(objects) as w:
        for b in blobs:
            import hashlib

            w.add(hashlib.sha256(b).hexdigest(), b)
    (pack,) = w.written
    live = blobs[:2]
    run_with_artifacts(tmp_path, {f"l{i}.txt": b for i, b in enumerate(live)})
    import hashlib

    live_oids = [hashlib.sha256(b).hexdigest() for b in live]
    for oid in live_oids:  # only packed from now on
        objects.backend.delete(oid)
    backdate(objects)
    dry = collect(store, grace_s=0, dry_run=True)
    assert dry.repacked_packs == 1 and dry.repacked_members == 2
    assert objects.packs.packs() == {pack}
    report = collect(store, grace_s=0)
    assert report.repacked_packs == 1 and report.old_packs_deleted == 1
    assert pack not in stored(objects) and pack not in objects.packs.packs()
    (new,) = objects.packs.packs()
    assert set(objects.packs.locate(live_oids).values()) and all(
        loc.pack == new for loc in objects.packs.locate(live_oids).values())
    objects.drop_caches()
    for oid, b in zip(live_oids, live):
        assert objects.get_bytes(oid) == b
    check_kept(objects, live_oids)
    # The new pack is all live: the next gc leaves it alone.
    again = collect(store, grace_s=0)
    assert again.repacked_packs == 0 and new in stored(objects)


def test_a_repacked_pack_waits_for_the_grace_before_it_is_deleted(client, store, tmp_path):
    import hashlib

    from cairn.cas.packs import PackWriter

    objects = store.objects
    blobs = [f"m{i} ".encode() * 80 for i in range(6)]
    with PackWriter(objects) as w:
        for b in blobs:
            w.add(hashlib.sha256(b).hexdigest(), b)
    (pack,) = w.written
    run_with_artifacts(tmp_path, {"one.txt": blobs[0]})
    objects.backend.delete(hashlib.sha256(blobs[0]).hexdigest())
    backdate(objects)
    report = collect(store, grace_s=3600)
    assert report.repacked_packs == 1 and report.old_packs_deleted == 0
    assert pack in stored(objects) and pack not in objects.packs.packs()  # readers in flight
    backdate(objects)
    collect(store, grace_s=3600)
    assert pack not in stored(objects)
    assert objects.get_bytes(hashlib.sha256(blobs[0]).hexdigest()) == blobs[0]


def test_a_wholly_dead_pack_is_deleted_and_unregistered(store):
    import hashlib

    from cairn.cas.packs import PackWriter

    objects = store.objects
    with PackWriter(objects) as w:
        for i in range(5):
            b = f"dead {i}".encode() * 30
            w.add(hashlib.sha256(b).hexdigest(), b)
    (pack,) = w.written
    backdate(objects)
    report = collect(store, grace_s=0)
    assert report.freed == 1 and pack not in stored(objects)
    assert objects.packs.packs() == set()


# -- leftovers ---------------------------------------------------------------------------

def test_temporary_files_of_killed_writers_go_after_the_grace(store):
    x = store.objects.put_bytes(b"something")
    shard = lb(store.objects).path(x).parent
    old, new = shard / ".tmp-0123abcd-aaaaaaaaaaaa", shard / ".tmp-0123abcd-bbbbbbbbbbbb"
    old.write_bytes(b"half an object")
    new.write_bytes(b"being written")
    when = time.time() - 2 * 3600
    os.utime(old, (when, when))
    dry = collect(store, grace_s=3600, dry_run=True)
    assert (dry.temp_files, dry.temp_bytes) == (1, len(b"half an object")) and old.exists()
    report = collect(store, grace_s=3600)
    assert report.temp_files == 1 and not old.exists() and new.exists()


def test_an_object_left_aside_by_a_killed_gc_is_put_back_if_referenced(client, store,
                                                                        tmp_path):
    run_id = run_with_artifacts(tmp_path, {"r.txt": b"referenced"})
    x = client.list_artifacts(run_id)[0].digest
    y = garbage(store.objects, 1)[0]
    for oid in (x, y):  # what a gc killed between its rename and its unlink leaves
        p = lb(store.objects).path(oid)
        os.rename(p, p.parent / f".gc-{oid[2:]}-deadbeef")
    report = collect(store, grace_s=0)
    assert report.restored == 1
    check_kept(store.objects, {x})
    assert y not in stored(store.objects)
    assert not list(lb(store.objects).root.rglob(".gc-*"))


def test_an_unreadable_file_list_stops_gc_before_it_deletes_anything(client, store, tmp_path):
    from cairn.errors import Conflict

    model = tmp_path / "model"
    model.mkdir()
    (model / "w.bin").write_bytes(b"weights" * 100)
    client.register_model("m", model)
    tree = _tree_of(store, "m")
    junk = garbage(store.objects)
    store.objects.backend.delete(tree)
    with pytest.raises(Conflict, match="model m version"):
        collect(store, grace_s=0)
    assert set(junk) <= stored(store.objects)


def test_gc_needs_a_backend_that_knows_ages(store):
    from cairn.cas.odb import ObjectStore

    class Bare:  # the six verbs and nothing else
        def __getattr__(self, name):
            if name in ("put", "get", "exists", "iter_oids", "delete", "size"):
                return getattr(store.objects.backend, name)
            raise AttributeError(name)

    assert capability(Bare(), "scan") is None
    with pytest.raises(InvalidArgument, match="age of objects"):
        collect(store, grace_s=0, objects=ObjectStore(Bare()))


# -- the command -------------------------------------------------------------------------

def cli(store_dir, *args, check=True):
    env = {**os.environ, "CAIRN_TRACKING_URI": str(store_dir)}
    out = subprocess.run([sys.executable, "-m", "cairn.cli.main", *args], env=env,
                         capture_output=True, text=True)
    if check:
        assert out.returncode == 0, out.stderr
    return out


GC_KEYS = {"dry_run", "grace_s", "started_at", "cutoff", "scanned", "scanned_bytes",
           "referenced", "live", "live_bytes", "young", "young_bytes", "garbage",
           "garbage_bytes", "freed", "freed_bytes", "kept_meanwhile", "packs_kept",
           "repacked_packs", "repacked_members", "repack_garbage_bytes", "old_packs_deleted",
           "old_packs_deleted_bytes", "temp_files", "temp_bytes", "restored", "expired_runs",
           "seconds", "problems", "retention", "purge"}


def test_cli_json_dry_run_then_real_run(client, store, store_dir, tmp_path):
    run_with_artifacts(tmp_path, {"a.txt": b"kept by the run"})
    junk = garbage(store.objects, 5)
    dry = json.loads(cli(store_dir, "gc", "--dry-run", "--json", "--grace", "0").stdout)
    assert set(dry) == GC_KEYS and dry["dry_run"] is True
    assert dry["garbage"] == 5 and set(junk) <= stored(store.objects)
    assert dry["retention"]["dry_run"] is True and dry["purge"]["dry_run"] is True
    real = json.loads(cli(store_dir, "gc", "--json", "--grace", "0").stdout)
    assert real["freed"] == dry["garbage"] and real["freed_bytes"] == dry["garbage_bytes"]
    assert not set(junk) & stored(store.objects)
    skip = json.loads(cli(store_dir, "gc", "--json", "--no-retention", "--no-purge").stdout)
    assert skip["retention"] is None and skip["purge"] is None and skip["grace_s"] == DAY
    text = cli(store_dir, "gc", "--dry-run", "--grace", "0").stdout
    assert "would free" in text


def test_cli_bad_grace_is_a_clear_error(client, store, store_dir):
    junk = garbage(store.objects, 2)
    out = cli(store_dir, "gc", "--grace", "soon", check=False)
    assert out.returncode != 0 and "--grace" in out.stderr and "soon" in out.stderr
    assert set(junk) <= stored(store.objects)


def test_doc_examples_run(tmp_path, monkeypatch, cairn_state):
    from doc_examples import DOCS, run_python

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CAIRN_TRACKING_URI", raising=False)
    run_python(DOCS / "lifecycle.md", section="Garbage collection")


def test_the_guide_documents_every_option_and_json_key():
    import re

    from doc_examples import DOCS

    text = (DOCS / "lifecycle.md").read_text()
    section = text.split("## Garbage collection", 1)[1].split("\n## ", 1)[0]
    for key in GC_KEYS:
        assert f"`{key}`" in section, key
    documented = set(re.findall(r"`(--[a-z-]+)", section))
    from click.testing import CliRunner

    from cairn.cli.main import cli as main

    help_text = CliRunner().invoke(main, ["gc", "--help"]).output
    for option in documented | {"--dry-run", "--json", "--grace", "--no-retention",
                                "--no-purge", "--objects", "--endpoint-url"}:
        assert option in help_text, option


def test_asking_what_is_missing_freshens_what_is_there(store):
    """Uploads and data set ingest ask `missing` and then refer to the objects present
    without storing them: those must become young as a put would make them."""
    import hashlib

    from cairn.cas.packs import PackWriter

    objects = store.objects
    loose = objects.put_bytes(b"present loose")
    packed = b"present in a pack" * 5
    packed_oid = hashlib.sha256(packed).hexdigest()
    with PackWriter(objects) as w:
        w.add(packed_oid, packed)
    (pack,) = w.written
    backdate(objects)
    absent = hashlib.sha256(b"absent").hexdigest()
    assert objects.missing([loose, packed_oid, absent]) == {absent}
    report = collect(store, grace_s=3600)
    assert report.freed == 0 and {loose, pack} <= stored(objects)
    assert report.young == 2


def test_cli_on_a_store_that_is_not_there_creates_nothing(tmp_path):
    missing = tmp_path / "typo"
    out = cli(missing, "gc", "--json", check=False)
    assert out.returncode == 1 and "no Cairn store" in out.stderr
    assert not missing.exists()
