"""Deterministic splits: a pure function of content and seed."""

from __future__ import annotations

import csv
import io

import pytest

from cairn.data.splits import assign
from cairn.errors import InvalidArgument

from .conftest import make_tree

ROWS = b"id,text,label\n" + b"".join(
    f'{i},"line {i}, with comma",{"pos" if i % 4 == 0 else "neg"}\n'.encode() for i in range(1000))


def _rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode())))[1:]


def test_row_split_is_exact_deterministic_and_byte_preserving(ds, tmp_path, other):
    v = ds.add(make_tree(tmp_path / "s", {"t.csv": ROWS}), "t")
    parts = ds.split(v.ref, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=42)
    assert {k: p.ref for k, p in parts.items()} == {"train": "t.train@1", "val": "t.val@1",
                                                    "test": "t.test@1"}
    sizes = {k: p.stats["t.csv"]["rows"] for k, p in parts.items()}
    assert sizes == {"train": 800, "val": 100, "test": 100}
    # Rows are copied byte for byte, header first; together they are the original rows.
    original = ROWS.split(b"\n")[1:-1]
    got = []
    for p in parts.values():
        data = ds.objects.read_bytes(ds.files(p)[0])
        assert data.startswith(b"id,text,label\n")
        got += data.split(b"\n")[1:-1]
    assert sorted(got) == sorted(original)
    # Same content and seed: the same trees, here (no new versions) and in another store.
    again = ds.split(v.ref, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=42)
    assert {k: (p.tree, p.created) for k, p in again.items()} == \
        {k: (p.tree, False) for k, p in parts.items()}
    elsewhere = other.data.split(other.data.add(tmp_path / "s", "t"),
                                 {"train": 0.8, "val": 0.1, "test": 0.1}, seed=42)
    assert {k: p.tree for k, p in elsewhere.items()} == {k: p.tree for k, p in parts.items()}
    different = ds.split(v.ref, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=7)
    assert different["train"].tree != parts["train"].tree
    assert parts["train"].parents == ("t@1",) and parts["train"].kind == "split"
    assert parts["train"].transform["seed"] == 42


def test_stratified_split_keeps_label_shares(ds, tmp_path):
    v = ds.add(make_tree(tmp_path / "s", {"t.csv": ROWS}), "t")
    parts = ds.split(v.ref, {"train": 0.8, "test": 0.2}, seed=1, stratify="label")
    for p in parts.values():
        rows = _rows(ds.objects.read_bytes(ds.files(p)[0]))
        pos = sum(r[2] == "pos" for r in rows)
        assert pos / len(rows) == pytest.approx(0.25, abs=0.01)


def test_directory_split_by_files_and_folders(ds, tmp_path):
    files = {f"{label}/{i:03d}.txt": f"{label} {i}".encode() for label in ("cat", "dog")
             for i in range(50)}
    files["dog/dup.txt"] = b"cat 0"  # same content as cat/000.txt: lands in the same split
    v = ds.add(make_tree(tmp_path / "img", files), "pets")
    parts = ds.split(v.ref, {"train": 0.5, "test": 0.5}, seed=3, stratify="dir")
    train = {e.path for e in ds.files(parts["train"])}
    test = {e.path for e in ds.files(parts["test"])}
    assert train | test == set(files) and not train & test
    assert sum(p.startswith("cat/") for p in train) == 25
    # Splitting by files stores no new file content: the trees reuse the objects.
    assert {e.digest for e in ds.files(parts["train"])} <= {e.digest for e in ds.files(v)}


def test_parquet_rows(ds, tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    src = tmp_path / "p"
    src.mkdir()
    pq.write_table(pa.table({"x": list(range(200)), "y": [i % 3 for i in range(200)]}),
                   src / "d.parquet")
    v = ds.add(src, "p")
    a = ds.split(v.ref, {"train": 0.75, "test": 0.25}, seed=5)
    b = ds.split(v.ref, {"train": 0.75, "test": 0.25}, seed=5)
    assert a["train"].tree == b["train"].tree
    assert a["train"].stats["d.parquet"]["rows"] == 150


def test_assign_and_bad_fractions(ds, tmp_path):
    labels = assign([str(i).encode() for i in range(10)], {"a": 0.55, "b": 0.45}, seed=0)
    assert labels.count("a") == 6 and labels.count("b") == 4  # largest remainder
    v = ds.add(make_tree(tmp_path / "s", {"t.csv": ROWS}), "t")
    for bad in ({"train": 0.8}, {"train": 1.2}, {"train": 0.5, "latest": 0.5}, {}):
        with pytest.raises(InvalidArgument):
            ds.split(v.ref, bad)
    with pytest.raises(InvalidArgument, match="no column 'nope'"):
        ds.split(v.ref, {"a": 0.5, "b": 0.5}, stratify="nope")
