"""Small-file packs: format, index, reads through the object store, large files still chunked."""

from __future__ import annotations

import hashlib
import os

import pytest

from cairn.cas import MemoryBackend, ObjectStore
from cairn.cas.packs import (
    MemoryPackIndex, PackWriter, SqlitePackIndex, decode_header, encode_pack, rebuild_index,
)
from cairn.errors import CorruptObject, InvalidArgument, NotFound

from .conftest import make_tree


def _oid(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


@pytest.fixture(params=["memory", "sqlite"])
def store(request, tmp_path):
    if request.param == "memory":
        return ObjectStore(MemoryBackend(), packs=MemoryPackIndex())
    return ObjectStore.local(tmp_path / "objects")


def test_pack_format_round_trips():
    members = [(_oid(b"a"), b"a"), (_oid(b""), b""), (_oid(b"xyz"), b"xyz")]
    content = encode_pack(members)
    assert content.startswith(b"CAIRNPK1")
    header, body = decode_header("0" * 64, content)
    assert [(o, content[body + off: body + off + n]) for o, off, n in header] == members
    with pytest.raises(InvalidArgument, match="twice"):
        encode_pack(members + members[:1])
    with pytest.raises(CorruptObject):
        decode_header("0" * 64, content[:20])


def test_packed_objects_read_like_loose_ones(store):
    blobs = [os.urandom(100 + i) for i in range(500)]
    with PackWriter(store, target=10_000) as w:
        for b in blobs:
            w.add(_oid(b), b)
    assert 15 <= len(w.written) <= 19  # ~175 KB in packs of ~10 KB
    assert set(store.backend.iter_oids()) == set(w.written)  # no loose copy of any member
    oids = [_oid(b) for b in blobs]
    assert store.missing(oids + ["f" * 64]) == {"f" * 64}
    assert all(store.has(o) for o in oids[:20])
    assert store.get_bytes(oids[123]) == blobs[123]
    assert store.verify(oids).ok
    with pytest.raises(NotFound):
        store.get_bytes("e" * 64)


def test_a_damaged_pack_is_reported_per_member(tmp_path):
    store = ObjectStore.local(tmp_path / "objects")
    blobs = [b"alpha" * 10, b"beta" * 10]
    with PackWriter(store) as w:
        for b in blobs:
            w.add(_oid(b), b)
    [pack] = w.written
    path = store.backend.path(pack)
    path.chmod(0o644)
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 1
    path.write_bytes(bytes(raw))
    store.drop_caches()
    with pytest.raises(CorruptObject):
        store.get_bytes(_oid(blobs[0]))
    result = store.verify([_oid(b) for b in blobs] + [pack])
    assert set(result.corrupt) == {pack, *(_oid(b) for b in blobs)}


def test_the_index_is_rebuilt_from_the_packs(tmp_path):
    store = ObjectStore.local(tmp_path / "objects")
    blobs = [os.urandom(50) for _ in range(30)]
    with PackWriter(store, target=500) as w:
        for b in blobs:
            w.add(_oid(b), b)
    store.put_bytes(b"a loose object that is not a pack")
    index = store.packs
    assert isinstance(index, SqlitePackIndex)
    index.close()
    index.path.unlink()
    fresh = ObjectStore.local(tmp_path / "objects")
    assert fresh.missing(_oid(b) for b in blobs) == {_oid(b) for b in blobs}
    assert rebuild_index(fresh) == len(w.written)
    assert fresh.missing(_oid(b) for b in blobs) == set()
    assert fresh.get_bytes(_oid(blobs[7])) == blobs[7]


def test_two_thousand_small_files_are_a_handful_of_objects(ds, tmp_path):
    files = {f"d{i // 100:02d}/f{i:04d}.bin": os.urandom(512) + i.to_bytes(4, "big")
             for i in range(2000)}
    src = make_tree(tmp_path / "many", files)
    v = ds.add(src, "many")
    stored = list(ds.objects.backend.iter_oids())
    assert v.files == 2000 and len(v.packs) >= 1
    assert len(stored) <= 3  # one pack (about 1 MB) and the tree
    out = ds.checkout(v.ref, tmp_path / "out")
    for rel in list(files)[::97]:
        assert (out / rel).read_bytes() == files[rel]
    assert sum(1 for p in out.rglob("*") if p.is_file()) == 2000


def test_a_small_edit_to_a_large_file_stores_little(ds, tmp_path):
    rng_data = bytearray(os.urandom(12 * 1024 * 1024))
    src = tmp_path / "big"
    src.mkdir()
    (src / "weights.bin").write_bytes(rng_data)
    ds.add(src, "w")
    before = {o: ds.objects.backend.size(o) for o in ds.objects.backend.iter_oids()}
    rng_data[6_000_000:6_060_000] = os.urandom(60_000)  # 0.5% of the bytes, in place
    (src / "weights.bin").write_bytes(rng_data)
    v2 = ds.add(src, "w")
    assert v2.version == 2
    new = {o: ds.objects.backend.size(o) for o in ds.objects.backend.iter_oids()} .keys() - before
    added = sum(ds.objects.backend.size(o) for o in new)
    assert added < 0.15 * len(rng_data)  # a few chunks around the edit, not the whole file
    assert ds.files("w@2")[0].chunks


def test_fast_tree_encoding_is_byte_for_byte_the_canonical_one():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from cairn.cas.tree import encode_tree
    from cairn.data.ingest import encode_entries
    from cairn.entities import FileEntry

    part = st.text(alphabet=st.characters(blacklist_characters="/\\\x00",
                                          blacklist_categories=("Cs",)), min_size=1, max_size=8)
    path = st.lists(part, min_size=1, max_size=3).map("/".join).filter(
        lambda p: all(x not in (".", "..") for x in p.split("/")))
    oid = st.binary(min_size=4, max_size=4).map(lambda b: hashlib.sha256(b).hexdigest())

    @st.composite
    def entry(draw):
        chunks = draw(st.lists(st.tuples(oid, st.integers(1, 10**6)), max_size=3))
        size = sum(s for _, s in chunks) if len(chunks) > 1 else draw(st.integers(0, 10**9))
        return FileEntry(draw(path), size, draw(oid), tuple(chunks) if len(chunks) > 1 else ())

    @settings(max_examples=200, deadline=None)
    @given(st.lists(entry(), max_size=6, unique_by=lambda e: e.path))
    def check(entries):
        assert encode_entries(entries) == encode_tree(entries)

    check()
