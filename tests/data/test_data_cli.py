"""`cairn data ...`: each command over a real store, with readable output and clean errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cairn.cli.main import cli

from .conftest import make_tree

CSV1 = b"id,amount,label\n1,1.0,a\n2,2.0,b\n3,3.0,a\n4,4.0,b\n"
CSV2 = b"id,amount,label\n1,1.0,a\n2,20.0,b\n3,30.0,a\n4,40.0,b\n5,50.0,\n"


@pytest.fixture
def run(tracking):
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(cli, ["--store", str(tracking), *args])

    return invoke


def test_add_ls_show_get(run, tmp_path):
    src = make_tree(tmp_path / "src", {"t.csv": CSV1, "docs/readme.txt": b"hello"})
    out = run("data", "add", str(src), "-n", "sales", "-m", "first", "-a", "gold")
    assert out.exit_code == 0, out.output
    assert out.output.startswith("sales@1: 2 file(s)")
    assert run("data", "add", str(src), "-n", "sales").output.startswith("unchanged: sales@1")
    listing = run("data", "ls")
    assert "sales" in listing.output and "gold→v1" in listing.output
    assert "first" in run("data", "ls", "sales").output
    shown = run("data", "show", "sales@gold")
    assert "4 rows, 3 columns" in shown.output and "amount" in shown.output
    js = json.loads(run("data", "show", "sales@1", "--json").output)
    assert js["stats"]["t.csv"]["rows"] == 4 and js["aliases"] == ["gold"]
    got = run("data", "get", "sales@1", str(tmp_path / "out"), "--path", "docs")
    assert got.exit_code == 0 and "1 file(s) written" in got.output
    assert (tmp_path / "out" / "docs" / "readme.txt").read_bytes() == b"hello"
    assert run("data", "verify", "sales@1").exit_code == 0
    bad = run("data", "get", "sales@9", str(tmp_path / "x"))
    assert bad.exit_code == 1 and bad.output == "Error: data set 'sales' has no version 9\n"


def test_diff_alias_split_and_expectations(run, tmp_path):
    src = make_tree(tmp_path / "src", {"t.csv": CSV1})
    run("data", "add", str(src), "-n", "sales")
    (src / "t.csv").write_bytes(CSV2)
    assert run("data", "add", str(src), "-n", "sales").exit_code == 0
    d = run("data", "diff", "sales@1", "sales@2")
    assert d.exit_code == 0, d.output
    assert "0 added, 0 removed, 1 changed" in d.output
    assert "rows 4 → 5" in d.output and "amount DRIFT" in d.output
    assert json.loads(run("data", "diff", "sales@1", "sales@2", "--json").output)["changed"]
    assert run("data", "alias", "sales@1", "gold").output.strip() == "sales@gold → sales@1"
    assert run("data", "alias", "sales", "gold", "--delete").exit_code == 0
    sp = run("data", "split", "sales@2", "-f", "train=0.6", "-f", "test=0.4", "--seed", "1")
    assert sp.exit_code == 0, sp.output
    assert "train: sales.train@1" in sp.output and "test: sales.test@1" in sp.output
    assert run("data", "split", "sales@2", "-f", "train").exit_code == 1
    failed = run("data", "add", str(src), "-n", "strict", "-e", "label not null")
    assert failed.exit_code == 1
    assert "FAIL  label not null [t.csv]: 1 null(s) in 'label'" in failed.output
    assert "Traceback" not in failed.output


def test_the_progress_bar_counts_in_the_units_the_result_prints(capsys):
    """The bar said MB (decimal) where `data add`'s result says MiB: both are binary now."""
    from cairn.progress import bar

    with bar("adding", 10 * 1024 * 1024, enabled=True) as advance:
        advance(3 * 1024 * 1024)
    err = capsys.readouterr().err
    assert "3.0/10.0 MiB" in err and " MB" not in err
    assert "MiB/s" in err or "?" in err  # the speed, when rich had a moment to measure it


def test_verify_json_reads_the_version_once(run, tracking, tmp_path):
    """`data verify --json` names the version it checked (name@N) from the one read it makes."""
    from cairn.store import open_store
    from conformance_backends import sql_statements

    src = make_tree(tmp_path / "src", {"t.csv": CSV1})
    assert run("data", "add", str(src), "-n", "sales", "-a", "gold").exit_code == 0
    engine = open_store(str(tracking)).index.engine  # the store the CLI opens (one per path)
    with sql_statements(engine) as seen:
        out = run("data", "verify", "sales@gold", "--json")
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["ref"] == "sales@1"
    resolves = [s for s in seen if s.lstrip().startswith("SELECT") and "FROM dataset_versions" in s]
    assert len(resolves) == 1, resolves
