"""Data set versions through a real server: the same Python API and CLI as a local store.

Each test starts a Cairn server (auth on; the local store, or PostgreSQL with objects on
disk) in a thread and talks to it as alice (editor) or vera (viewer) through
``cairn.Client(url)``.  What must hold: a version added remotely is the version the same
files make locally (tree digest, files, statistics); only objects the server lacks are
uploaded, in packs for small files; a checkout gives the same bytes; bad input and
missing rights are clear errors that upload and record nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import cairn
from cairn.data import QualityCheckFailed
from cairn.data.remote import RemoteDatasets
from cairn.errors import CairnError, InvalidArgument, NotFound, PermissionDenied
from cairn.store.http import HttpStore

from .api_world import API
from .test_remote_registry import Server, server  # noqa: F401 - the same server fixture

CSV = b"amount,label\n1.0,0\n2.5,1\n3.0,0\n4.5,1\n"


@pytest.fixture
def team(server):  # noqa: F811  (the imported fixture)
    """The registry tests' server (auth on; local store or PostgreSQL), audit written after."""
    yield server
    server.app.state.cairn.flush_audit()  # before the test's database goes away


class Requests:
    """What one client sent, observed on its real HTTP connection."""

    def __init__(self, client: cairn.Client) -> None:
        self.seen: list[tuple[str, str]] = []
        client.store.client.event_hooks["request"].append(
            lambda r: self.seen.append((r.method, r.url.path)))

    def puts(self) -> int:
        return sum(1 for m, p in self.seen if m == "PUT" and p.startswith(API + "/objects/"))

    def clear(self) -> None:
        self.seen.clear()


def server_objects(srv: Server) -> set[str]:
    return set(srv.store.objects.backend.iter_oids())


def make_data(root: Path) -> Path:
    """Nested small files (packed), a table (statistics) and a big file (chunked)."""
    rng = np.random.default_rng(7)
    (root / "images" / "cats").mkdir(parents=True)
    (root / "images" / "dogs").mkdir()
    for i in range(40):
        kind = "cats" if i % 2 else "dogs"
        (root / "images" / kind / f"{i:03}.bin").write_bytes(rng.bytes(100 + 37 * i))
    (root / "train.csv").write_bytes(CSV)
    (root / "weights.bin").write_bytes(rng.bytes(9 * 1024 * 1024))
    return root


def test_add_is_the_local_version_uploads_only_what_is_missing_and_checks_out(team, tmp_path):
    src = make_data(tmp_path / "raw")
    local = cairn.Client(str(tmp_path / "local"), user="alice").data
    lv = local.add(src, "photos", "first")

    alice = team.client("alice")
    ds = alice.data
    assert isinstance(ds, RemoteDatasets)
    sent = Requests(alice)
    v = ds.add(src, "photos", "first", aliases=["gold"])
    assert v.created and v.ref == "photos@1" and v.aliases == ("gold",)
    assert (v.tree, v.files, v.size) == (lv.tree, lv.files, lv.size)
    assert v.stats == lv.stats and v.stats["train.csv"]["rows"] == 4
    # Small files went up in packs: one request per pack and per chunk of the big file.
    chunks = sum(len(e.chunks) for e in ds.files(v.ref))
    assert len(v.packs) == 1 and chunks > 1 and sent.puts() == 1 + chunks
    got = ds.version("photos@gold")
    assert (got.tree, got.stats, got.packs) == (lv.tree, lv.stats, v.packs)
    assert ds.files("photos@1") == local.files(lv.ref)
    assert [(e.path, e.size) for e in ds.files("photos", "images/cats")][:2] == \
        [("images/cats/001.bin", 137), ("images/cats/003.bin", 211)]
    assert [(d.name, d.versions, dict(d.aliases)) for d in ds.list()] == \
        [("photos", 1, {"gold": 1})]

    # The same data again: no new version and nothing uploaded, with the hash cache ...
    before = server_objects(team)
    sent.clear()
    again = ds.add(src, "photos", "again")
    assert (again.ref, again.created, sent.puts()) == ("photos@1", False, 0)
    # ... and from another machine that hashes everything anew: the server has it all.
    other = cairn.Client(team.url, user="alice")
    other._store = HttpStore(team.url, token=team.tokens["alice"],
                             spool_dir=tmp_path / "spool-elsewhere")
    other_sent = Requests(other)
    assert other.data.add(src, "photos").created is False
    assert other_sent.puts() == 0 and server_objects(team) == before
    other.store.close()

    # Checkout into a fresh directory: the same bytes, also for one directory of it.
    out = ds.checkout("photos@1", tmp_path / "out")
    for f in src.rglob("*"):
        if f.is_file():
            assert (out / f.relative_to(src)).read_bytes() == f.read_bytes(), f
    sub = ds.checkout("photos@gold", tmp_path / "sub", path="images/dogs")
    assert sorted(p.name for p in (sub / "images" / "dogs").iterdir())[:2] == ["000.bin", "002.bin"]
    assert not (sub / "train.csv").exists()

    # One small file changes: one new object (a pack of one) goes up.
    (src / "images" / "cats" / "001.bin").write_bytes(b"a new cat")
    sent.clear()
    v2 = ds.add(src, "photos", "one cat changed")
    assert (v2.ref, v2.created, sent.puts()) == ("photos@2", True, 1)
    assert v2.tree == local.add(src, "photos").tree
    d = ds.diff("photos@1", "photos@2")
    assert [c.path for c in d.changed] == ["images/cats/001.bin"] and d.unchanged == v.files - 1
    assert ds.verify("photos@2").ok and ds.verify("photos@2").checked >= 3
    assert [x.ref for x in ds.versions("photos")] == ["photos@1", "photos@2"]


def test_arrays_aliases_and_run_inputs(team):
    pd = pytest.importorskip("pandas")
    alice = team.client("alice")
    ds = alice.data
    X = np.arange(12, dtype=np.float32).reshape(4, 3)
    y = np.array([0, 1, 0, 1])
    v = ds.add_array(X, "features", "four rows", target=y, aliases=["gold"])
    assert v.created and v.stats["data.npy"]["shape"] == [4, 3]
    data, target = ds.load_array("features@gold")
    assert data.dtype == np.float32 and (data == X).all() and (target == y).all()
    same = ds.add_array(X.copy(), "features", target=y.copy())
    assert (same.ref, same.created) == ("features@1", False)
    frame = pd.DataFrame({"a": [1.5, 2.5], "b": ["x", "y"]}, index=[10, 20])
    fv = ds.add_array(frame, "frames", target=pd.Series([1, 0], index=[10, 20], name="t"))
    f2, t2 = ds.load_array(fv.ref)
    pd.testing.assert_frame_equal(f2, frame)
    assert t2.name == "t" and list(t2) == [1, 0]

    # Aliases move, and go.
    ds.add_array(X * 2, "features", "doubled")
    assert ds.alias("features@2", "gold").aliases == ("gold",)
    assert ds.version("features@gold").version == 2
    ds.remove_alias("features", "gold")
    with pytest.raises(NotFound, match="no alias 'gold'"):
        ds.version("features@gold")

    # A run's inputs: through the client, seen in the run's inputs and in its lineage.
    exp = alice.create_experiment("remote-data")
    run = alice.create_run(experiment_id=exp.id, name="fit")
    assert alice.log_input(run.id, "features@1", "train").ref == "features@1"
    assert alice.store.call("GET", f"/runs/{run.id}/inputs")["inputs"] == [
        {"dataset": "features@1", "role": "train"}]
    graph = alice.store.call("GET", "/lineage", params={"node": f"run:{run.id}"})
    assert {"source": "dataset:features@1", "target": f"run:{run.id}", "relation": "input",
            "role": "train"} in graph["edges"]


def test_split_and_derive_record_parents_runs_and_inputs(team, tmp_path):
    pytest.importorskip("pyarrow")
    rows = "".join(f"{i * 1.5},{i % 2}\n" for i in range(40))
    (tmp_path / "tx").mkdir()
    (tmp_path / "tx" / "t.csv").write_text("amount,label\n" + rows)
    alice = team.client("alice")
    ds, local = alice.data, cairn.Client(str(tmp_path / "local")).data
    photos = make_data(tmp_path / "raw")
    for d in (ds, local):
        d.add(tmp_path / "tx" / "t.csv", "tx")
        d.add(photos, "photos")
    # Splits of rows (new files) and of files (packed on the server): the local versions.
    for ref, by in (("tx@1", "rows"), ("photos@1", "files")):
        parts = ds.split(ref, {"train": 0.75, "test": 0.25}, seed=1, by=by)
        mine = local.split(ref, {"train": 0.75, "test": 0.25}, seed=1, by=by)
        for k, v in parts.items():
            assert (v.kind, v.parents, v.transform) == ("split", (ref,), mine[k].transform)
            assert (v.tree, v.files, v.stats) == (mine[k].tree, mine[k].files, mine[k].stats)
    assert ds.version("tx.train").stats["t.csv"]["rows"] == 30

    # Derive inside a run: the version names its parent, run and transform; the run its input.
    exp = alice.create_experiment("prep")
    run = alice.create_run(experiment_id=exp.id, name="clean")
    (tmp_path / "clean").mkdir()
    (tmp_path / "clean" / "t.csv").write_text("amount,label\n" + rows[:100])
    d = ds.derive(["tx@1"], tmp_path / "clean", "tx.clean", transform={"dropna": True},
                  run_id=run.id)
    assert (d.ref, d.kind, d.parents, d.run_id, dict(d.transform)) == \
        ("tx.clean@1", "derive", ("tx@1",), run.id, {"dropna": True})
    assert alice.store.call("GET", f"/runs/{run.id}/inputs")["inputs"] == [
        {"dataset": "tx@1", "role": "input"}]
    graph = alice.store.call("GET", "/lineage", params={"node": "tx.clean@1"})
    relations = {(e["source"], e["target"], e["relation"]) for e in graph["edges"]}
    assert ("dataset:tx@1", "dataset:tx.clean@1", "derived") in relations
    assert (f"run:{run.id}", "dataset:tx.clean@1", "produced") in relations
    # The client's lineage graph over HTTP is the server's answer, as graph objects.
    g = alice.lineage("tx.clean@1")
    assert g.root == "dataset:tx.clean@1" and g.direction == "upstream"
    assert {(e.source, e.target, e.relation) for e in g.edges} == relations
    assert {n.id for n in g.nodes.values()} == {n["id"] for n in graph["nodes"]}
    assert [node.id for _depth, node, _via in g.walk()][0] == "dataset:tx.clean@1"
    down = alice.lineage("tx@1", direction="downstream", depth=1)
    assert "dataset:tx.clean@1" in down.ids("dataset") and down.direction == "downstream"


def test_a_viewer_and_bad_input_are_refused_and_nothing_is_uploaded(team, tmp_path):
    src = make_data(tmp_path / "raw")
    alice = team.client("alice")
    alice.data.add(src / "train.csv", "table")
    before = server_objects(team)

    vera = team.client("vera")
    sent = Requests(vera)
    with pytest.raises(PermissionDenied) as info:
        vera.data.add(src, "photos")
    assert info.value.http_status == 403
    with pytest.raises(PermissionDenied):
        vera.data.add_array(np.ones(3), "ones")
    with pytest.raises(PermissionDenied):
        vera.data.alias("table@1", "gold")
    assert sent.puts() == 0
    # Reading is what a viewer may do.
    assert vera.data.version("table").files == 1
    assert vera.data.checkout("table", tmp_path / "v").joinpath("train.csv").read_bytes() == CSV

    ds = alice.data
    sent = Requests(alice)
    cases = [
        (NotFound, "no data set named 'nope'", lambda: ds.version("nope")),
        (NotFound, "has no version 9", lambda: ds.version("table@9")),
        (NotFound, "has no version 9", lambda: ds.checkout("table@9", tmp_path / "x")),
        (NotFound, "no such file or directory", lambda: ds.add(tmp_path / "missing", "t")),
        (InvalidArgument, "invalid data set name", lambda: ds.add(src, "-bad")),
        (InvalidArgument, "invalid alias", lambda: ds.add(src, "photos", aliases=["v3"])),
        (QualityCheckFailed, "amount", lambda: ds.add(src, "photos", expect="amount <= 2")),
        (InvalidArgument, "push is not available against a Cairn server", lambda: ds.push()),
        (NotFound, "has no version 9", lambda: alice.lineage("table@9")),
        (NotFound, "has no version 9", lambda: ds.split("table@9", {"a": 0.5, "b": 0.5})),
        (NotFound, "has no version 9", lambda: ds.derive("table@9", src, "derived")),
        (NotFound, "no data set named 'nope'", lambda: ds.log_input("r" * 32, "nope", "x")),
    ]
    for cls, message, call in cases:
        with pytest.raises(cls, match=message):
            call()
    assert issubclass(QualityCheckFailed, CairnError)
    assert sent.puts() == 0 and server_objects(team) == before
    assert [d.name for d in ds.list()] == ["table"]
    assert not (tmp_path / "x").exists()


def test_the_cli_drives_data_sets_on_the_server(team, tmp_path, monkeypatch):
    import json

    from cairn.cli.main import cli

    src = make_data(tmp_path / "raw")
    monkeypatch.setenv("CAIRN_TRACKING_TOKEN", team.tokens["alice"])
    monkeypatch.setenv("CAIRN_SPOOL_DIR", str(tmp_path / "spool-cli"))
    runner = CliRunner()

    def run(*args: str) -> str:
        res = runner.invoke(cli, ["--store", team.url, *args], catch_exceptions=False)
        assert res.exit_code == 0, res.output
        return res.output

    added = json.loads(run("data", "add", str(src), "--name", "photos", "-m", "from the CLI", "--json"))
    assert added["ref"] == "photos@1"
    assert [d["name"] for d in json.loads(run("data", "ls", "--json"))] == ["photos"]
    shown = json.loads(run("data", "show", "photos@1", "--json"))
    assert shown["stats"]["train.csv"]["rows"] == 4 and shown["message"] == "from the CLI"
    run("data", "get", "photos@1", str(tmp_path / "restored"))
    assert (tmp_path / "restored" / "weights.bin").read_bytes() == (src / "weights.bin").read_bytes()
    (src / "train.csv").write_bytes(CSV + b"5.5,0\n")
    run("data", "add", str(src), "--name", "photos")
    run("data", "alias", "photos@1", "gold")
    out = run("data", "diff", "photos@gold", "photos@2")
    assert "~ train.csv" in out and "table train.csv: rows 4 → 5" in out
    assert "0 corrupt, 0 missing" in run("data", "verify", "photos@2")
    for args, message in ((["data", "show", "photos@7"], "has no version 7"),
                          (["data", "push"], "push is not available against a Cairn server"),
                          (["remote", "ls"], "remotes belong to a local store directory")):
        bad = runner.invoke(cli, ["--store", team.url, *args])
        assert bad.exit_code == 1 and message in bad.output, (args, bad.output)


def test_autolog_records_training_data_on_the_server(team, tracking, spool, monkeypatch):
    pytest.importorskip("sklearn")
    from sklearn.linear_model import LogisticRegression

    monkeypatch.setenv("CAIRN_TRACKING_TOKEN", team.tokens["alice"])
    cairn.set_tracking_uri(team.url)
    cairn.set_experiment("auto")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 2))
    y = (X[:, 0] > 0).astype(np.int64)
    cairn.autolog.sklearn.autolog(log_models=False)
    try:
        LogisticRegression().fit(X, y)
    finally:
        cairn.autolog(disable=True)
    client = cairn.Client()
    [r] = client.search_runs()
    assert r.tags["cairn.input.dataset"] == "auto.train@1"
    assert client.store.call("GET", f"/runs/{r.id}/inputs")["inputs"] == [
        {"dataset": "auto.train@1", "role": "train"}]
    data, target = client.data.load_array("auto.train@1")
    assert (data == X).all() and (target == y).all()


def test_the_docs_example_runs(team, tracking, spool, monkeypatch, tmp_path):
    """docs/data.md, "With a team server"."""
    monkeypatch.setenv("CAIRN_TRACKING_TOKEN", team.tokens["alice"])
    monkeypatch.chdir(tmp_path)
    os.makedirs("data/transactions")
    Path("data/transactions/march.csv").write_bytes(CSV)
    text = (Path(__file__).parents[2] / "docs" / "data.md").read_text()
    block = text.split("## With a team server", 1)[1].split("```python\n", 1)[1].split("```")[0]
    exec(block.replace("http://cairn.internal:5000", team.url), {})
    assert cairn.Client(team.url).data.version("transactions@gold").files == 1


def test_a_server_without_a_pack_index_keeps_members_loose_and_refuses_a_lying_pack(tmp_path,
                                                                                    monkeypatch):
    """Object stores without a pack index (S3) get small files loose; a pack must not lie."""
    import hashlib

    import httpx
    from serving import ThreadedServer

    from cairn.cas import ObjectStore
    from cairn.cas.backends.local import LocalBackend
    from cairn.cas.packs import encode_pack
    from cairn.server import create_app
    from cairn.store.sql.store import SqlStore

    monkeypatch.setenv("CAIRN_CAPTURE_ENV", "0")
    objects = ObjectStore(LocalBackend(tmp_path / "objects"))
    assert objects.packs is None
    store = SqlStore(f"sqlite:///{tmp_path / 'team.db'}", objects)
    src = make_data(tmp_path / "raw")
    try:
        with ThreadedServer(create_app(store)) as url:
            client = cairn.Client(url, user="alice")
            client._store = HttpStore(url, spool_dir=tmp_path / "spool")
            v = client.data.add(src, "photos")
            assert v.packs == () and v.tree == cairn.Client(str(tmp_path / "local")).data.add(
                src, "photos").tree
            out = client.data.checkout("photos", tmp_path / "out")
            assert (out / "images" / "cats" / "001.bin").read_bytes() == \
                (src / "images" / "cats" / "001.bin").read_bytes()
            assert client.data.verify("photos@1").ok
            client.store.close()

            # A pack whose member is not what it claims: refused, the object still missing.
            real, fake = b"the real content", b"something else"
            oid = hashlib.sha256(real).hexdigest()
            pack = encode_pack([(oid, fake)])
            pack_oid = hashlib.sha256(pack).hexdigest()
            with httpx.Client(base_url=url + API, timeout=60) as http:
                assert http.put(f"/objects/{pack_oid}", content=pack).status_code == 200
                r = http.post("/datasets/lies/versions", json={
                    "files": [{"path": "a.txt", "size": len(real), "digest": oid}],
                    "packs": [pack_oid]})
                assert r.status_code == 400 and "does not hash to its id" in r.json()["message"]
                assert http.post("/objects/missing", json={"oids": [oid]}).json() == \
                    {"missing": [oid]}
                assert [d["name"] for d in http.get("/datasets").json()] == ["photos"]
    finally:
        store.close()
