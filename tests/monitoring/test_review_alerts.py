"""Review of issue #19's alert loop: each test pins a bug found and fixed."""

from __future__ import annotations

from cairn.monitoring import conditions


def _deep_call(n: int, fn):  # type: ignore[no-untyped-def]
    return _deep_call(n - 1, fn) if n else fn()


def test_a_long_chain_that_parses_evaluates_without_exhausting_the_stack() -> None:
    # 998 additions fit in MAX_LENGTH; the tree is as deep as the chain is long, and the
    # evaluator used to recurse once per link: RecursionError, which stopped the cycle.
    cond = conditions.parse("1" + "+1" * 998 + ">0")
    assert _deep_call(60, lambda: cond.evaluate({})) is True
    ors = " or ".join(["live.f1>0.5"] * 130)
    cond = conditions.parse(ors)
    assert _deep_call(60, lambda: cond.evaluate({"live.f1": 0.9})) is True
    assert _deep_call(60, lambda: cond.evaluate({})) is None


def test_chains_keep_left_to_right_meaning() -> None:
    assert conditions.parse("10 - 2 - 3 == 5").evaluate({}) is True
    assert conditions.parse("12 / 2 / 3 == 2").evaluate({}) is True
    assert conditions.parse("2 + 3 * 4 == 14").evaluate({}) is True
    assert conditions.parse("false and live.f1 > 0 or true").evaluate({}) is True
    assert conditions.parse("live.f1 > 0 or false").evaluate({}) is None
    assert conditions.parse("1 / 0 > 1 or true").evaluate({}) is True
    assert conditions.parse("1 / 0 > 1 and true").evaluate({}) is None
