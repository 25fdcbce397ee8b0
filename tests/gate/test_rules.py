"""The metric rule language: what parses, what it means, and errors that point at the spot."""

import math

import pytest

from cairn.errors import InvalidArgument
from cairn.gate import parse_rule
from cairn.gate.seeds import one_sided


@pytest.mark.parametrize("text, metric, op, baseline, threshold, relative", [
    ("val_auc >= baseline - 0.005", "val_auc", ">=", 0.9, 0.895, True),
    ("latency_ms <= baseline * 1.1", "latency_ms", "<=", 100.0, 110.0, True),
    ("val_auc >= 0.9", "val_auc", ">=", None, 0.9, False),
    ("loss<baseline", "loss", "<", 2.0, 2.0, True),
    ("acc == 1", "acc", "==", None, 1.0, False),
    ("acc > -(baseline + 1) / 2", "acc", ">", 3.0, -2.0, True),
    ("acc > 2 * (baseline - 1e-2)", "acc", ">", 1.0, 1.98, True),
    ("acc > 1 - 2 - 3", "acc", ">", None, -4.0, False),  # left-associative
    ("acc > 8 / 4 / 2", "acc", ">", None, 1.0, False),
    ("acc > 1 + 2 * 3", "acc", ">", None, 7.0, False),  # * binds tighter
    ("acc >= .5", "acc", ">=", None, 0.5, False),
    ('"val auc" >= baseline', "val auc", ">=", 0.5, 0.5, True),
    ("`a|b` >= baseline", "a|b", ">=", 0.5, 0.5, True),
    ("val/auc@0.5 >= baseline", "val/auc@0.5", ">=", 0.5, 0.5, True),
    ("  val_auc   >=   baseline  ", "val_auc", ">=", 0.5, 0.5, True),
])
def test_rules_parse_and_compute_their_threshold(text, metric, op, baseline, threshold, relative):
    rule = parse_rule(text)
    assert (rule.metric, rule.op, rule.relative) == (metric, op, relative)
    assert math.isclose(rule.threshold_for(baseline), threshold)
    assert rule.text == text.strip()


def test_holds_applies_the_operator():
    rule = parse_rule("val_auc >= baseline - 0.005")
    assert rule.holds(0.896, 0.9) == (True, pytest.approx(0.895))
    assert rule.holds(0.894, 0.9)[0] is False
    assert parse_rule("x > baseline").holds(1.0, 1.0)[0] is False
    assert parse_rule("x == 2").holds(2.0, None)[0] is True
    with pytest.raises(ZeroDivisionError):
        parse_rule("x >= 1 / baseline").holds(1.0, 0.0)


@pytest.mark.parametrize("text, position, expected", [
    ("val_auc >= baseline -", 22, "expected a number, 'baseline' or '('"),
    ("val_auc => 0.9", 9, "expected a comparison"),
    ("val_auc >= foo", 12, "unknown name 'foo'"),
    (">= 0.9", 1, "expected a metric name"),
    ("val_auc >= 0.9 0.1", 16, "expected an operator"),
    ("val_auc >= (baseline", 21, "expected ')'"),
    ("val_auc", 8, "expected a comparison"),
    ('"val auc >= 1', 14, "expected a closing \""),
    ("val_auc >= baseline ** 2", 22, "expected a number"),
    ("val_auc != 1", 9, "expected a comparison"),
    ("val_auc >= __import__('os')", 12, "unknown name '__import__'"),
])
def test_a_bad_rule_names_the_position(text, position, expected):
    with pytest.raises(InvalidArgument) as info:
        parse_rule(text)
    msg = info.value.message
    assert expected in msg and f"position {position}" in msg, msg
    assert info.value.details["position"] == position
    # The caret line points at the same column under the rule.
    rule_line, caret_line = msg.splitlines()[1:3]
    assert caret_line.index("^") - 2 == position - 1 and rule_line == "  " + text


@pytest.mark.parametrize("value, words", [
    (None, "must be a string"), (3, "must be a string"), ("", "must not be empty"),
    ("   ", "must not be empty"), ("x" * 1001 + " > 1", "limit is 1000"),
    ("val\ud800 >= 1", "lone surrogate"),
])
def test_rules_that_are_not_text_are_refused(value, words):
    with pytest.raises(InvalidArgument, match=words):
        parse_rule(value)


def test_one_sided_welch_matches_scipy():
    from scipy import stats as sp

    a, b = [0.91, 0.93, 0.92, 0.95], [0.88, 0.9, 0.89]
    for greater in (True, False):
        ours = one_sided(a, b, greater)
        ref = sp.ttest_ind(a, b, equal_var=False, alternative="greater" if greater else "less")
        assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-6)
        assert ours.alternative == ("greater" if greater else "less")
    mw = one_sided(a, b, True, "mann-whitney")
    ref = sp.mannwhitneyu(a, b, alternative="greater")
    assert mw.p_value == pytest.approx(ref.pvalue, rel=1e-6)


def test_one_sided_without_spread_has_no_p_value():
    t = one_sided([1.0, 1.0], [0.5, 0.5], True)
    assert t.p_value is None and "constant" in t.note
    t = one_sided([1.0], [0.5, 0.6], True)
    assert t.p_value is None and "2+" in t.note


def test_deep_nesting_and_long_chains_are_refused_or_computed_not_crashed():
    from cairn.gate.rules import MAX_DEPTH, MAX_RULE

    with pytest.raises(InvalidArgument, match="nested parentheses"):
        parse_rule("m >= " + "(" * 400 + "1" + ")" * 400)
    ok = parse_rule("m >= " + "(" * MAX_DEPTH + "baseline" + ")" * MAX_DEPTH)
    assert ok.threshold_for(2.0) == 2.0
    signs = "-" * (MAX_RULE - 6)
    assert parse_rule(f"m>={signs}1").threshold_for(None) == (-1.0 if len(signs) % 2 else 1.0)
    chain = "m >= baseline*" + "*".join(["1"] * 490)  # 490 operators deep, on the left
    assert len(chain) <= MAX_RULE
    assert parse_rule(chain).threshold_for(3.0) == 3.0


def test_a_threshold_that_is_not_finite_is_refused_or_fails():
    with pytest.raises(InvalidArgument, match="not a finite number"):
        parse_rule("m >= 1e308 * 10")
    with pytest.raises(InvalidArgument, match="division by zero"):
        parse_rule("m >= 1 / 0")
    rule = parse_rule("m <= baseline * 1e308 * 10")  # known only once the baseline is
    with pytest.raises(OverflowError):
        rule.holds(0.5, 0.9)
