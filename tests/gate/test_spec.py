"""Gate specs: rules files, and flags merged into them, each value checked."""

import pytest

from cairn.errors import InvalidArgument
from cairn.gate import GateSpec, load_spec, spec_from_dict


def test_a_full_rules_file(tmp_path):
    path = tmp_path / "gate.yaml"
    path.write_text("""
against: "@champion"
metrics:
  - val_auc >= baseline - 0.005
  - latency_ms <= baseline * 1.1
significance: 0.01
across: [seed, fold]
test: mann-whitney
require: [approval, signature]
require_baseline: true
require_significance: true
""")
    s = load_spec(path)
    assert [r.text for r in s.rules] == ["val_auc >= baseline - 0.005",
                                         "latency_ms <= baseline * 1.1"]
    assert (s.against, s.significance, s.across, s.test) == ("@champion", 0.01,
                                                             ("seed", "fold"), "mann-whitney")
    assert s.require == ("approval", "signature") and s.require_baseline and s.require_significance
    assert s.sources == (str(path),)


def test_an_empty_file_is_the_defaults(tmp_path):
    path = tmp_path / "gate.yaml"
    path.write_text("")
    assert load_spec(path) == GateSpec(sources=(str(path),))
    assert GateSpec().against == "@production" and GateSpec().across == ("seed",)


def test_merging_adds_rules_and_requirements_once():
    s = spec_from_dict({"metrics": ["a >= baseline"], "require": "approval"})
    m = s.merged(rules=["a >= baseline", "b < 1"], require=["approval, lineage", ""],
                 across=["seed"], significance=0.05)
    assert [r.text for r in m.rules] == ["a >= baseline", "b < 1"]
    assert m.require == ("approval", "lineage") and m.significance == 0.05


@pytest.mark.parametrize("data, words", [
    ([], "top level must be a mapping"),
    ({"metrics": "a > 1"}, "metrics must be a list"),
    ({"metrics": [1]}, "metrics[0]: a metric rule must be a string"),
    ({"require": [3]}, "a requirement must be a string"),
    ({"require": {"a": 1}}, "require must be a list"),
    ({"significance": 0}, "between 0 and 1"),
    ({"significance": True}, "between 0 and 1"),
    ({"significance": "0.05"}, "between 0 and 1"),
    ({"across": []}, "across must name one or more params"),
    ({"across": [""]}, "param key must not be empty"),
    ({"test": "t"}, "unknown test 't'"),
    ({"against": ""}, "--against needs a baseline"),
    ({"against": 3}, "--against needs a baseline"),
    ({"require_significance": 1}, "must be true or false"),
    ({"rules": []}, "unknown key(s) rules"),
])
def test_bad_values_are_refused_with_the_file_named(data, words):
    with pytest.raises(InvalidArgument) as info:
        spec_from_dict(data, "gate.yaml")
    assert words in info.value.message and info.value.message.startswith("gate.yaml")


def test_a_missing_file(tmp_path):
    with pytest.raises(InvalidArgument, match="does not exist"):
        load_spec(tmp_path / "nope.yaml")
