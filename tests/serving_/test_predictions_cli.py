"""`cairn predictions ls|export`: the prediction log, as a user lists and exports it."""

import json
import time

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import cairn
from cairn.cli.main import cli
from cairn.serving.events import Scored
from cairn.serving.predlog import PredictionLog

from .conftest import COLUMNS, fit


@pytest.fixture
def logged(tracking, fraud, frame):
    """fraud 1.0.0 with 3 requests logged now (2 segments) and 1.0.1 with a failed one an
    hour earlier; returns the store and the request time."""
    X = frame[0]
    model = fit(frame)
    now = time.time()
    plog = PredictionLog(cairn.Client(str(tracking)), flush_rows=4)
    for i, rows in enumerate((slice(0, 2), slice(2, 4), slice(4, 5))):
        plog.scored(Scored(f"r{i}", "fraud", "1.0.0", "primary", "/invocations", 200, None,
                           now, 0.01, len(X[rows]), X[rows], model.predict(X[rows])))
    plog.scored(Scored("e", "fraud", "1.0.1", "primary", "/invocations", 500, "INTERNAL_ERROR",
                       now - 3600, 0.01, 0, None, None))
    plog.close()
    assert plog.stats()["written_segments"] == 3
    return str(tracking), now


def run(*args):
    return CliRunner().invoke(cli, list(args))


def test_ls_lists_segments_rows_and_bytes_per_version_and_hour(logged):
    store, now = logged
    r = run("predictions", "ls", "fraud", "--store", store, "--json")
    assert r.exit_code == 0, r.output
    groups = json.loads(r.output)
    hour = time.strftime("%Y-%m-%dT%H:00:00+00:00", time.gmtime(now))
    earlier = time.strftime("%Y-%m-%dT%H:00:00+00:00", time.gmtime(now - 3600))
    assert [(g["version"], g["hour"], g["segments"], g["rows"]) for g in groups] == [
        ("1.0.0", hour, 2, 5), ("1.0.1", earlier, 1, 1)]
    assert all(g["bytes"] > 0 for g in groups)

    r = run("predictions", "ls", "models:/fraud/1.0.1", "--store", store)
    assert r.exit_code == 0, r.output
    assert "1.0.1" in r.output and "1.0.0" not in r.output
    r = run("predictions", "ls", "models:/fraud@prod", "--store", store, "--json")
    assert [g["version"] for g in json.loads(r.output)] == ["1.0.0"]  # @prod is 1.0.0
    r = run("predictions", "ls", "fraud", "--version", "1.0.0",
            "--since", time.strftime("%Y-%m-%dT%H:00", time.gmtime(now)), "--store", store,
            "--json")
    assert [g["version"] for g in json.loads(r.output)] == ["1.0.0"]


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_export_writes_every_row_oldest_first(logged, tmp_path, frame, fmt):
    store, _now = logged
    out = tmp_path / f"log.{fmt}"
    r = run("predictions", "export", "fraud", "-o", str(out), "--store", store, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["rows"] == 6 and json.loads(r.output)["segments"] == 3
    if fmt == "parquet":
        t = pq.read_table(out).to_pandas()
    elif fmt == "csv":
        t = pd.read_csv(out)
    else:
        t = pd.DataFrame([json.loads(line) for line in out.read_text().splitlines()])
    assert t["request_id"].tolist() == ["e", "r0", "r0", "r1", "r1", "r2"]
    assert t["status"].tolist() == [500] + [200] * 5
    assert np.allclose(t["input.amount"][1:].astype(float), frame[0]["amount"][:5])
    assert t["prediction"][1:].astype(int).tolist() == fit(frame).predict(frame[0][:5]).tolist()
    assert {f"input.{c}" for c in COLUMNS} <= set(t.columns)


def test_export_by_version_and_format_option(logged, tmp_path):
    store, _now = logged
    out = tmp_path / "errors.data"
    r = run("predictions", "export", "models:/fraud/1.0.1", "-o", str(out), "--format", "jsonl",
            "--store", store)
    assert r.exit_code == 0, r.output
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["request_id"] == "e" and row["status"] == 500 and row["model_version"] == "1.0.1"
    assert row["timestamp"].endswith("+00:00")


def test_clear_errors(logged, tmp_path):
    store, _now = logged
    r = run("predictions", "ls", "models:/fraud/1.0.0", "--version", "1.0.1", "--store", store)
    assert r.exit_code == 1 and "names version 1.0.0, but --version says 1.0.1" in r.output
    r = run("predictions", "ls", "fraud", "--since", "last tuesday", "--store", store)
    assert r.exit_code == 1 and "not an ISO 8601 time" in r.output
    r = run("predictions", "ls", "fraud", "--store", str(tmp_path / "nowhere"))
    assert r.exit_code == 1 and "no Cairn store" in r.output
    assert not (tmp_path / "nowhere").exists()
    r = run("predictions", "ls", "bad/name/x", "--store", store)
    assert r.exit_code == 1 and "Error:" in r.output
    r = run("predictions", "ls", "nobody", "--store", store, "--json")
    assert r.exit_code == 0 and json.loads(r.output) == []
