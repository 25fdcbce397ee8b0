"""ObjectStore: bytes, files, directories, checkout, verification."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path
from typing import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cairn.cas import CHUNK_THRESHOLD, LocalBackend, MemoryBackend, ObjectStore, referenced_oids
from cairn.cas.backends.base import Backend
from cairn.entities import FileEntry
from cairn.errors import CairnError, CorruptObject, InvalidArgument, NotFound


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def noise(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


# -- bytes -------------------------------------------------------------------


@settings(max_examples=50)
@given(st.binary(max_size=20_000))
def test_put_bytes_round_trip(data: bytes) -> None:
    store = ObjectStore(MemoryBackend())
    oid = store.put_bytes(data)
    assert oid == sha(data)
    assert store.get_bytes(oid) == data


def test_put_bytes_is_idempotent(store: ObjectStore) -> None:
    assert store.put_bytes(b"same") == store.put_bytes(bytearray(b"same"))
    assert len(list(store.backend.iter_oids())) == 1


def test_compressible_object_is_stored_smaller(store: ObjectStore) -> None:
    data = b"0.125," * 100_000
    oid = store.put_bytes(data)
    assert store.backend.size(oid) < len(data) / 10
    assert store.get_bytes(oid) == data


def test_get_missing_and_malformed_oid(store: ObjectStore) -> None:
    with pytest.raises(NotFound):
        store.get_bytes(sha(b"never stored"))
    with pytest.raises(InvalidArgument):
        store.get_bytes("not-an-oid")


def test_has_and_missing(store: ObjectStore) -> None:
    a = store.put_bytes(b"a")
    b = sha(b"b")
    assert store.has(a) and not store.has(b)
    assert store.missing([a, b, b]) == {b}
    assert store.missing([]) == set()


def test_object_whose_content_does_not_match_its_id_is_corrupt(store: ObjectStore) -> None:
    wrong = sha(b"expected")
    store.backend.put(wrong, b"r" + b"something else")
    with pytest.raises(CorruptObject, match=wrong):
        store.get_bytes(wrong)


def test_local_constructor_does_no_io(tmp_path: Path) -> None:
    ObjectStore.local(tmp_path / "objects")
    assert not (tmp_path / "objects").exists()


# -- files -------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 1000, CHUNK_THRESHOLD, CHUNK_THRESHOLD + 1, 12 * 2**20])
def test_file_round_trip(store: ObjectStore, tmp_path: Path, size: int) -> None:
    data = noise(size, seed=size)
    entry = store.put_file(write(tmp_path / "in.bin", data), "dir/in.bin")
    assert entry.path == "dir/in.bin"
    assert entry.size == size
    assert entry.digest == sha(data)
    if size > CHUNK_THRESHOLD:
        assert len(entry.chunks) > 1
        assert sum(s for _, s in entry.chunks) == size
        assert all(store.has(oid) for oid, _ in entry.chunks)
    else:
        assert entry.chunks == ()
        assert store.has(entry.digest)
    assert store.read_bytes(entry) == data
    assert b"".join(store.read_file(entry)) == data
    out = store.checkout(entry, tmp_path / "out" / "deep" / "copy.bin")
    assert out.read_bytes() == data
    assert os.listdir(out.parent) == ["copy.bin"]  # temp file renamed away


def test_chunked_file_with_small_threshold(tmp_path: Path) -> None:
    store = ObjectStore(MemoryBackend(), chunk_threshold=1000, workers=1)
    data = noise(3 * 2**20)
    entry = store.put_file(write(tmp_path / "f", data), "f")
    assert len(entry.chunks) >= 3
    assert store.read_bytes(entry, verify=False) == data


def test_same_file_twice_is_one_object(store: ObjectStore, tmp_path: Path) -> None:
    data = b"weights" * 1000
    e1 = store.put_file(write(tmp_path / "a.bin", data), "a.bin")
    e2 = store.put_file(write(tmp_path / "b" / "copy.bin", data), "b/copy.bin")
    assert e1.digest == e2.digest
    assert len(list(store.backend.iter_oids())) == 1


def test_same_large_file_twice_adds_nothing(local_store: ObjectStore, tmp_path: Path) -> None:
    path = write(tmp_path / "big.bin", noise(6 * 2**20))
    first = local_store.put_file(path, "big.bin")
    before = set(local_store.backend.iter_oids())
    second = local_store.put_file(path, "again.bin")
    assert second.chunks == first.chunks
    assert set(local_store.backend.iter_oids()) == before


def test_put_file_bad_input(store: ObjectStore, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no such file"):
        store.put_file(tmp_path / "missing.txt", "missing.txt")
    with pytest.raises(InvalidArgument, match="not a regular file"):
        store.put_file(tmp_path, "dir")
    f = write(tmp_path / "f.txt", b"x")
    for bad in ["", "/abs", "a/../b", "./a", "a//b", "a\\b", "a/"]:
        with pytest.raises(InvalidArgument):
            store.put_file(f, bad)
    assert issubclass(NotFound, CairnError) and issubclass(InvalidArgument, CairnError)


def test_put_dir(store: ObjectStore, tmp_path: Path) -> None:
    root = tmp_path / "run"
    write(root / "model.pt", b"weights")
    write(root / "plots" / "loss.png", b"png")
    write(root / "plots" / "deep" / "x.json", b"{}")
    write(root / "empty.txt", b"")
    (root / "emptydir").mkdir()
    (root / "link").symlink_to(root / "model.pt")
    entries = store.put_dir(root, prefix="artifacts/")
    assert [e.path for e in entries] == [
        "artifacts/empty.txt", "artifacts/model.pt",
        "artifacts/plots/deep/x.json", "artifacts/plots/loss.png",
    ]
    by_path = {e.path: e for e in entries}
    assert store.read_bytes(by_path["artifacts/plots/loss.png"]) == b"png"
    assert [e.path for e in store.put_dir(root / "plots")] == ["deep/x.json", "loss.png"]


def test_put_dir_bad_input(store: ObjectStore, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        store.put_dir(tmp_path / "nope")
    with pytest.raises(InvalidArgument):
        store.put_dir(write(tmp_path / "file", b"x"))
    with pytest.raises(InvalidArgument):
        store.put_dir(tmp_path, prefix="../up")


def test_checkout_replaces_existing_file(store: ObjectStore, tmp_path: Path) -> None:
    entry = store.put_file(write(tmp_path / "a", b"new"), "a")
    dest = write(tmp_path / "dest", b"old content")
    store.checkout(entry, dest)
    assert dest.read_bytes() == b"new"


def test_read_missing_object_names_the_file(store: ObjectStore) -> None:
    entry = FileEntry("lost.bin", 3, sha(b"abc"))
    with pytest.raises(NotFound, match="lost.bin"):
        store.read_bytes(entry)


# -- corruption ----------------------------------------------------------------


def test_flipped_byte_in_small_file_detected(
    store: ObjectStore, tmp_path: Path, corrupt: Callable[..., None]
) -> None:
    entry = store.put_file(write(tmp_path / "f.bin", noise(5000)), "f.bin")
    corrupt(store.backend, entry.digest)
    result = store.verify()
    assert result.corrupt == (entry.digest,)
    assert result.checked == 1 and not result.ok
    dest = tmp_path / "out" / "f.bin"
    with pytest.raises(CorruptObject) as info:
        store.checkout(entry, dest)
    assert "f.bin" in str(info.value) and entry.digest in str(info.value)
    assert not dest.exists()
    assert os.listdir(dest.parent) == []  # no temp file left


def test_flipped_byte_in_compressed_object_detected(
    store: ObjectStore, tmp_path: Path, corrupt: Callable[..., None]
) -> None:
    entry = store.put_file(write(tmp_path / "log.txt", b"epoch 1 loss 0.5\n" * 5000), "log.txt")
    corrupt(store.backend, entry.digest, offset=len(store.backend.get(entry.digest)) // 2)
    assert store.verify([entry.digest]).corrupt == (entry.digest,)
    with pytest.raises(CorruptObject, match=entry.digest):
        store.read_bytes(entry)


def test_flipped_byte_in_one_chunk_detected(
    local_store: ObjectStore, tmp_path: Path, corrupt: Callable[..., None]
) -> None:
    entry = local_store.put_file(write(tmp_path / "ckpt.pt", noise(6 * 2**20)), "ckpt.pt")
    bad_oid = entry.chunks[2][0]
    corrupt(local_store.backend, bad_oid, offset=1000)
    result = local_store.verify()
    assert result.corrupt == (bad_oid,)
    assert result.checked == len(set(entry.chunks))
    with pytest.raises(CorruptObject) as info:
        local_store.checkout(entry, tmp_path / "restored.pt")
    assert "ckpt.pt" in str(info.value) and bad_oid in str(info.value)
    assert info.value.details["oid"] == bad_oid
    assert not (tmp_path / "restored.pt").exists()


def test_manifest_that_does_not_match_content_is_detected(store: ObjectStore,
                                                          tmp_path: Path) -> None:
    data = noise(6 * 2**20)
    entry = store.put_file(write(tmp_path / "a", data), "a")
    swapped = FileEntry("a", entry.size, entry.digest,
                        (entry.chunks[1], entry.chunks[0], *entry.chunks[2:]))
    with pytest.raises(CorruptObject, match="does not match file digest"):
        store.checkout(swapped, tmp_path / "out")
    # verify=False trusts the manifest.
    assert len(store.read_bytes(swapped, verify=False)) == len(data)
    wrong_size = FileEntry("b", 99, entry.chunks[0][0])
    with pytest.raises(CorruptObject, match="expected 99"):
        store.read_bytes(wrong_size)


def test_verify_reports_missing_and_healthy(store: ObjectStore) -> None:
    a = store.put_bytes(b"a")
    gone = sha(b"gone")
    result = store.verify([a, gone, a])
    assert (result.checked, result.corrupt, result.missing) == (1, (), (gone,))
    assert store.verify().ok
    assert store.verify([]).checked == 0


def test_verify_all_on_empty_local_store(tmp_path: Path) -> None:
    assert ObjectStore(LocalBackend(tmp_path / "none")).verify().checked == 0


# -- trees -----------------------------------------------------------------


def test_tree_round_trip(store: ObjectStore, tmp_path: Path) -> None:
    write(tmp_path / "d" / "small.txt", b"hello")
    write(tmp_path / "d" / "big.bin", noise(5 * 2**20))
    write(tmp_path / "d" / "sub" / "é.json", b"{}")
    entries = store.put_dir(tmp_path / "d")
    oid = store.put_tree(entries)
    assert store.get_tree(oid) == entries
    assert store.put_tree(reversed(entries)) == oid  # canonical: order does not matter
    needed = referenced_oids(store.get_tree(oid))
    assert store.missing(needed) == set()
    assert len(needed) == 2 + len(entries[0].chunks)


def test_tree_format_is_canonical_json(store: ObjectStore) -> None:
    entry = FileEntry("a.txt", 5, sha(b"hello"))
    oid = store.put_tree([entry])
    raw = store.get_bytes(oid)
    assert raw == (b'{"entries":[{"chunks":[],"digest":"' + entry.digest.encode()
                   + b'","path":"a.txt","size":5}],"format":"cairn.tree/1"}')


def test_empty_tree(store: ObjectStore) -> None:
    assert store.get_tree(store.put_tree([])) == []


def test_bad_trees_are_rejected(store: ObjectStore) -> None:
    ok = FileEntry("a", 1, sha(b"a"))
    bad_entries = [
        [ok, ok],
        [FileEntry("/abs", 1, sha(b"a"))],
        [FileEntry("a", -1, sha(b"a"))],
        [FileEntry("a", 1, "nothex")],
        [FileEntry("a", 3, sha(b"abc"), ((sha(b"ab"), 2),))],  # chunk sizes don't add up
        ["a.txt"],
    ]
    for entries in bad_entries:
        with pytest.raises(InvalidArgument):
            store.put_tree(entries)  # type: ignore[arg-type]


@pytest.mark.parametrize("content", [b"plain bytes", b"[]", b'{"format":"other"}',
                                     b'{"format":"cairn.tree/1","entries":[{"path":"a"}]}'])
def test_get_tree_of_non_tree_object(store: ObjectStore, content: bytes) -> None:
    oid = store.put_bytes(content)
    with pytest.raises(InvalidArgument, match="not a tree"):
        store.get_tree(oid)


paths = st.lists(
    st.text(st.characters(blacklist_characters="/\\\x00", blacklist_categories=("Cs",)),
            min_size=1, max_size=8).filter(lambda p: p not in (".", "..")),
    min_size=1, max_size=3).map("/".join)


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(paths, st.binary(max_size=64), max_size=8))
def test_tree_round_trip_property(files: dict[str, bytes]) -> None:
    store = ObjectStore(MemoryBackend())
    entries = [FileEntry(p, len(d), store.put_bytes(d)) for p, d in files.items()]
    assert store.get_tree(store.put_tree(entries)) == sorted(entries, key=lambda e: e.path)


def test_store_works_over_any_backend(backend: Backend) -> None:
    store = ObjectStore(backend, workers=1)
    assert store.get_bytes(store.put_bytes(b"x")) == b"x"
