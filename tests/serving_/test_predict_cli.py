"""`cairn predict`: a file scored in batches by a registered model, as a user runs it (in process,
through click's runner: each test takes about a second)."""

import json
import os

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import cairn
from cairn.cli.main import cli

from .conftest import COLUMNS, fit
from .models import Proba


def predict(tracking, *args):
    result = CliRunner().invoke(cli, ["predict", *map(str, args), "--store", str(tracking)])
    return result


def rows(frame):
    """The fixture's 60 rows with an id column the model does not take (it passes through)."""
    X, _ = frame
    return X.assign(id=[f"t{i}" for i in range(len(X))])


def leftovers(folder):
    """Files a failed run could leave: the output or its temporary file."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith((".out", "out")))


def test_parquet_in_parquet_out_keeps_the_input_beside_the_predictions(tracking, frame, fraud,
                                                                        tmp_path):
    rows(frame).to_parquet(tmp_path / "in.parquet")
    out = predict(tracking, "models:/fraud@prod", tmp_path / "in.parquet", "-o",
                  tmp_path / "out.parquet", "--batch-rows", 25)
    assert out.exit_code == 0, out.output
    assert out.stdout.startswith("scored 60 rows with fraud/1.0.0 in ")
    got = pd.read_parquet(tmp_path / "out.parquet")
    assert list(got.columns) == [*COLUMNS, "id", "prediction"]
    pd.testing.assert_frame_equal(got[[*COLUMNS, "id"]], rows(frame))
    assert got["prediction"].tolist() == fit(frame).predict(frame[0]).tolist()


def test_csv_in_csv_out_and_a_fixed_version(tracking, frame, fraud, tmp_path):
    rows(frame).to_csv(tmp_path / "in.csv", index=False)
    out = predict(tracking, "models:/fraud/1.0.0", tmp_path / "in.csv", "-o",
                  tmp_path / "out.csv", "--batch-rows", 7, "--json")
    assert out.exit_code == 0, out.output
    got = pd.read_csv(tmp_path / "out.csv")
    pd.testing.assert_frame_equal(got[[*COLUMNS, "id"]], rows(frame))  # floats read back exactly
    assert got["prediction"].tolist() == fit(frame).predict(frame[0]).tolist()
    assert json.loads(out.stdout)["batches"] == 9


def test_json_lines_in_and_out_and_predictions_only(tracking, frame, fraud, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows(frame).to_dict("records")))
    out = predict(tracking, "models:/fraud@prod", source, "-o", tmp_path / "out.jsonl",
                  "--batch-rows", 16, "--no-keep-input")
    assert out.exit_code == 0, out.output
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert lines == [{"prediction": p} for p in fit(frame).predict(frame[0]).tolist()]


def test_many_batches_give_exactly_the_one_shot_predictions(tracking, frame, tmp_path):
    c = cairn.Client(str(tracking))
    c.register_model("proba", Proba(fit(frame)), input_example=frame[0][:5])
    rows(frame).to_csv(tmp_path / "in.csv", index=False)
    for n in (1000, 7, 1):
        out = predict(tracking, "models:/proba/1.0.0", tmp_path / "in.csv", "-o",
                      tmp_path / f"out{n}.parquet", "--batch-rows", n)
        assert out.exit_code == 0, out.output
    one = pd.read_parquet(tmp_path / "out1000.parquet")
    assert list(one.columns) == [*COLUMNS, "id", "prediction.0", "prediction.1"]
    assert np.array_equal(one[["prediction.0", "prediction.1"]].to_numpy(),
                          fit(frame).predict_proba(frame[0]))
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "out7.parquet"), one)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "out1.parquet"), one)


def test_a_pytorch_module_scores_a_table_of_its_tensor_columns(tracking, tmp_path):
    torch = pytest.importorskip("torch")
    from registry.nets import TinyNet

    torch.manual_seed(0)
    net = TinyNet(4, 8, 2)
    x = torch.randn(30, 4)
    cairn.Client(str(tracking)).register_model("net", net, input_example=x,
                                               init_kwargs={"hidden": 8})
    pd.DataFrame(x.numpy(), columns=list("abcd")).to_parquet(tmp_path / "in.parquet")
    out = predict(tracking, "models:/net/1.0.0", tmp_path / "in.parquet", "-o",
                  tmp_path / "out.parquet", "--batch-rows", 8, "--no-keep-input")
    assert out.exit_code == 0, out.output
    got = pd.read_parquet(tmp_path / "out.parquet")
    assert list(got.columns) == ["prediction.0", "prediction.1"]
    with torch.no_grad():
        assert np.allclose(got.to_numpy(), net(x).numpy(), atol=1e-6)
    x[13, 2] = float("nan")
    pd.DataFrame(x.numpy(), columns=list("abcd")).to_parquet(tmp_path / "in.parquet")
    out = predict(tracking, "models:/net/1.0.0", tmp_path / "in.parquet", "-o",
                  tmp_path / "nan.parquet", "--batch-rows", 8)
    assert out.exit_code == 1 and "batch 2 (rows 8 to 15" in out.stderr, out.output
    assert "holds NaN or null at [13, 2]" in out.stderr
    assert not (tmp_path / "nan.parquet").exists()


def test_a_row_that_does_not_fit_names_its_batch_and_leaves_no_output(tracking, frame, fraud,
                                                                      tmp_path):
    bad = rows(frame)
    bad.loc[45, "age"] = None  # in the third batch of 20
    bad.to_parquet(tmp_path / "in.parquet")
    (tmp_path / "out.parquet").write_bytes(b"yesterday's scores")
    out = predict(tracking, "models:/fraud@prod", tmp_path / "in.parquet", "-o",
                  tmp_path / "out.parquet", "--batch-rows", 20)
    assert out.exit_code == 1
    message = out.stderr
    assert message.startswith("Error: ") and "batch 3 (rows 40 to 59" in message
    # conform counts rows from the batch's first; the message counts them from the file's
    assert "column 'age' holds a missing value (null or NaN) in row 45;" in message
    assert (tmp_path / "out.parquet").read_bytes() == b"yesterday's scores"  # untouched
    assert leftovers(tmp_path) == ["out.parquet"]

    rows(frame).drop(columns="score").to_csv(tmp_path / "in.csv", index=False)
    out = predict(tracking, "models:/fraud@prod", tmp_path / "in.csv", "-o",
                  tmp_path / "out.csv")
    assert out.exit_code == 1 and "column 'score' is missing" in out.stderr, out.output
    assert leftovers(tmp_path) == ["out.parquet"]


def test_a_damaged_version_is_refused_before_a_row_is_scored(tracking, frame, fraud, tmp_path):
    c = cairn.Client(str(tracking))
    entry = next(e for e in c.store.objects.get_tree(fraud.tree_oid)
                 if e.path == "model/model.pkl")
    path = tracking / "objects" / entry.digest[:2] / entry.digest[2:]
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    rows(frame).to_parquet(tmp_path / "in.parquet")
    out = predict(tracking, "models:/fraud@prod", tmp_path / "in.parquet", "-o",
                  tmp_path / "out.parquet")
    assert out.exit_code == 1 and "file model/model.pkl is corrupt" in out.stderr, out.output
    assert leftovers(tmp_path) == []


def test_what_is_not_there(tracking, fraud, tmp_path):
    out = predict(tracking, "models:/fraud@prod", tmp_path / "none.csv", "-o",
                  tmp_path / "out.csv")
    assert out.exit_code == 1 and f"no input file {tmp_path / 'none.csv'}" in out.stderr
    (tmp_path / "in.csv").write_text("amount,age,score\n1,2,3\n")
    out = predict(tracking, "models:/fraud@gone", tmp_path / "in.csv", "-o",
                  tmp_path / "out.csv")
    assert out.exit_code == 1 and "nothing to score with" in out.stderr and "'gone'" in out.stderr
    out = predict(tracking, "models:/fraud@prod", tmp_path / "in.txt", "-o",
                  tmp_path / "out.csv")
    assert out.exit_code == 1 and "give --input-format" in out.stderr
    out = predict(tracking, "models:/fraud@prod", tmp_path / "in.csv", "-o",
                  tmp_path / "no" / "out.csv")
    assert out.exit_code == 1 and "no directory" in out.stderr
    (tmp_path / "header.csv").write_text("amount,age,score\n")
    out = predict(tracking, "models:/fraud@prod", tmp_path / "header.csv", "-o",
                  tmp_path / "out.csv")
    assert out.exit_code == 1 and "header.csv holds no rows: nothing to score" in out.stderr
    out = CliRunner().invoke(cli, ["predict", "models:/fraud@prod", str(tmp_path / "in.csv"),
                                   "-o", str(tmp_path / "out.csv"), "--store",
                                   str(tmp_path / "nostore")])
    assert out.exit_code == 1 and "no Cairn store at" in out.stderr
    assert not (tmp_path / "nostore").exists()
    (tmp_path / "in.jsonl").write_text('{"amount": 1.0}\n[1.0, 2.0]\n')
    out = predict(tracking, "models:/fraud@prod", tmp_path / "in.jsonl", "-o",
                  tmp_path / "out.jsonl")
    assert out.exit_code == 1 and "in.jsonl line 2 is not a JSON object" in out.stderr
    assert leftovers(tmp_path) == []


def test_json_summary_and_formats_given_by_option(tracking, frame, fraud, tmp_path):
    rows(frame).to_csv(tmp_path / "in.data", index=False)
    out = predict(tracking, "models:/fraud@prod", tmp_path / "in.data", "-o",
                  tmp_path / "out.bin", "--input-format", "csv", "--format", "parquet",
                  "--json", "--progress")
    assert out.exit_code == 0, out.output
    summary = json.loads(out.stdout)
    assert set(summary) == {"model", "version", "rows", "batches", "seconds", "input", "output",
                            "columns", "fast_path"}
    assert summary["fast_path"] is False  # a logistic regression: its own predict
    assert summary["model"] == "fraud" and summary["version"] == "1.0.0"
    assert (summary["rows"], summary["batches"], summary["columns"]) == (60, 1, ["prediction"])
    assert summary["output"] == str(tmp_path / "out.bin") and summary["seconds"] >= 0
    assert len(pd.read_parquet(tmp_path / "out.bin")) == 60


def test_a_missing_pyarrow_names_the_extra(tracking, fraud, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "pyarrow" else real(name, *a))
    out = predict(tracking, "models:/fraud@prod", tmp_path / "in.parquet", "-o",
                  tmp_path / "out.csv")
    assert out.exit_code == 1
    assert "needs pyarrow" in out.stderr and "pip install 'cairn[serve]'" in out.stderr


def test_how_predictions_become_columns():
    from cairn import CairnError
    from cairn.serving.batch import prediction_columns

    frame = pd.DataFrame({"label": [1, 0], "score": [0.9, 0.2]})
    assert list(prediction_columns(frame, 2, "b")) == ["prediction.label", "prediction.score"]
    assert list(prediction_columns(pd.Series([1, 0], name="x"), 2, "b")) == ["prediction"]
    assert list(prediction_columns({"a": [1, 2]}, 2, "b")) == ["prediction.a"]
    assert list(prediction_columns(["yes", "no"], 2, "b")) == ["prediction"]
    with pytest.raises(CairnError, match=r"has shape \[2, 2, 2\]"):
        prediction_columns(np.zeros((2, 2, 2)), 2, "b")
    with pytest.raises(CairnError, match=r"prediction for b has shape \[3\]; a batch of 2"):
        prediction_columns([1, 2, 3], 2, "b")


@pytest.mark.parametrize("flag, fast", [((), True), (("--no-fast-path",), False)])
def test_a_forest_is_scored_the_same_with_and_without_the_fast_path(tracking, frame, tmp_path,
                                                                    flag, fast):
    forest = fit(frame, "forest")
    cairn.Client(str(tracking)).register_model("trees", forest, input_example=frame[0][:5])
    rows(frame).to_parquet(tmp_path / "in.parquet")
    out = predict(tracking, "models:/trees/1.0.0", tmp_path / "in.parquet", "-o",
                  tmp_path / "out.parquet", "--batch-rows", 7, "--json", *flag)
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["fast_path"] is fast
    got = pd.read_parquet(tmp_path / "out.parquet")
    assert got["prediction"].tolist() == forest.predict(frame[0]).tolist()
