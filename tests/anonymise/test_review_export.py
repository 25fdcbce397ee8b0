"""Review of `cairn export`: exporting again, and a DEST that is the source store."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import cairn
from cairn.cli.main import cli


def _export(src, dest, *args):
    return CliRunner().invoke(cli, ["--store", str(src), "export", str(dest), *args])


@pytest.fixture
def source(tmp_path):
    src = tmp_path / "src"
    client = cairn.Client(str(src), user="zelda")
    exp = client.create_experiment("shared")
    run = client.create_run(exp.id, params={"lr": "0.1"})
    client.log_batch(run.id, [("loss", 1.0 / (i + 1), i, 1000 + i) for i in range(5)])
    client.set_terminated(run.id)
    return src, run


def _points(store, run_id):
    return len(cairn.Client(str(store)).get_metric_history(run_id, "loss"))


def test_exporting_again_with_force_keeps_each_point_once(source, tmp_path):
    src, run = source
    dest = tmp_path / "dest"
    assert _export(src, dest, "--json").exit_code == 0
    again = _export(src, dest, "--force", "--json")
    assert again.exit_code == 0, again.output
    assert _points(dest, run.id) == 5
    assert json.loads(again.output)["runs"] == 0  # it was there already


@pytest.mark.parametrize("inside", ["", "sub"])
def test_dest_in_the_source_store_is_refused(source, inside):
    src, run = source
    dest = src / inside if inside else src
    out = _export(src, dest, "--force", "--json")
    assert out.exit_code == 1 and "Traceback" not in out.output
    assert "source store" in out.output
    assert _points(src, run.id) == 5
    assert not (src / "sub").exists()
    assert CliRunner().invoke(cli, ["--store", str(src), "doctor"]).exit_code == 0
