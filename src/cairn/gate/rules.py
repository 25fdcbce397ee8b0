"""Metric rules of the CI gate: ``METRIC OP EXPR``, parsed without ``eval``.

::

    rule    := metric OP expr            OP: >= > <= < ==
    metric  := a bare name (no spaces, no < > = ! " `) | "quoted name" | `quoted name`
    expr    := term (('+' | '-') term)*
    term    := factor (('*' | '/') factor)*
    factor  := NUMBER | 'baseline' | '(' expr ')' | '-' factor | '+' factor

``baseline`` is the baseline version's value of the same metric.  A bad rule raises
:class:`~cairn.errors.InvalidArgument` naming the position (1-based) and what was
expected there.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from typing import Any, Callable, Union

from ..errors import InvalidArgument

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq,
}
MAX_RULE = 1000
MAX_DEPTH = 50  # nested parentheses (each is three calls deep in the parser)
_BARE = re.compile(r"[^\s<>=!\"`]+")
_OP = re.compile(r">=|<=|==|>|<")
_NUMBER = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# -- the threshold expression ------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Num:
    value: float


@dataclass(frozen=True, slots=True)
class Baseline:
    pass


@dataclass(frozen=True, slots=True)
class Neg:
    operand: "Expr"


@dataclass(frozen=True, slots=True)
class BinOp:
    op: str  # + - * /
    left: "Expr"
    right: "Expr"


Expr = Union[Num, Baseline, Neg, BinOp]


def evaluate(expr: Expr, baseline: float | None) -> float:
    """The value of ``expr`` with ``baseline``; ZeroDivisionError on a division by zero."""
    if isinstance(expr, Num):
        return expr.value
    if isinstance(expr, Baseline):
        if baseline is None:
            raise ValueError("the rule needs a baseline value")
        return baseline
    if isinstance(expr, Neg):
        return -evaluate(expr.operand, baseline)
    a, b = evaluate(expr.left, baseline), evaluate(expr.right, baseline)
    if expr.op == "+":
        return a + b
    if expr.op == "-":
        return a - b
    if expr.op == "*":
        return a * b
    if b == 0:
        raise ZeroDivisionError("division by zero")
    return a / b


def uses_baseline(expr: Expr) -> bool:
    if isinstance(expr, Baseline):
        return True
    if isinstance(expr, Neg):
        return uses_baseline(expr.operand)
    if isinstance(expr, BinOp):
        return uses_baseline(expr.left) or uses_baseline(expr.right)
    return False


# -- a rule --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class MetricRule:
    """``metric op threshold``: the candidate's value of ``metric`` compared with the
    threshold computed from the baseline's value of it."""

    text: str
    metric: str
    op: str
    threshold: Expr

    @property
    def relative(self) -> bool:
        """Whether the threshold needs the baseline's value."""
        return uses_baseline(self.threshold)

    @property
    def higher_is_better(self) -> bool | None:
        """True for >= and >, False for <= and <, None for == (no direction to test)."""
        return {">=": True, ">": True, "<=": False, "<": False}.get(self.op)

    def threshold_for(self, baseline: float | None) -> float:
        """The threshold; ZeroDivisionError on a division by zero, OverflowError when it is
        not a finite number (``baseline * 1e308``)."""
        value = evaluate(self.threshold, baseline)
        if not math.isfinite(value):
            raise OverflowError(f"the threshold is {value} (not a finite number)")
        return value

    def holds(self, candidate: float, baseline: float | None) -> tuple[bool, float]:
        """(whether the rule holds, the threshold) for one pair of values."""
        limit = self.threshold_for(baseline)
        return OPERATORS[self.op](candidate, limit), limit

    def __str__(self) -> str:
        return self.text


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.depth = 0

    def fail(self, expected: str, pos: int | None = None) -> InvalidArgument:
        at = self.pos if pos is None else pos
        found = "the end of the rule" if at >= len(self.text) else repr(self.text[at])
        return InvalidArgument(
            f"metric rule {self.text!r}: expected {expected} at position {at + 1}, found "
            f"{found}\n  {self.text}\n  {' ' * at}^", rule=self.text, position=at + 1)

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def metric(self) -> str:
        self.skip()
        if self.pos < len(self.text) and self.text[self.pos] in "\"`":
            quote = self.text[self.pos]
            end = self.text.find(quote, self.pos + 1)
            if end < 0:
                raise self.fail(f"a closing {quote}", len(self.text))
            name = self.text[self.pos + 1:end]
            if not name.strip():
                raise self.fail("a metric name inside the quotes", self.pos + 1)
            self.pos = end + 1
            return name
        m = _BARE.match(self.text, self.pos)
        if m is None:
            raise self.fail("a metric name (quote it with \"...\" if it holds spaces)")
        self.pos = m.end()
        return m.group()

    def op(self) -> str:
        self.skip()
        m = _OP.match(self.text, self.pos)
        if m is None:
            raise self.fail("a comparison: >=, >, <=, < or ==")
        self.pos = m.end()
        return m.group()

    def expr(self) -> Expr:
        node = self.term()
        while True:
            self.skip()
            if self.pos < len(self.text) and self.text[self.pos] in "+-":
                op = self.text[self.pos]
                self.pos += 1
                node = BinOp(op, node, self.term())
            else:
                return node

    def term(self) -> Expr:
        node = self.factor()
        while True:
            self.skip()
            if self.pos < len(self.text) and self.text[self.pos] in "*/":
                op = self.text[self.pos]
                self.pos += 1
                node = BinOp(op, node, self.factor())
            else:
                return node

    def factor(self) -> Expr:
        self.skip()
        start = self.pos
        if self.pos >= len(self.text):
            raise self.fail("a number, 'baseline' or '('")
        ch = self.text[self.pos]
        if ch in "+-":  # a run of signs, read in a loop (not one call each)
            negative = False
            while self.pos < len(self.text) and self.text[self.pos] in "+-":
                negative ^= self.text[self.pos] == "-"
                self.pos += 1
                self.skip()
            inner = self.factor()
            return Neg(inner) if negative else inner
        if ch == "(":
            if self.depth >= MAX_DEPTH:
                raise self.fail(f"at most {MAX_DEPTH} nested parentheses, not another '('")
            self.pos += 1
            self.depth += 1
            node = self.expr()
            self.depth -= 1
            self.skip()
            if self.pos >= len(self.text) or self.text[self.pos] != ")":
                raise self.fail("')'")
            self.pos += 1
            return node
        m = _NUMBER.match(self.text, self.pos)
        if m is not None:
            self.pos = m.end()
            value = float(m.group())
            if not math.isfinite(value):
                raise self.fail("a finite number", start)
            return Num(value)
        m = _WORD.match(self.text, self.pos)
        if m is not None:
            if m.group() != "baseline":
                raise InvalidArgument(
                    f"metric rule {self.text!r}: unknown name {m.group()!r} at position "
                    f"{start + 1}; a threshold uses numbers and 'baseline' (the baseline's "
                    f"value of the same metric)\n  {self.text}\n  {' ' * start}^",
                    rule=self.text, position=start + 1)
            self.pos = m.end()
            return Baseline()
        raise self.fail("a number, 'baseline' or '('")


def parse_rule(text: Any) -> MetricRule:
    """The :class:`MetricRule` written as ``text``, e.g. ``"val_auc >= baseline - 0.005"``."""
    if not isinstance(text, str):
        raise InvalidArgument(f"a metric rule must be a string like 'val_auc >= baseline - "
                              f"0.005', got {type(text).__name__} {text!r}")
    from ..store.validation import check_text

    check_text(text, "metric rule")
    if len(text) > MAX_RULE:
        raise InvalidArgument(f"metric rule is {len(text)} characters long; the limit is "
                              f"{MAX_RULE}")
    if not text.strip():
        raise InvalidArgument("a metric rule must not be empty; write e.g. 'val_auc >= "
                              "baseline - 0.005'")
    p = _Parser(text)
    metric = p.metric()
    op = p.op()
    threshold = p.expr()
    p.skip()
    if p.pos < len(text):
        raise p.fail("an operator (+ - * /) or the end of the rule")
    rule = MetricRule(text.strip(), metric, op, threshold)
    if not rule.relative:  # a constant threshold is known now: 1e308 * 10 is refused
        try:
            rule.threshold_for(None)
        except ArithmeticError as e:
            raise InvalidArgument(f"metric rule {text!r}: {e}", rule=text) from None
    return rule
