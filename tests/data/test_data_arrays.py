"""Datasets.add_array / load_array: in-memory data as data set versions."""

from __future__ import annotations

import numpy as np
import pytest

import cairn
from cairn.data import arrays as A
from cairn.errors import InvalidArgument, NotFound


def test_an_array_and_its_target_round_trip_through_a_version(ds, tmp_path):
    X = np.arange(24, dtype=np.float32).reshape(6, 4)
    y = np.array([0, 1, 0, 1, 1, 0], dtype=np.int8)
    before = (X.copy(), y.copy(), X.flags.writeable)
    v = ds.add_array(X, "feats", "first", target=y)
    assert v.created and v.ref == "feats@1" and v.kind == "add" and v.files == 2
    assert v.source == "memory:" + A.content_digest(X, y)  # NumPy: the fingerprint is the digest
    assert v.stats["data.npy"]["shape"] == [6, 4] and v.stats["data.npy"]["dtype"] == "float32"
    assert v.stats["target.npy"] == {**v.stats["target.npy"], "shape": [6], "dtype": "int8"}
    data, target = ds.load_array(v.ref)
    assert data.dtype == X.dtype and (data == X).all() and (target == y).all()
    # The user's data is untouched, and a checkout gives plain .npy files NumPy reads.
    assert (X == before[0]).all() and (y == before[1]).all() and X.flags.writeable == before[2]
    out = ds.checkout(v.ref, tmp_path / "out")
    assert sorted(p.name for p in out.iterdir()) == ["data.npy", "target.npy"]
    assert (np.load(out / "data.npy", allow_pickle=False) == X).all()
    assert ds.verify(v.ref).ok


def test_the_same_content_is_the_same_version_and_new_content_a_new_one(ds):
    X = np.random.default_rng(0).normal(size=(50, 3))
    v1 = ds.add_array(X, "d")
    again = ds.add_array(X.copy(), "d", "ignored message")
    assert again.ref == v1.ref and not again.created
    # Memory layout does not matter: the same values in Fortran order are the same data.
    assert ds.add_array(np.asfortranarray(X), "d").ref == v1.ref
    v2 = ds.add_array(X + 1, "d")
    assert v2.created and v2.ref == "d@2"
    # Going back to earlier data finds that version, not a third one.
    back = ds.add_array(X, "d", aliases=["gold"])
    assert back.ref == "d@1" and not back.created and "gold" in back.aliases
    assert [v.version for v in ds.versions("d")] == [1, 2]
    # Another data set with the same content is its own version (objects are shared).
    assert ds.add_array(X, "other").ref == "other@1"


def test_fortran_order_and_strided_arrays_are_stored_in_c_order(ds):
    base = np.arange(40, dtype=np.int64).reshape(5, 8)
    for i, arr in enumerate((np.asfortranarray(base), base[:, ::2], base.T)):
        v = ds.add_array(arr, f"layout{i}")
        data, target = ds.load_array(v.ref)
        assert target is None and data.flags.c_contiguous and (data == arr).all()


def test_data_frames_and_series_keep_dtypes_labels_and_index(ds):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    df = pd.DataFrame({"amount": [1.5, 2.5, None, 4.0], "label": ["a", "b", "a", "c"],
                       "n": np.array([1, 2, 3, 4], dtype=np.int32)},
                      index=pd.Index([10, 3, 7, 1], name="row"))
    y = pd.Series([0, 1, 0, 1], index=df.index, name="target")
    v = ds.add_array(df, "frame", target=y)
    assert sorted(v.stats) == ["data.parquet", "target.parquet"]
    st = v.stats["data.parquet"]
    assert st["type"] == "pandas.DataFrame" and st["shape"] == [4, 3] and st["rows"] == 4
    assert st["columns_stats"]["amount"]["nulls"] == 1  # the table statistics of `add`
    data, target = ds.load_array(v.ref)
    pd.testing.assert_frame_equal(data, df)
    pd.testing.assert_series_equal(target, y)
    assert ds.add_array(df.copy(), "frame", target=y.copy()).ref == v.ref
    # The same values under another index or dtype are other data.
    assert ds.add_array(df.reset_index(drop=True), "frame", target=y.reset_index(drop=True)).created
    assert ds.add_array(df.astype({"n": "int64"}), "frame", target=y).created
    unnamed = pd.Series([1.0, 2.0])
    s, _ = ds.load_array(ds.add_array(unnamed, "series").ref)
    pd.testing.assert_series_equal(s, unnamed)
    # Without table statistics a version still knows what it holds.
    bare = ds.add_array(y, "bare", stats=False)
    assert "columns_stats" not in bare.stats["data.parquet"]
    pd.testing.assert_series_equal(ds.load_array(bare.ref)[0], y)


def test_sparse_matrices_round_trip_as_csr(ds):
    sparse = pytest.importorskip("scipy.sparse")
    m = sparse.random(30, 20, density=0.1, format="coo", random_state=0, dtype=np.float64)
    v = ds.add_array(m, "sparse", target=np.arange(30))
    assert v.stats["data.npz"]["nnz"] == m.nnz and v.stats["data.npz"]["shape"] == [30, 20]
    data, target = ds.load_array(v.ref)
    assert sparse.issparse(data) and data.format == "csr"
    assert (data != m.tocsr()).nnz == 0 and (target == np.arange(30)).all()
    assert ds.add_array(m.tocsr(), "sparse", target=np.arange(30)).ref == v.ref
    # The file is what scipy.sparse.save_npz writes: load_npz reads it; and bytes are stable.
    import io

    entry = ds.files(v.ref, "data.npz")[0]
    assert (sparse.load_npz(io.BytesIO(ds.objects.read_bytes(entry))) != m.tocsr()).nnz == 0


def test_tensors_and_lists_are_stored_as_arrays(ds):
    torch = pytest.importorskip("torch")
    t = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    v = ds.add_array(t, "tensor", target=[1, 0, 1])
    data, target = ds.load_array(v.ref)
    assert (data == t.numpy()).all() and target.tolist() == [1, 0, 1]
    assert ds.add_array(t.numpy(), "tensor", target=np.array([1, 0, 1])).ref == v.ref


def test_what_cannot_be_stored_without_pickle_is_refused(ds):
    with pytest.raises(InvalidArgument, match="Python objects"):
        ds.add_array(np.array([{"a": 1}, None], dtype=object), "objs")
    with pytest.raises(InvalidArgument):
        ds.add_array([[1, 2], [3]], "ragged")
    with pytest.raises(InvalidArgument):
        ds.add_array(None, "nothing")
    with pytest.raises(InvalidArgument):
        ds.add_array(np.zeros(3), "bad name!")
    with pytest.raises(NotFound):
        ds.version("objs")  # nothing was recorded


def test_load_array_refuses_versions_of_files(ds, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "notes.txt").write_text("hello")
    v = ds.add(tmp_path / "d", "files")
    with pytest.raises(InvalidArgument, match="add_array"):
        ds.load_array(v.ref)


def test_a_run_logs_an_array_version_as_its_input(ds, tracking):
    X = np.ones((4, 2))
    v = ds.add_array(X, "inputs")
    with cairn.start_run() as run:
        cairn.log_input(v.ref, role="train")
    assert ds.catalog.run_inputs(run.id) == [("inputs", 1, "train")]
    edges = cairn.Client().lineage(f"run:{run.id}").edges
    assert any(e.source == "dataset:inputs@1" and e.role == "train" for e in edges)


def test_a_store_without_data_sets_refuses_add_array():
    client = cairn.Client("memory://arrays-test")
    with pytest.raises(InvalidArgument, match="local store"):
        client.data.add_array(np.zeros(3), "x")


def test_fingerprints():
    X = np.arange(6).reshape(2, 3)
    assert A.fingerprint(X) == A.content_digest(X)
    assert A.fingerprint(X, digest="sha256:given") == "sha256:given"
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    assert A.fingerprint(df) != A.content_digest(df)  # dtypes and index are in it too
