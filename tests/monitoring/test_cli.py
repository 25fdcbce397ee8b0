"""`cairn monitor drift`: the report as a user reads it, and bad input said clearly."""

import json

import pytest
from click.testing import CliRunner

import cairn
from cairn.cli.main import cli
from cairn.monitoring.results import EXPERIMENT

from .conftest import train

SPAN = ["--since", "2025-01-31T10:00", "--until", "2025-01-31T12:00"]


def run(store, *args):
    return CliRunner().invoke(cli, ["--store", str(store), *args])


def test_table_per_window_and_exit_zero_with_drift(fraud, tracking):
    res = run(tracking, "monitor", "drift", "models:/fraud@production", "--window", "1h", *SPAN)
    assert res.exit_code == 0, res.output
    out = res.output
    assert "fraud 1.0.0 against transactions@1 (its training data, found through lineage)" in out
    assert "2025-01-31 10:00 to 11:00 UTC: 600 rows, 0 of 4 columns drifted (0%): no data set drift" in out
    assert "2025-01-31 11:00 to 12:00 UTC: 600 rows, 3 of 4 columns drifted (75%): data set drifted" in out
    assert "wasserstein" in out and "jensenshannon" in out
    assert "2 window(s) stored in run" in out
    client = cairn.Client(str(tracking))
    runs = client.search_runs([EXPERIMENT])
    assert len(runs) == 1 and runs[0].metrics["drift.share"] == 0.75


def test_json_document(fraud, tracking):
    res = run(tracking, "monitor", "drift", "models:/fraud/1.0.0", *SPAN, "--json", "--no-store",
              "--method", "amount=psi", "--threshold", "amount=0.5", "--share", "0.9")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert (doc["model"], doc["version"], doc["reference"], doc["found_by"]) == (
        "fraud", "1.0.0", "transactions@1", "lineage")
    assert doc["window_seconds"] == 3600 and doc["share_threshold"] == 0.9 and doc["run_id"] is None
    assert [w["rows"] for w in doc["windows"]] == [600, 600]
    amount = doc["windows"][1]["columns"][0]
    assert (amount["column"], amount["method"], amount["threshold"]) == ("amount", "psi", 0.5)
    assert doc["windows"][1]["share"] == 0.75 and doc["windows"][1]["drifted"] is False
    assert not cairn.Client(str(tracking)).search_runs(None, "tags.`cairn.monitoring.model` = 'fraud'")


def test_explicit_reference(fraud, tracking):
    res = run(tracking, "monitor", "drift", "models:/fraud@production", *SPAN, "--no-store",
              "--reference", "transactions@1")
    assert res.exit_code == 0 and "against transactions@1 (given)" in res.output


@pytest.mark.parametrize("args,message", [
    (["models:/nobody@production"], "nobody"),
    (["models:/fraud@production", "--window", "1hour"], "window '1hour' is not a duration"),
    (["models:/fraud@production", "--window", "0s"], "at least 1s"),
    (["models:/fraud@production", "--window", "1s", "--since", "2024-01-01"], "windows of"),
    (["models:/fraud@production", "--method", "amount"], "--method 'amount': give COLUMN=VALUE"),
    (["models:/fraud@production", "--method", "amount=kss"], "unknown drift method 'kss'"),
    (["models:/fraud@production", "--method", "channel=ks"], "ks compares numbers"),
    (["models:/fraud@production", "--method", "nope=psi"], "which the log does not have"),
    (["models:/fraud@production", "--method", "amount=psi", "--method", "amount=ks"], "twice"),
    (["models:/fraud@production", "--threshold", "amount=high"], "must be a number"),
    (["models:/fraud@production", "--threshold", "amount=-1"], "finite number >= 0"),
    (["models:/fraud@production", "--method", "amount=ks", "--threshold", "amount=3"], "p-value"),
    (["models:/fraud@production", "--share", "0"], "share '0' must be more than 0"),
    (["models:/fraud@production", "--since", "yesterday"], "not an ISO 8601 time"),
    (["models:/fraud@production", "--reference", "transactions"], "NAME@VERSION"),
    (["models:/fraud@production", "--reference", "transactions@9"], "transactions@9"),
    (["fraud"], "does not say which version"),
])
def test_bad_input_is_a_clear_error(fraud, tracking, args, message):
    span = [] if "--since" in args else SPAN
    res = run(tracking, "monitor", "drift", *args, *span, "--no-store")
    assert res.exit_code == 1, res.output
    assert res.output.startswith("Error: ") and message in res.output, res.output
    assert "Traceback" not in res.output


def test_empty_window_range(fraud, tracking):
    res = run(tracking, "monitor", "drift", "models:/fraud@production", "--since",
              "2025-02-01T00:00", "--until", "2025-02-01T03:00")
    assert res.exit_code == 1
    assert "Error: no answered predictions of fraud 1.0.0 in the log between" in res.output


def test_default_range_says_how_to_look_further_back(fraud, tracking):
    res = run(tracking, "monitor", "drift", "models:/fraud@production")
    assert res.exit_code == 1 and "give --since to look further back" in res.output


def test_no_lineage_is_a_clear_error(tracking, tmp_path):
    client = cairn.Client(str(tracking))
    train(client, tmp=tmp_path, log_input=False)
    from .conftest import transactions, write_log

    mv = client.get_model_version("fraud", "1.0.0")
    model = client.load_model(f"fraud/{mv.version}")
    write_log(client, model, [transactions(100, seed=3)])
    res = run(tracking, "monitor", "drift", "models:/fraud@production", *SPAN, "--no-store")
    assert res.exit_code == 1
    assert "has no training data in its lineage" in res.output
    assert "role 'train'" in res.output and "--reference NAME@VERSION" in res.output


def test_lone_surrogates_are_refused_not_crashed_on(fraud, tracking):
    for args in (["models:/fr\udc80ud@production"], ["models:/fraud@production", "--window", "1\udc80h"],
                 ["models:/fraud@production", "--method", "am\udc80unt=psi"],
                 ["models:/fraud@production", "--reference", "tr\udc80@1"]):
        res = run(tracking, "monitor", "drift", *args, *SPAN, "--no-store")
        assert res.exit_code == 1, (args, res.output, res.exception)
        assert res.output.startswith("Error: "), res.output


def test_missing_extra_names_the_pip_command(fraud, tracking):
    """A Python without SciPy (None in sys.modules: what import and find_spec see when a
    package is not installed) gets the pip command, not a traceback."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['scipy'] = None\n"
            "from cairn.cli.main import main; main()")
    out = subprocess.run([sys.executable, "-c", code, "--store", str(tracking), "monitor",
                          "drift", "models:/fraud@production", *SPAN],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stderr
    assert out.stderr.strip() == ("Error: drift monitoring needs scipy: "
                                  "pip install 'cairn[monitor]'")


def test_no_store_created_for_a_mistyped_store(tmp_path):
    res = CliRunner().invoke(cli, ["--store", str(tmp_path / "nope"), "monitor", "drift",
                                   "models:/fraud@production"])
    assert res.exit_code == 1 and "no Cairn store" in res.output
    assert not (tmp_path / "nope").exists()

