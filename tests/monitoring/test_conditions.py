"""The condition language: parsed by its own parser (never eval), typed, three-valued."""

import pytest

from cairn.errors import InvalidArgument
from cairn.monitoring.conditions import ConditionError, parse


def test_arithmetic_comparisons_and_logic():
    c = parse("live.accuracy < train.accuracy - 0.05")
    assert c.facts == ("live.accuracy", "train.accuracy")
    assert c.evaluate({"live.accuracy": 0.80, "train.accuracy": 0.90}) is True
    assert c.evaluate({"live.accuracy": 0.88, "train.accuracy": 0.90}) is False
    c = parse("(serving.error_rate * 100 >= 2 or serving.latency_p99_ms > 250) and "
              "not drift.drifted")
    assert c.evaluate({"serving.error_rate": 0.03, "serving.latency_p99_ms": 10,
                       "drift.drifted": False}) is True
    assert c.evaluate({"serving.error_rate": 0.03, "serving.latency_p99_ms": 10,
                       "drift.drifted": True}) is False
    assert parse("-train.loss / 2 == -1").evaluate({"train.loss": 2.0}) is True
    assert parse("1e-3 < .5 and true != false").evaluate({}) is True
    assert parse("2 + 3 * 4 == 14").evaluate({}) is True


def test_names_arms_and_quoted_features():
    c = parse("canary.live.accuracy < primary.live.accuracy - 0.02 and "
              "drift.`card type`.drifted and drift.amount > 0.2 and predlog.dropped > 0")
    assert c.facts == ("canary.live.accuracy", "primary.live.accuracy",
                       "drift.card type.drifted", "drift.amount", "predlog.dropped")


def test_missing_facts_make_it_unknown_unless_they_do_not_matter():
    c = parse("live.accuracy < 0.9")
    assert c.evaluate({}) is None
    assert c.evaluate({"live.accuracy": None}) is None
    assert c.evaluate({"live.accuracy": float("nan")}) is None
    assert c.missing({}) == ["live.accuracy"]
    assert parse("live.accuracy < 0.9 or serving.error_rate > 0.1").evaluate(
        {"serving.error_rate": 0.5}) is True
    assert parse("live.accuracy < 0.9 and serving.error_rate > 0.1").evaluate(
        {"serving.error_rate": 0.0}) is False
    assert parse("not live.accuracy < 0.9").evaluate({}) is None
    assert parse("serving.errors / serving.requests > 0.1").evaluate(
        {"serving.errors": 0, "serving.requests": 0}) is None  # division by zero: unknown
    assert c.shown({"live.accuracy": 0.8125}) == "live.accuracy=0.8125"


@pytest.mark.parametrize("text, column, words", [
    ("live.acc < 1", 1, "unknown fact 'live.acc'"),
    ("live.accuracy <", 16, "ends where a value"),
    ("live.accuracy = 1", 15, "'=='"),
    ("serving.requests + 1", 1, "a number, not a truth value"),
    ("(live.accuracy < 1", 19, "expected ')'"),
    ("1 < 2 < 3", 7, "do not chain"),
    ("live.accuracy < 1 and 3", 23, "truth value"),
    ("not serving.requests", 5, "truth value"),
    ("drift.drifted > 1", 1, "number"),
    ("serving.requests > 1 $", 22, "unexpected character '$'"),
    ("__import__('os') > 1", 12, "unexpected character"),
    ("__import__ > 1", 1, "unknown fact '__import__'"),
    ("live.accuracy < 1e999", 17, "too large"),
    ("drift.`unclosed > 1", 7, "not closed"),
    ("", 1, "empty"),
])
def test_mistakes_name_their_column(text, column, words):
    with pytest.raises(ConditionError) as err:
        parse(text)
    assert err.value.details["column"] == column
    assert words in err.value.message
    if text:
        assert f"column {column}" in err.value.message


def test_bad_types_and_sizes_are_refused():
    for bad in (None, 3, b"x", ["a"]):
        with pytest.raises(InvalidArgument):
            parse(bad)
    with pytest.raises(InvalidArgument, match="surrogate"):
        parse("live.accuracy < 1 and drift.`\ud800`.drifted")
    with pytest.raises(ConditionError, match="over 2000"):
        parse("serving.requests > 1 " + "or true " * 300)
    with pytest.raises(ConditionError, match="nested"):
        parse("(" * 60 + "true" + ")" * 60)
    with pytest.raises(ConditionError, match="nested"):
        parse("not " * 60 + "true")


def test_any_text_parses_or_is_refused_clearly():
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    alphabet = st.sampled_from(list("()<>=!+-*/.` _01239eE") + ["live.accuracy", "and", "or",
                                                                "not", "train.loss", "true"])

    @settings(max_examples=300, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.lists(alphabet, max_size=30).map("".join) | st.text(max_size=40))
    def check(text):
        try:
            c = parse(text)
        except ConditionError as exc:
            assert 1 <= exc.details["column"] <= max(len(text), 1) + 1
            return
        except InvalidArgument:
            return
        assert c.evaluate({}) in (True, False, None)
        assert c.evaluate({f: 1.0 for f in c.facts}) in (True, False, None)

    check()
