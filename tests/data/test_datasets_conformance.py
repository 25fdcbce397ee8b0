"""One data set suite, every backend: data versioning must not depend on where the store is.

The same assertions run on a local store directory, on a Cairn server (auth on) serving a
local store directory, and on a server on PostgreSQL (the team set-up; data sets need a
store directory or a server, so PostgreSQL is reached through its server), all through
``client.data`` and ``client.lineage`` (tests/conformance_backends.py opens the backends).
Where content is concerned, each backend is also compared with a reference local store:
the same files make the same version (tree digest, files, statistics) everywhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import cairn
from cairn.data import QualityCheckFailed
from cairn.errors import CairnError, InvalidArgument, NotFound
from conformance_backends import backend_fixture
from pg_fixtures import pg_database  # noqa: F401  (a fixture, used by name)

BACKENDS = ["local", "remote", pytest.param("remote-postgres", marks=pytest.mark.postgres)]

CSV = b"id,amount,label\n1,10.5,a\n2,20.0,b\n3,,a\n4,7.25,b\n"


backend = backend_fixture(BACKENDS, CAIRN_CAPTURE_ENV="0", CAIRN_KEYS_DIR="{tmp}/keys")


@pytest.fixture
def alice(backend):
    return backend.client("alice")


@pytest.fixture
def ds(alice):
    return alice.data


@pytest.fixture
def ref(tmp_path):
    """A reference local store: what the same input makes with no server involved."""
    from cairn.store import close_store

    root = tmp_path / "reference"
    yield cairn.Client(str(root), user="alice").data
    close_store(str(root))


def make_tree(root: Path) -> Path:
    """Nested small files (packed), a table (statistics) and a binary file."""
    rng = np.random.default_rng(7)
    for i in range(24):
        kind = "cats" if i % 2 else "dogs"
        p = root / "images" / kind / f"{i:03}.bin"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(rng.bytes(50 + 13 * i))
    (root / "table.csv").write_bytes(CSV)
    (root / "weights.bin").write_bytes(rng.bytes(70_000))
    return root


def table(rows: int = 40) -> bytes:
    return b"amount,label\n" + b"".join(f"{i * 1.5},{i % 2}\n".encode() for i in range(rows))


def same_files(a: Path, b: Path) -> None:
    fa = {p.relative_to(a).as_posix(): p.read_bytes() for p in a.rglob("*") if p.is_file()}
    fb = {p.relative_to(b).as_posix(): p.read_bytes() for p in b.rglob("*") if p.is_file()}
    assert fa == fb


# -- versions of files and directories, content addressing ----------------------------
def test_add_files_and_directories_numbered_and_content_addressed(ds, ref, tmp_path):
    src = make_tree(tmp_path / "src")
    v1 = ds.add(src, "photos", "first", aliases=["gold"])
    assert (v1.ref, v1.version, v1.created, v1.kind) == ("photos@1", 1, True, "add")
    assert (v1.message, v1.created_by, v1.aliases) == ("first", "alice", ("gold",))
    assert v1.files == 26 and v1.size == sum(p.stat().st_size for p in src.rglob("*")
                                             if p.is_file())
    assert v1.source == str(src.resolve())
    # The same files make the same version here as in any other store.
    r1 = ref.add(src, "photos", "first", aliases=["gold"])
    for got in (v1, ds.version("photos@1")):
        for field in ("ref", "tree", "files", "size", "message", "source", "kind", "aliases",
                      "packs", "parents", "run_id", "commit", "transform", "stats", "quality",
                      "created_by"):
            assert getattr(got, field) == getattr(r1, field), field
    assert [(e.path, e.size, e.digest) for e in ds.files("photos@1")] == \
        [(e.path, e.size, e.digest) for e in ref.files("photos@1")]

    # Unchanged: no new version.
    again = ds.add(src, "photos", "again")
    assert (again.ref, again.created, again.tree) == ("photos@1", False, v1.tree)
    assert [v.ref for v in ds.versions("photos")] == ["photos@1"]

    # One file changes: version 2, and only the latest counts as "unchanged".
    old = (src / "table.csv").read_bytes()
    (src / "table.csv").write_bytes(old + b"5,1.0,a\n")
    v2 = ds.add(src, "photos", "one more row")
    assert (v2.ref, v2.created) == ("photos@2", True) and v2.tree != v1.tree
    assert v2.tree == ref.add(src, "photos").tree
    (src / "table.csv").write_bytes(old)
    v3 = ds.add(src, "photos", "back")
    assert (v3.ref, v3.created, v3.tree) == ("photos@3", True, v1.tree)

    # References: name, name@latest, @N, @vN, @alias.
    for r, n in (("photos", 3), ("photos@latest", 3), ("photos@1", 1), ("photos@v2", 2),
                 ("photos@gold", 1)):
        assert ds.version(r).version == n, r
    assert [v.ref for v in ds.versions("photos")] == ["photos@1", "photos@2", "photos@3"]
    assert [(v.version, v.tree, v.files, v.message) for v in ds.versions("photos")] == \
        [(1, v1.tree, 26, "first"), (2, v2.tree, 26, "one more row"), (3, v1.tree, 26, "back")]

    # A single file is a data set of one file.
    t = ds.add(src / "table.csv", "table")
    assert (t.ref, t.files, t.size) == ("table@1", 1, len(old))
    assert [e.path for e in ds.files("table")] == ["table.csv"]
    assert t.tree == ref.add(src / "table.csv", "table").tree

    listed = {d.name: (d.versions, d.latest, dict(d.aliases), d.files) for d in ds.list()}
    assert listed == {"photos": (3, 3, {"gold": 1}, 26), "table": (1, 1, {}, 1)}
    assert [e.path for e in ds.files("photos@1", "images/cats")][:2] == \
        ["images/cats/001.bin", "images/cats/003.bin"]
    assert len(ds.files("photos@1", "images")) == 24
    assert ds.verify("photos@2").ok


def test_aliases_move_and_go(ds, tmp_path):
    src = make_tree(tmp_path / "src")
    ds.add(src, "photos")
    (src / "table.csv").write_bytes(CSV + b"5,1.0,a\n")
    ds.add(src, "photos")
    assert ds.alias("photos@1", "gold").aliases == ("gold",)
    assert ds.version("photos@gold").version == 1
    moved = ds.alias("photos@2", "gold")
    assert (moved.version, moved.aliases) == (2, ("gold",))
    assert ds.version("photos@gold").version == 2 and ds.version("photos@1").aliases == ()
    ds.alias("photos@1", "silver")
    assert {d.name: dict(d.aliases) for d in ds.list()} == \
        {"photos": {"gold": 2, "silver": 1}}
    ds.remove_alias("photos", "gold")
    with pytest.raises(NotFound, match="no alias 'gold'"):
        ds.version("photos@gold")
    assert ds.version("photos@silver").version == 1


# -- in-memory data ------------------------------------------------------------------------
def test_arrays_and_data_frames_round_trip_and_are_content_addressed(ds, ref):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    X = np.arange(12, dtype=np.float32).reshape(4, 3)
    y = np.array([0, 1, 0, 1])
    v = ds.add_array(X, "features", "four rows", target=y, aliases=["gold"])
    assert (v.ref, v.created, v.aliases) == ("features@1", True, ("gold",))
    assert v.stats["data.npy"]["shape"] == [4, 3] and v.stats["data.npy"]["dtype"] == "float32"
    r = ref.add_array(X, "features", target=y)
    assert (v.tree, v.source, dict(v.stats)) == (r.tree, r.source, dict(r.stats))
    assert v.source.startswith("memory:")
    data, target = ds.load_array("features@gold")
    assert data.dtype == np.float32 and np.array_equal(data, X) and np.array_equal(target, y)

    # The same content (another object, another layout) is the same version.
    same = ds.add_array(np.asfortranarray(X.copy()), "features", target=y.copy())
    assert (same.ref, same.created) == ("features@1", False)
    v2 = ds.add_array(X * 2, "features", "doubled", target=y)
    assert (v2.ref, v2.created) == ("features@2", True)
    # ... for any earlier version, not only the latest; aliases move to it.
    back = ds.add_array(X, "features", target=y, aliases=["best"])
    assert (back.ref, back.created) == ("features@1", False)
    assert ds.version("features@best").version == 1
    assert [x.ref for x in ds.versions("features")] == ["features@1", "features@2"]

    frame = pd.DataFrame({"a": [1.5, 2.5, None], "b": ["x", "y", "z"]}, index=[10, 20, 30])
    series = pd.Series([1, 0, 1], index=[10, 20, 30], name="t")
    fv = ds.add_array(frame, "frames", target=series)
    f2, t2 = ds.load_array(fv.ref)
    pd.testing.assert_frame_equal(f2, frame)
    pd.testing.assert_series_equal(t2, series)
    st = fv.stats["data.parquet"]
    assert st["rows"] == 3 and st["columns_stats"]["a"]["nulls"] == 1
    assert dict(fv.stats) == dict(ref.add_array(frame, "frames", target=series).stats)
    assert ds.version("frames@1").stats == fv.stats


# -- statistics, expectations, diff ------------------------------------------------------
def test_statistics_and_expectations(ds, ref, tmp_path):
    pytest.importorskip("pyarrow")
    src = tmp_path / "tx"
    src.mkdir()
    (src / "t.csv").write_bytes(CSV)
    v = ds.add(src, "tx", expect=["amount >= 0", "id unique", "rows >= 4"])
    st = v.stats["t.csv"]
    assert st["rows"] == 4
    cols = st["columns_stats"]
    assert (cols["amount"]["nulls"], cols["amount"]["min"], cols["amount"]["max"]) == \
        (1, 7.25, 20.0)
    assert cols["label"]["distinct"] == 2
    assert [q["passed"] for q in v.quality] == [True, True, True]
    assert ds.version("tx@1").stats == v.stats  # read back as recorded
    assert ds.version("tx@1").quality == v.quality
    assert dict(v.stats) == dict(ref.add(src, "tx").stats)

    (src / "t.csv").write_bytes(CSV + b"5,-1.0,a\n")
    with pytest.raises(QualityCheckFailed, match="amount >= 0") as info:
        ds.add(src, "tx", expect=["amount >= 0", "label not null"])
    assert isinstance(info.value, InvalidArgument)
    assert [x.ref for x in ds.versions("tx")] == ["tx@1"]  # nothing recorded


def test_diff_lists_files_and_table_drift(ds, ref, tmp_path):
    src = make_tree(tmp_path / "src")
    ds.add(src, "photos")
    ref.add(src, "photos")
    (src / "table.csv").write_bytes(b"id,amount,label,extra\n1,100.5,a,x\n2,200.0,b,y\n")
    (src / "images" / "dogs" / "000.bin").unlink()
    (src / "new.txt").write_bytes(b"new")
    (src / "weights.bin").rename(src / "weights-moved.bin")
    ds.add(src, "photos")
    ref.add(src, "photos")
    d = ds.diff("photos@1", "photos@2")
    assert (d.a, d.b) == ("photos@1", "photos@2")
    assert [c.path for c in d.added] == ["new.txt"]
    assert [c.path for c in d.removed] == ["images/dogs/000.bin"]
    assert [c.path for c in d.changed] == ["table.csv"]
    assert [tuple(m) for m in d.moved] == [("weights.bin", "weights-moved.bin")]
    assert d.unchanged == 23 and not d.empty
    r = ref.diff("photos@1", "photos@2")
    assert (d.added, d.removed, d.changed, d.unchanged) == \
        (r.added, r.removed, r.changed, r.unchanged)
    assert dict(d.tables) == dict(r.tables)
    assert "table.csv" in d.tables
    assert ds.diff("photos@2", "photos@2").empty


# -- splits ----------------------------------------------------------------------------
def test_splits_are_reproducible_and_recorded_as_derived(ds, ref, tmp_path):
    pytest.importorskip("pyarrow")
    (tmp_path / "tx").mkdir()
    (tmp_path / "tx" / "t.csv").write_bytes(table(40))
    for d in (ds, ref):
        d.add(tmp_path / "tx" / "t.csv", "tx")
    parts = ds.split("tx@1", {"train": 0.75, "test": 0.25}, seed=1)
    assert sorted(parts) == ["test", "train"]
    assert (parts["train"].ref, parts["test"].ref) == ("tx.train@1", "tx.test@1")
    for name, rows in (("train", 30), ("test", 10)):
        v = parts[name]
        assert (v.kind, v.parents) == ("split", ("tx@1",))
        assert dict(v.transform) == {"split": name, "fractions": {"train": 0.75, "test": 0.25},
                                     "seed": 1, "stratify": None, "by": "rows"}
        assert ds.version(v.ref).stats["t.csv"]["rows"] == rows
    # Membership is a function of content and seed: here, again, and in another store.
    mine = ref.split("tx@1", {"train": 0.75, "test": 0.25}, seed=1)
    assert {k: (v.tree, dict(v.stats)) for k, v in parts.items()} == \
        {k: (v.tree, dict(v.stats)) for k, v in mine.items()}
    again = ds.split("tx@1", {"train": 0.75, "test": 0.25}, seed=1)
    assert {k: v.tree for k, v in again.items()} == {k: v.tree for k, v in parts.items()}
    other = ds.split("tx@1", {"train": 0.75, "test": 0.25}, seed=2)
    assert other["train"].tree != parts["train"].tree
    out = ds.checkout(parts["train"].ref, tmp_path / "train")
    lines = (out / "t.csv").read_bytes().splitlines()
    assert lines[0] == b"amount,label" and len(lines) == 31
    rows = set(table(40).splitlines()[1:])
    test_rows = set(ds.checkout(parts["test"].ref, tmp_path / "test")
                    .joinpath("t.csv").read_bytes().splitlines()[1:])
    assert set(lines[1:]) | test_rows == rows and not set(lines[1:]) & test_rows

    # By files, stratified by folder: each folder keeps its share.
    src = make_tree(tmp_path / "src")
    for d in (ds, ref):
        d.add(src / "images", "images")
    by_files = ds.split("images@1", {"train": 0.5, "test": 0.5}, seed=3, stratify="dir")
    assert by_files["train"].files == by_files["test"].files == 12
    cats = [e.path for e in ds.files(by_files["train"].ref) if e.path.startswith("cats/")]
    assert len(cats) == 6
    theirs = ref.split("images@1", {"train": 0.5, "test": 0.5}, seed=3, stratify="dir")
    assert by_files["train"].tree == theirs["train"].tree


# -- checkout --------------------------------------------------------------------------
def test_checkout_restores_identical_bytes(ds, tmp_path):
    src = make_tree(tmp_path / "src")
    original = tmp_path / "original"
    import shutil

    shutil.copytree(src, original)
    ds.add(src, "photos")
    (src / "weights.bin").write_bytes(b"replaced")
    (src / "table.csv").unlink()
    ds.add(src, "photos")

    out = ds.checkout("photos@1", tmp_path / "out")
    assert out == tmp_path / "out"
    same_files(out, original)
    same_files(ds.checkout("photos@2", tmp_path / "out2"), src)
    sub = ds.checkout("photos@1", tmp_path / "sub", path="images/cats")
    assert sorted(p.relative_to(sub).as_posix() for p in sub.rglob("*") if p.is_file()) == \
        sorted(f"images/cats/{i:03}.bin" for i in range(1, 24, 2))
    # Other files in the destination are left alone; checked-out files are replaced whole.
    keep = tmp_path / "out" / "mine.txt"
    keep.write_bytes(b"mine")
    ds.checkout("photos@2", tmp_path / "out")
    assert keep.read_bytes() == b"mine"
    assert (tmp_path / "out" / "weights.bin").read_bytes() == b"replaced"
    assert ds.verify("photos@1").ok and ds.verify("photos@1").checked >= 3


# -- lineage -------------------------------------------------------------------------------
def test_run_inputs_derived_versions_and_lineage(alice, ds, tmp_path):
    (tmp_path / "tx").mkdir()
    (tmp_path / "tx" / "t.csv").write_bytes(table(20))
    ds.add(tmp_path / "tx", "tx")
    exp = alice.create_experiment("prep")

    # A run reads a version.
    train = alice.create_run(experiment_id=exp.id, name="train")
    got = alice.log_input(train.id, "tx@1", "train")
    assert (got.ref, got.name, got.version) == ("tx@1", "tx", 1)
    g = alice.lineage(f"run:{train.id}")
    assert (g.root, g.direction) == (f"run:{train.id}", "upstream")
    assert [(e.source, e.target, e.relation, e.role) for e in g.edges] == \
        [("dataset:tx@1", f"run:{train.id}", "input", "train")]
    down = alice.lineage("tx@1", direction="downstream")
    assert f"run:{train.id}" in down.ids("run")

    # A derived version names its parents, run and transformation; the run its input.
    clean = alice.create_run(experiment_id=exp.id, name="clean")
    (tmp_path / "clean").mkdir()
    (tmp_path / "clean" / "t.csv").write_bytes(table(10))
    d = ds.derive(["tx@1"], tmp_path / "clean", "tx.clean", transform={"dropna": True},
                  run_id=clean.id)
    assert (d.ref, d.kind, d.parents, d.run_id, dict(d.transform)) == \
        ("tx.clean@1", "derive", ("tx@1",), clean.id, {"dropna": True})
    g = alice.lineage("tx.clean@1")
    assert g.root == "dataset:tx.clean@1"
    relations = {(e.source, e.target, e.relation) for e in g.edges}
    assert ("dataset:tx@1", "dataset:tx.clean@1", "derived") in relations
    assert (f"run:{clean.id}", "dataset:tx.clean@1", "produced") in relations
    assert ("dataset:tx@1", f"run:{clean.id}", "input") in relations
    assert [node.id for _depth, node, _via in g.walk()][0] == "dataset:tx.clean@1"
    down = alice.lineage("tx@1", direction="downstream", depth=1)
    assert {"dataset:tx.clean@1", f"run:{train.id}", f"run:{clean.id}"} <= down.ids()
    assert "dataset:tx.clean@1" in down.ids("dataset")

    # A model trained by the run: its version records the run's inputs.
    from sklearn.linear_model import LogisticRegression

    X = np.arange(20, dtype=float).reshape(10, 2)
    mv = alice.register_model("clf", LogisticRegression().fit(X, np.arange(10) % 2),
                              run_id=train.id)
    assert {"name": "tx", "version": "1", "role": "train"} in [dict(x) for x in mv.datasets]
    g = alice.lineage("model:clf@1.0.0")
    ids = g.ids()
    assert f"run:{train.id}" in ids and "dataset:tx@1" in ids
    assert {(e.source, e.target, e.relation) for e in g.edges} >= {
        (f"run:{train.id}", "model:clf@1.0.0", "produced"),
        ("dataset:tx@1", f"run:{train.id}", "input")}
    assert alice.lineage("models:/clf/1.0.0").root == g.root


# -- errors: the same class on every backend, and nothing recorded ---------------------------
def test_errors_are_the_same_classes_on_every_backend_and_record_nothing(alice, ds, tmp_path):
    src = make_tree(tmp_path / "src")
    ds.add(src / "table.csv", "t")
    (tmp_path / "empty").mkdir()
    run = alice.create_run(experiment_id=alice.create_experiment("e").id, name="r")
    (tmp_path / "a-file").write_bytes(b"x")
    cases = [
        (NotFound, "no data set named 'nope'", lambda: ds.version("nope")),
        (NotFound, "has no version 9", lambda: ds.version("t@9")),
        (NotFound, "no alias 'ghost'", lambda: ds.version("t@ghost")),
        (NotFound, None, lambda: ds.versions("nope")),
        (NotFound, None, lambda: ds.files("nope")),
        (NotFound, "has no version 9", lambda: ds.files("t@9")),
        (NotFound, "has no version 9", lambda: ds.checkout("t@9", tmp_path / "x")),
        (NotFound, "no data set named 'nope'", lambda: ds.checkout("nope", tmp_path / "x")),
        (NotFound, "has no version 9", lambda: ds.verify("t@9")),
        (NotFound, "has no version 9", lambda: ds.diff("t@1", "t@9")),
        (NotFound, "has no version 9", lambda: ds.alias("t@9", "gold")),
        (NotFound, None, lambda: ds.remove_alias("t", "ghost")),
        (NotFound, None, lambda: ds.load_array("nope")),
        (NotFound, "no such file or directory", lambda: ds.add(tmp_path / "missing", "t")),
        (NotFound, "has no version 9", lambda: ds.split("t@9", {"a": 0.5, "b": 0.5})),
        (NotFound, "has no version 9", lambda: ds.derive("t@9", src, "derived")),
        (NotFound, "no data set named 'nope'", lambda: ds.log_input(run.id, "nope", "x")),
        (NotFound, "has no version 9", lambda: alice.log_input(run.id, "t@9")),
        (NotFound, "has no version 9", lambda: alice.lineage("t@9")),
        (NotFound, None, lambda: alice.lineage("nope")),
        (InvalidArgument, "invalid data set name", lambda: ds.add(src, "-bad")),
        (InvalidArgument, "invalid data set name", lambda: ds.add(src, "a//b")),
        (InvalidArgument, "invalid data set name", lambda: ds.version("bad name")),
        (InvalidArgument, "invalid alias", lambda: ds.add(src, "photos", aliases=["v3"])),
        (InvalidArgument, "invalid alias", lambda: ds.add(src, "photos", aliases=["latest"])),
        (InvalidArgument, "invalid alias", lambda: ds.alias("t@1", "3")),
        (InvalidArgument, "versions start at 1", lambda: ds.version("t@0")),
        (InvalidArgument, None, lambda: ds.version("")),
        (InvalidArgument, "no regular files", lambda: ds.add(tmp_path / "empty", "e")),
        (InvalidArgument, "add up to 1", lambda: ds.split("t@1", {"a": 0.5, "b": 0.6})),
        (InvalidArgument, "seed must be an int", lambda: ds.split("t@1", {"a": 1.0}, seed="1")),
        (InvalidArgument, "by must be", lambda: ds.split("t@1", {"a": 1.0}, by="cols")),
        (InvalidArgument, "derive needs at least one", lambda: ds.derive([], src, "d")),
        (InvalidArgument, "transform must be",
         lambda: ds.derive("t@1", src, "d", transform=["x"])),
        (InvalidArgument, "role must be", lambda: alice.log_input(run.id, "t@1", "")),
        (InvalidArgument, None,
         lambda: ds.add_array(np.array([{"a": 1}], dtype=object), "objs")),
        (InvalidArgument, "not a directory", lambda: ds.checkout("t@1", tmp_path / "a-file")),
        (InvalidArgument, "direction must be", lambda: alice.lineage("t@1", direction="up")),
        (InvalidArgument, "depth must be", lambda: alice.lineage("t@1", depth=-1)),
        (QualityCheckFailed, "amount", lambda: ds.add(src, "photos", expect="amount <= 2")),
        (InvalidArgument, None, lambda: ds.add(src, "photos", expect="amount is nice")),
    ]
    failures = []
    for cls, message, call in cases:
        try:
            call()
        except CairnError as exc:
            if not isinstance(exc, cls):
                failures.append(f"{_src(call)}: {cls.__name__} expected, got {type(exc).__name__}: {exc}")
            elif message is not None and message not in str(exc):
                failures.append(f"{_src(call)}: {cls.__name__} without {message!r}: {exc}")
        except Exception as exc:  # noqa: BLE001 - not a CairnError at all
            failures.append(f"{_src(call)}: {cls.__name__} expected, got {type(exc).__name__}: {exc}")
        else:
            failures.append(f"{_src(call)}: {cls.__name__} expected, nothing raised")
    assert failures == []
    # Nothing above recorded anything or wrote a checkout.
    assert [(d.name, d.versions, dict(d.aliases)) for d in ds.list()] == [("t", 1, {})]
    assert not (tmp_path / "x").exists()
    assert alice.lineage(f"run:{run.id}").edges == []


def test_a_split_with_an_empty_part_records_nothing(ds, tmp_path):
    (tmp_path / "t.csv").write_bytes(CSV)
    ds.add(tmp_path / "t.csv", "t")
    with pytest.raises(InvalidArgument, match="would be empty"):
        ds.split("t@1", {"a": 0.5, "b": 0.5}, by="files")  # one file, two parts
    # By rows: a part whose share rounds to no row is refused the same way.
    with pytest.raises(InvalidArgument, match="'b' of t.csv would be empty"):
        ds.split("t@1", {"a": 0.999, "b": 0.001}, by="rows")
    assert [d.name for d in ds.list()] == ["t"]


def test_a_run_that_does_not_exist_is_not_an_input(alice, ds, tmp_path):
    """Recording an input for a run id nobody created is refused, and records nothing."""
    (tmp_path / "t.csv").write_bytes(CSV)
    ds.add(tmp_path / "t.csv", "t")
    with pytest.raises(NotFound):
        alice.log_input("f" * 32, "t@1", "train")
    # Nor does a split or a derivation record anything for it.
    with pytest.raises(NotFound):
        ds.split("t@1", {"a": 0.5, "b": 0.5}, by="rows", run_id="f" * 32)
    with pytest.raises(NotFound):
        ds.derive(["t@1"], tmp_path / "t.csv", "d", run_id="f" * 32)
    assert alice.lineage("t@1", direction="downstream").edges == []
    assert [d.name for d in ds.list()] == ["t"]


def _src(call) -> str:
    """The case's lambda as written, to name it in a failure."""
    import inspect

    text = " ".join(inspect.getsource(call).split())
    return text[text.index("lambda"):].rstrip("),")
