"""What a significance panel takes: one metric, and the params its groups vary across."""

import pytest

from cairn.collab import rules
from cairn.errors import InvalidArgument


def _panel(**kw):
    return {"kind": "significance", "experiment_id": "1", "columns": ["metrics.acc"], **kw}


def test_a_significance_panel_defaults_to_seeds_and_keeps_its_params():
    assert rules.check_panels([_panel()])[0]["across"] == ["seed"]
    assert rules.check_panels([_panel(across=["seed", "fold", "seed"])])[0]["across"] == [
        "seed", "fold"]
    assert "across" not in rules.check_panels([{"kind": "table", "experiment_id": "1",
                                                "columns": ["params.lr"]}])[0]


@pytest.mark.parametrize("bad, words", [
    (_panel(columns=["params.lr"]), "metrics"),
    (_panel(columns=["metrics.a", "metrics.b"]), "one metric"),
    (_panel(across=[]), "across"),
    (_panel(across="seed"), "across"),
    (_panel(across=[1]), "across"),
    (_panel(across=["x" * 251]), "across"),
    (_panel(across=["s"] * 21), "across"),
    ({"kind": "table", "experiment_id": "1", "columns": ["params.lr"], "across": ["seed"]},
     "significance panels only"),
])
def test_a_bad_significance_panel_is_refused(bad, words):
    with pytest.raises(InvalidArgument, match=words):
        rules.check_panels([bad])


def test_the_cli_takes_a_significance_panel_across_named_params(tmp_path, monkeypatch):
    from .test_collab_cli import as_json

    import cairn

    monkeypatch.setenv("CAIRN_CAPTURE_ENV", "0")
    path = tmp_path / "store"
    cairn.Client(str(path), user="alice").create_experiment("fraud")
    try:
        d = as_json("dashboards", "put", "sig", "--panel",
                    "significance fraud metrics.auc across=seed,fold", "--store", path)
        assert (d["panels"][0]["kind"], d["panels"][0]["across"]) == ("significance",
                                                                      ["seed", "fold"])
    finally:
        cairn.store.close_store(str(path))
