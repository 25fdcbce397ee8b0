"""Derived versions, run inputs and the lineage graph (data sets, runs, models, commits)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import cairn
from cairn.cli.main import cli
from cairn.errors import InvalidArgument, NoActiveRun, NotFound

from .conftest import make_tree

RAW = b"id,x,label\n" + b"".join(f"{i},{i % 17},{i % 2}\n".encode() for i in range(200))


def _pipeline(tracking, tmp_path):
    """raw -> cleaned (derive in a run) -> features (derive) -> splits; a training run reads train."""
    raw = cairn.data.add(make_tree(tmp_path / "raw", {"raw.csv": RAW}), name="raw")
    with cairn.start_run(name="prep") as prep:
        make_tree(tmp_path / "clean", {"clean.csv": RAW.replace(b",0\n", b",zero\n")})
        cleaned = cairn.data.derive([raw.ref], tmp_path / "clean", name="cleaned",
                                    transform={"drop_nulls": True})
        make_tree(tmp_path / "feat", {"features.csv": RAW})
        features = cairn.data.derive(cleaned.ref, tmp_path / "feat", name="features",
                                     transform={"normalize": "zscore"})
        parts = cairn.data.split(features.ref, {"train": 0.8, "test": 0.2}, seed=42)
    with cairn.start_run(name="train") as train:
        cairn.log_input(parts["train"].ref, role="train")
        cairn.log_input(parts["test"].ref, role="eval")
    return raw, cleaned, features, parts, prep.id, train.id


def test_derive_records_parents_run_commit_and_transform(tracking, tmp_path):
    raw, cleaned, features, parts, prep_id, _ = _pipeline(tracking, tmp_path)
    assert cleaned.parents == ("raw@1",) and cleaned.kind == "derive"
    assert cleaned.run_id == prep_id and dict(cleaned.transform) == {"drop_nulls": True}
    assert features.parents == ("cleaned@1",)
    assert parts["train"].run_id == prep_id and parts["train"].parents == ("features@1",)
    assert cairn.Client().data.catalog.run_inputs(prep_id) == [
        ("cleaned", 1, "input"), ("raw", 1, "input"), ("features", 1, "split")]


def test_lineage_upstream_and_downstream(tracking, tmp_path):
    raw, cleaned, features, parts, prep_id, train_id = _pipeline(tracking, tmp_path)
    client = cairn.Client()
    up = client.lineage(f"run:{train_id}")
    assert {"dataset:features.train@1", "dataset:features.test@1", "dataset:features@1",
            "dataset:cleaned@1", "dataset:raw@1", f"run:{prep_id}"} <= up.ids()
    roles = {(e.source, e.role) for e in up.edges if e.relation == "input"}
    assert ("dataset:features.train@1", "train") in roles
    down = client.lineage("raw@1", direction="downstream")
    assert {"dataset:cleaned@1", "dataset:features@1", "dataset:features.train@1",
            f"run:{train_id}", f"run:{prep_id}"} <= down.ids()
    shallow = client.lineage("raw@1", direction="downstream", depth=1)
    assert shallow.ids() == {"dataset:raw@1", "dataset:cleaned@1", f"run:{prep_id}"}
    with pytest.raises(InvalidArgument):
        client.lineage("raw@1", direction="sideways")
    with pytest.raises(NotFound):
        client.lineage("nope@1")


def test_model_versions_join_the_graph(tracking, tmp_path):
    pytest.importorskip("cairn.registry")
    sklearn_linear = pytest.importorskip("sklearn.linear_model")
    _, _, _, parts, _, _ = _pipeline(tracking, tmp_path)
    with cairn.start_run(name="fit") as fit:
        cairn.log_input(parts["train"].ref, role="train")
        model = sklearn_linear.LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
        mv = cairn.log_model(model, "clf")
    client = cairn.Client()
    up = client.lineage(f"model:clf@{mv.version}")
    assert f"run:{fit.id}" in up.ids() and "dataset:features.train@1" in up.ids()
    assert "dataset:raw@1" in up.ids()  # the whole way back to the raw data
    down = client.lineage("raw@1", direction="downstream")
    assert f"model:clf@{mv.version}" in down.ids()
    assert client.lineage("model:clf@latest").root == f"model:clf@{mv.version}"
    out = CliRunner().invoke(cli, ["--store", str(tracking), "lineage", f"model:clf@{mv.version}"])
    assert out.exit_code == 0, out.output
    assert f"model clf@{mv.version}" in out.output and "raw@1" in out.output


def test_cli_lineage_tree_and_json(tracking, tmp_path):
    _, _, _, _, _, train_id = _pipeline(tracking, tmp_path)
    runner = CliRunner()
    out = runner.invoke(cli, ["--store", str(tracking), "lineage", "features.train@1"])
    assert out.exit_code == 0, out.output
    text = out.output
    assert "data features.train@1" in text and "← derived data features@1" in text
    assert "← produced run prep" in text and "normalize=zscore" in text
    js = runner.invoke(cli, ["--store", str(tracking), "lineage", "raw@1", "--downstream",
                             "--json"])
    assert js.exit_code == 0 and '"relation": "input"' in js.output
    graph = json.loads(js.output)
    kinds = {n["id"]: n["kind"] for n in graph["nodes"]}
    # A data set node stays a data set whatever its own attributes call "kind".
    assert {kinds[n["id"]] for n in graph["nodes"] if n["id"].startswith("data")} == {"dataset"}
    assert all(isinstance(n["attrs"], dict) for n in graph["nodes"])
    # A run by the prefix of its id that tables print, as other commands take it.
    short = runner.invoke(cli, ["--store", str(tracking), "lineage", f"run:{train_id[:8]}"])
    assert short.exit_code == 0, short.output
    assert short.output == runner.invoke(cli, ["--store", str(tracking), "lineage",
                                               f"run:{train_id}"]).output


def test_log_input_needs_a_run_and_a_version(tracking, tmp_path):
    cairn.data.add(make_tree(tmp_path / "r", {"a.txt": b"a"}), name="r")
    with pytest.raises(NoActiveRun):
        cairn.log_input("r@1")
    with cairn.start_run():
        with pytest.raises(NotFound):
            cairn.log_input("r@2")
        v = cairn.log_input("r", role="train")
        assert v.ref == "r@1"


def test_a_parent_missing_from_this_store_is_shown_as_a_stub(tracking, tmp_path, other):
    from cairn.data import remotes

    raw = cairn.data.add(make_tree(tmp_path / "raw", {"raw.csv": RAW}), name="raw")
    make_tree(tmp_path / "clean", {"clean.csv": RAW[:100]})
    cairn.data.derive([raw.ref], tmp_path / "clean", name="cleaned")
    ds = cairn.Client().data
    remotes.add_remote(ds.store.root, "nas", str(tmp_path / "nas"))
    ds.push("cleaned", progress=False)
    remotes.add_remote(other.data.store.root, "nas", str(tmp_path / "nas"))
    other.data.pull("cleaned", progress=False)  # without its parent raw@1
    graph = other.lineage("cleaned@1")
    assert graph.nodes["dataset:raw@1"].attrs == {"missing": True}
    from cairn.lineage import render
    from rich.console import Console

    console = Console(record=True, width=120)
    console.print(render(graph))
    assert "raw@1 (not in this store)" in console.export_text()
