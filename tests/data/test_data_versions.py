"""Data set versions: add, aliases, the hash cache, checkout; user files are only read."""

from __future__ import annotations

import os
import time

import pytest

import cairn
from cairn.data import DataRef, ingest
from cairn.errors import CorruptObject, InvalidArgument, NotFound

from .conftest import make_tree, snapshot


def test_add_makes_numbered_versions_and_leaves_files_untouched(ds, small_tree):
    before = snapshot(small_tree)
    v1 = ds.add(small_tree, "sales", "first", aliases=["gold"])
    assert (v1.ref, v1.files, v1.created, v1.aliases) == ("sales@1", 61, True, ("gold",))
    assert v1.size == sum(len(b) for b, _, _ in before.values())
    again = ds.add(small_tree, "sales")
    assert (again.ref, again.created) == ("sales@1", False)  # nothing changed: no new version
    (small_tree / "part0" / "f000.txt").write_bytes(b"edited\n")
    v2 = ds.add(small_tree, "sales", "second")
    assert (v2.version, v2.created, v2.message) == (2, True, "second")
    assert snapshot(small_tree).keys() == before.keys()  # nothing created or removed
    assert {k: v for k, v in snapshot(small_tree).items() if k != "part0/f000.txt"} == \
        {k: v for k, v in before.items() if k != "part0/f000.txt"}
    assert [v.ref for v in ds.versions("sales")] == ["sales@1", "sales@2"]
    assert ds.version("sales").ref == ds.version("sales@latest").ref == "sales@2"
    assert ds.version("sales@v1").tree == v1.tree
    assert ds.version("sales@gold").version == 1
    ds.alias("sales@2", "gold")
    assert ds.version("sales@gold").version == 2
    [summary] = ds.list()
    assert (summary.name, summary.versions, summary.latest, dict(summary.aliases)) == \
        ("sales", 2, 2, {"gold": 2})


def test_fluent_namespace_and_single_file(tracking, tmp_path):
    f = make_tree(tmp_path / "one", {"t.csv": b"a,b\n1,2\n"}) / "t.csv"
    v = cairn.data.add(f, name="one", message="m")
    assert [e.path for e in cairn.data.files(v.ref)] == ["t.csv"]
    out = cairn.data.checkout("one@1", tmp_path / "out")
    assert (out / "t.csv").read_bytes() == b"a,b\n1,2\n"


def test_refs_parse_and_reject_bad_names():
    assert DataRef.parse("a@3") == DataRef("a", 3)
    assert DataRef.parse("a@v3") == DataRef("a", 3)
    assert DataRef.parse("team/a@gold") == DataRef("team/a", alias="gold")
    assert DataRef.parse("dataset:a") == DataRef("a")
    for bad in ("", "a@", "@3", "a@0", "a b", "../x", "a@-1"):
        with pytest.raises(InvalidArgument):
            DataRef.parse(bad)


def test_unknown_refs_are_not_found(ds, small_tree):
    with pytest.raises(NotFound, match="no data set named"):
        ds.version("nope@1")
    ds.add(small_tree, "s")
    with pytest.raises(NotFound, match="no version 7"):
        ds.version("s@7")
    with pytest.raises(NotFound, match="no alias"):
        ds.version("s@gold")
    with pytest.raises(InvalidArgument):
        ds.alias("s@1", "v2")  # looks like a version number
    with pytest.raises(InvalidArgument):
        ds.alias("s@1", "latest")


def test_hash_cache_skips_unchanged_files_and_catches_inode_changes(ds, small_tree, tmp_path,
                                                                    monkeypatch):
    ds.add(small_tree, "s")
    reads = []
    real = ingest.read_stable
    monkeypatch.setattr(ingest, "read_stable", lambda f: reads.append(f.rel) or real(f))
    assert ds.add(small_tree, "s").created is False
    assert reads == []  # a stat pass, no file read
    # Same size and mtime but a new inode (a file replaced by a copy): hashed again.
    target = small_tree / "part1" / "f001.txt"
    st = target.stat()
    data = target.read_bytes()
    # A second link keeps the old inode alive, so the file system cannot hand the
    # same number to the replacement.
    os.link(target, tmp_path / "old-inode")
    target.unlink()
    target.write_bytes(data[::-1])
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    now = target.stat()
    assert (now.st_size, now.st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    assert now.st_ino != st.st_ino
    v = ds.add(small_tree, "s")
    assert reads == ["part1/f001.txt"]
    assert v.version == 2
    out = ds.checkout("s@2", tmp_path / "out", "part1/f001.txt")
    assert (out / "part1" / "f001.txt").read_bytes() == data[::-1]


def test_hash_cache_catches_in_place_rewrite_with_mtime_put_back(ds, small_tree, tmp_path,
                                                                 monkeypatch):
    """cp -p / rsync -t / touch -r keep size, mtime and inode; only ctime tells."""
    ds.add(small_tree, "s")
    target = small_tree / "part2" / "f002.txt"
    st = target.stat()
    data = target.read_bytes()
    time.sleep(0.01)  # past the kernel's coarse timestamp tick
    with open(target, "r+b") as fh:
        fh.write(data[::-1])
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    now = target.stat()
    assert (now.st_size, now.st_mtime_ns, now.st_ino) == (st.st_size, st.st_mtime_ns, st.st_ino)
    reads = []
    real = ingest.read_stable
    monkeypatch.setattr(ingest, "read_stable", lambda f: reads.append(f.rel) or real(f))
    v = ds.add(small_tree, "s")
    assert reads == ["part2/f002.txt"]
    assert v.created and v.version == 2
    out = ds.checkout("s@2", tmp_path / "out", "part2/f002.txt")
    assert (out / "part2" / "f002.txt").read_bytes() == data[::-1]


def test_racy_files_are_not_cached(ds, tmp_path, monkeypatch):
    src = make_tree(tmp_path / "fresh", {"a.txt": b"just written"}, old=False)
    soon = time.time() + 30  # "just written" whatever the machine's load: mtime >= hash time
    os.utime(src / "a.txt", (soon, soon))
    ds.add(src, "r")
    reads = []
    real = ingest.read_stable
    monkeypatch.setattr(ingest, "read_stable", lambda f: reads.append(f.rel) or real(f))
    ds.add(src, "r")
    assert reads == ["a.txt"]  # its mtime was too close to the hash time to trust


def test_cached_entries_with_missing_objects_are_stored_again(ds, small_tree):
    v1 = ds.add(small_tree, "s")
    objects = ds.objects
    # Lose everything: loose objects, packs and the pack index (e.g. a bad manual cleanup).
    for oid in list(objects.backend.iter_oids()):
        objects.backend.delete(oid)
    for pack in objects.packs.packs():
        objects.packs.remove(pack)
    (small_tree / "new.txt").write_bytes(b"a change, so a new version is made")
    v2 = ds.add(small_tree, "s")
    assert v2.version == 2 and v1.tree != v2.tree
    assert ds.verify("s@2").ok


def test_a_hash_cache_that_cannot_be_written_costs_the_add_nothing(ds, small_tree, caplog):
    """The hash cache is only a cache: where it cannot be written (here its file is a
    directory; a full disk does the same) the add still records its version, and says so."""
    cache = ds.store.root / "cache" / "hashes.sqlite"
    cache.mkdir(parents=True)
    with caplog.at_level("WARNING", logger="cairn.data"):
        v1 = ds.add(small_tree, "s")
    assert v1.version == 1 and ds.verify("s@1").ok
    assert any("hash cache" in r.getMessage() for r in caplog.records)


def test_checkout_is_exact_and_verified(ds, small_tree, tmp_path):
    big = os.urandom(5 * 1024 * 1024 + 17)  # above the chunking threshold
    (small_tree / "big.bin").write_bytes(big)
    v = ds.add(small_tree, "s")
    out = ds.checkout(v.ref, tmp_path / "out")
    assert snapshot(out).keys() == snapshot(small_tree).keys()
    for rel, (data, _, _) in snapshot(small_tree).items():
        assert (out / rel).read_bytes() == data
    sub = ds.checkout("s@1", tmp_path / "sub", "part2")
    assert sorted(p.relative_to(sub).as_posix() for p in sub.rglob("*.txt")) == \
        sorted(k for k in snapshot(small_tree) if k.startswith("part2/"))
    with pytest.raises(NotFound, match="no file or directory 'nope'"):
        ds.checkout("s@1", tmp_path / "x", "nope")
    assert ds.verify("s@1").ok


def test_checkout_of_a_damaged_object_fails_and_leaves_dest_alone(ds, small_tree, tmp_path):
    v = ds.add(small_tree, "s")
    entry = next(e for e in ds.files(v.ref) if e.path == "table.csv")
    loc = ds.objects.packs.locate([entry.digest])[entry.digest]
    path = ds.objects.backend.path(loc.pack)
    path.chmod(0o644)
    blob = bytearray(path.read_bytes())
    blob[-3] ^= 0xFF
    path.write_bytes(bytes(blob))
    dest = tmp_path / "out"
    (dest).mkdir()
    (dest / "table.csv").write_bytes(b"mine")
    with pytest.raises(CorruptObject):
        ds.checkout(v.ref, dest, "table.csv")
    assert (dest / "table.csv").read_bytes() == b"mine"
    result = ds.verify(v.ref)
    assert not result.ok


def test_add_rejects_empty_dirs_and_bad_names(ds, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidArgument, match="no regular files"):
        ds.add(tmp_path / "empty", "e")
    with pytest.raises(InvalidArgument, match="invalid data set name"):
        ds.add(tmp_path, "bad name")


def test_the_store_inside_the_added_directory_is_skipped(tmp_path, monkeypatch):
    from cairn.store import close_store

    monkeypatch.chdir(tmp_path)
    make_tree(tmp_path, {"data/a.txt": b"a"})
    client = cairn.Client(str(tmp_path / ".cairn"))
    try:
        v = client.data.add(tmp_path, "all")
        assert [e.path for e in client.data.files(v)] == ["data/a.txt"]
    finally:
        close_store(str(tmp_path / ".cairn"))
