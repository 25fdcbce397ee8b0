"""The condition of an alert rule: a small expression language, parsed here, never ``eval``'d.

::

    live.accuracy < train.accuracy - 0.05
    serving.error_rate > 0.02 or serving.latency_p99_ms > 250
    canary.live.accuracy < primary.live.accuracy - 0.02 and not drift.amount.drifted

Numbers, fact names (dotted; a part that is not a plain word is quoted in backticks:
``drift.`card type```), ``+ - * /``, comparisons ``< <= > >= == !=``, ``and``, ``or``,
``not``, ``true``, ``false`` and parentheses.  Types are checked when the condition is
parsed: a comparison gives a truth value, arithmetic wants numbers, ``and``/``or``/``not``
want truth values; a fact is a number except ``drift.<feature>.drifted`` and
``drift.drifted``, which are truth values.

Evaluation is three-valued: a fact that is missing (no labels yet, no traffic on the
canary) is *unknown*, and so is anything computed from it, except where the answer does
not depend on it (``false and x`` is false).  A rule whose condition is unknown is not
active: no firing on no data.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ..errors import InvalidArgument

MAX_LENGTH = 2000
MAX_DEPTH = 50

#: The facts a condition may name; each may be prefixed by ``primary.`` or ``canary.``
#: (that arm's requests and version) except ``predlog.*``.
LIVE = ("accuracy", "f1", "auc", "rmse", "mae", "labelled")
SERVING = ("requests", "errors", "error_rate", "latency_p99_ms")
SCOPES = ("primary", "canary")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_KEYWORDS = {"and", "or", "not", "true", "false"}
_COMPARE = ("<=", ">=", "==", "!=", "<", ">")

Value = float | bool | None


@dataclass(frozen=True, slots=True)
class Token:
    kind: str    # number | name | op | keyword | end
    text: str
    col: int     # 1-based column in the condition
    value: Any = None
    parts: tuple[str, ...] = ()   # a name's parts: ``a.b`` in backticks is one part


class ConditionError(InvalidArgument):
    """A condition that does not parse; ``column`` (1-based) says where."""


def _error(text: str, col: int, why: str) -> ConditionError:
    return ConditionError(f"condition {text!r}, column {col}: {why}", column=col)


def tokenize(text: str) -> list[Token]:
    out: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        col = i + 1
        m = _NUMBER.match(text, i)
        if m is not None and (c.isdigit() or c == "."):
            value = float(m.group())
            if not math.isfinite(value):
                raise _error(text, col, f"number {m.group()} is too large")
            out.append(Token("number", m.group(), col, value))
            i = m.end()
            continue
        if (c.isascii() and c.isalpha()) or c == "_" or c == "`":
            parts, i = _name(text, i)
            if len(parts) == 1 and parts[0] in _KEYWORDS and c != "`":
                out.append(Token("keyword", parts[0], col))
            else:
                out.append(Token("name", text[col - 1:i], col, ".".join(parts), tuple(parts)))
            continue
        two = text[i:i + 2]
        if two in ("<=", ">=", "==", "!="):
            out.append(Token("op", two, col))
            i += 2
            continue
        if c in "<>+-*/()":
            out.append(Token("op", c, col))
            i += 1
            continue
        if c == "=":
            raise _error(text, col, "'=' is not a comparison; write '=='")
        raise _error(text, col, f"unexpected character {c!r}")
    out.append(Token("end", "", n + 1))
    return out


def _name(text: str, i: int) -> tuple[list[str], int]:
    """The dotted parts of a fact name starting at ``i`` and where it ends."""
    parts: list[str] = []
    while True:
        if i < len(text) and text[i] == "`":
            end = text.find("`", i + 1)
            if end < 0:
                raise _error(text, i + 1, "a backtick-quoted name is not closed")
            if end == i + 1:
                raise _error(text, i + 1, "an empty name between backticks")
            parts.append(text[i + 1:end])
            i = end + 1
        else:
            m = _WORD.match(text, i)
            if m is None:
                raise _error(text, i + 1, "a name part is missing after '.'")
            parts.append(m.group())
            i = m.end()
        if i < len(text) and text[i] == "." and i + 1 < len(text) \
                and (text[i + 1] in "`_" or (text[i + 1].isascii() and text[i + 1].isalpha())):
            i += 1
            continue
        return parts, i


def fact_kind(name: str, parts: tuple[str, ...] | list[str] | None = None) -> str | None:
    """``"number"`` or ``"bool"`` for a fact a condition may name; None if it is not one.
    ``parts``: the name as written (a backtick-quoted part may hold dots: a feature
    ``price.usd``); by default ``name`` split at its dots."""
    parts = list(parts) if parts else name.split(".")
    if parts[0] == "predlog":
        return "number" if parts[1:] == ["dropped"] else None
    if parts[0] in SCOPES:
        parts = parts[1:]
    if len(parts) < 2:
        return None
    family, rest = parts[0], parts[1:]
    if family == "live":
        return "number" if len(rest) == 1 and rest[0] in LIVE else None
    if family == "serving":
        return "number" if len(rest) == 1 and rest[0] in SERVING else None
    if family == "train":
        return "number"
    if family == "drift":
        if rest == ["drifted"]:
            return "bool"
        if len(rest) == 1:
            return "number"   # drift.share, drift.rows, drift.<feature> (its score)
        if len(rest) == 2 and rest[1] == "drifted":
            return "bool"
        if len(rest) == 2 and rest[1] == "missing":
            return "number"
    return None


def _known_facts() -> str:
    return ("live.<" + "|".join(LIVE) + ">, serving.<" + "|".join(SERVING) + ">, "
            "train.<metric>, drift.share, drift.<feature>, drift.<feature>.drifted, "
            "predlog.dropped; prefix primary. or canary. for one arm")


# -- the tree ---------------------------------------------------------------------------
# A node is a tuple: ("num", value) | ("bool", value) | ("fact", name) | ("neg", node)
# | ("bin", op, left, right) | ("not", node) | ("and"|"or", left, right)
Node = tuple


@dataclass(frozen=True, slots=True)
class Condition:
    """A parsed condition: its text, its tree and the facts it names."""

    text: str
    tree: Node
    facts: tuple[str, ...]

    def evaluate(self, facts: Mapping[str, Value]) -> Value:
        """True, False or None (unknown: a fact it needs is missing, or a division by 0)."""
        return _eval(self.tree, facts)

    def missing(self, facts: Mapping[str, Value]) -> list[str]:
        return [f for f in self.facts if facts.get(f) is None]

    def shown(self, facts: Mapping[str, Value]) -> str:
        """The values of its facts, for a reason or a message: ``live.accuracy=0.81, ...``."""
        return ", ".join(f"{f}={_fmt(facts.get(f))}" for f in self.facts)


def _fmt(v: Value) -> str:
    if v is None:
        return "unknown"
    if isinstance(v, bool):
        return "true" if v else "false"
    return f"{v:.6g}"


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0
        self.names: list[str] = []

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        t = self.tokens[self.i]
        self.i += 1
        return t

    def at(self, kind: str, *texts: str) -> bool:
        return self.tok.kind == kind and (not texts or self.tok.text in texts)

    def fail(self, tok: Token, why: str) -> ConditionError:
        return _error(self.text, tok.col, why)

    def parse(self) -> tuple[Node, str]:
        node, kind = self.or_()
        if not self.at("end"):
            raise self.fail(self.tok, f"unexpected {self.tok.text!r}; expected an operator "
                                      "or the end")
        return node, kind

    def _deeper(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(self.tok, f"nested more than {MAX_DEPTH} deep")

    def _want(self, kind: str, want: str, tok: Token, what: str) -> None:
        if kind != want:
            raise self.fail(tok, f"{what} needs a {'truth value' if want == 'bool' else 'number'}"
                                 f", got a {'truth value' if kind == 'bool' else 'number'}")

    def or_(self) -> tuple[Node, str]:
        start = self.tok
        node, kind = self.and_()
        while self.at("keyword", "or"):
            op = self.take()
            self._want(kind, "bool", start, "'or'")
            right_tok = self.tok
            right, rk = self.and_()
            self._want(rk, "bool", right_tok, f"'or' at column {op.col}")
            node, kind = ("or", node, right), "bool"
        return node, kind

    def and_(self) -> tuple[Node, str]:
        start = self.tok
        node, kind = self.not_()
        while self.at("keyword", "and"):
            op = self.take()
            self._want(kind, "bool", start, "'and'")
            right_tok = self.tok
            right, rk = self.not_()
            self._want(rk, "bool", right_tok, f"'and' at column {op.col}")
            node, kind = ("and", node, right), "bool"
        return node, kind

    def not_(self) -> tuple[Node, str]:
        if self.at("keyword", "not"):
            self.take()
            self._deeper()
            tok = self.tok
            node, kind = self.not_()
            self.depth -= 1
            self._want(kind, "bool", tok, "'not'")
            return ("not", node), "bool"
        return self.compare()

    def compare(self) -> tuple[Node, str]:
        start = self.tok
        left, lk = self.sum_()
        if self.at("op", *_COMPARE):
            op = self.take()
            right_tok = self.tok
            right, rk = self.sum_()
            if op.text in ("==", "!="):
                if lk != rk:
                    raise self.fail(op, f"{op.text!r} compares a number with a truth value")
            else:
                self._want(lk, "number", start, f"{op.text!r}")
                self._want(rk, "number", right_tok, f"{op.text!r}")
            if self.at("op", *_COMPARE):
                raise self.fail(self.tok, "comparisons do not chain; join them with 'and'")
            return ("bin", op.text, left, right), "bool"
        return left, lk

    def sum_(self) -> tuple[Node, str]:
        start = self.tok
        node, kind = self.term()
        while self.at("op", "+", "-"):
            op = self.take()
            self._want(kind, "number", start, f"{op.text!r}")
            tok = self.tok
            right, rk = self.term()
            self._want(rk, "number", tok, f"{op.text!r}")
            node = ("bin", op.text, node, right)
        return node, kind

    def term(self) -> tuple[Node, str]:
        start = self.tok
        node, kind = self.unary()
        while self.at("op", "*", "/"):
            op = self.take()
            self._want(kind, "number", start, f"{op.text!r}")
            tok = self.tok
            right, rk = self.unary()
            self._want(rk, "number", tok, f"{op.text!r}")
            node = ("bin", op.text, node, right)
        return node, kind

    def unary(self) -> tuple[Node, str]:
        if self.at("op", "-"):
            self.take()
            self._deeper()
            tok = self.tok
            node, kind = self.unary()
            self.depth -= 1
            self._want(kind, "number", tok, "'-'")
            return ("neg", node), "number"
        return self.primary()

    def primary(self) -> tuple[Node, str]:
        tok = self.take()
        if tok.kind == "number":
            return ("num", tok.value), "number"
        if tok.kind == "keyword" and tok.text in ("true", "false"):
            return ("bool", tok.text == "true"), "bool"
        if tok.kind == "name":
            kind = fact_kind(tok.value, tok.parts)
            if kind is None:
                raise self.fail(tok, f"unknown fact {tok.text!r}; known: {_known_facts()}")
            if tok.value not in self.names:
                self.names.append(tok.value)
            return ("fact", tok.value), kind
        if tok.kind == "op" and tok.text == "(":
            self._deeper()
            node, kind = self.or_()
            self.depth -= 1
            if not self.at("op", ")"):
                raise self.fail(self.tok, f"expected ')' to close the '(' at column {tok.col}")
            self.take()
            return node, kind
        if tok.kind == "end":
            raise self.fail(tok, "the condition ends where a value was expected")
        raise self.fail(tok, f"expected a number, a fact or '(', got {tok.text!r}")


def parse(text: Any) -> Condition:
    """Parse and type-check ``text``; :class:`ConditionError` names the column of a mistake."""
    if not isinstance(text, str):
        raise InvalidArgument(f"a condition must be a string, got {type(text).__name__} {text!r}")
    from ..store.validation import check_text

    check_text(text, "condition")
    if not text.strip():
        raise ConditionError("the condition is empty", column=1)
    if len(text) > MAX_LENGTH:
        raise ConditionError(f"the condition is over {MAX_LENGTH} characters", column=MAX_LENGTH)
    p = _Parser(text)
    tree, kind = p.parse()
    if kind != "bool":
        raise _error(text, 1, "the condition is a number, not a truth value; compare it, "
                              "e.g. 'serving.error_rate > 0.05'")
    return Condition(text, tree, tuple(p.names))


# -- evaluation: three-valued, None is unknown --------------------------------------------
_ARITH: dict[str, Callable[[float, float], float]] = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
}
_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
}


def _eval(node: Node, facts: Mapping[str, Value]) -> Value:
    # A chain (``a + b + c ...``, ``x or y or z ...``) is a left-leaning tree as deep as it
    # is long: walk its left spine in a loop, so a long condition cannot exhaust the stack.
    # What is left to recurse into (right operands, 'not', '-', parentheses) is bounded by
    # the parser's MAX_DEPTH.
    spine: list[Node] = []
    while node[0] in ("and", "or", "bin"):
        spine.append(node)
        node = node[1] if node[0] in ("and", "or") else node[2]
    value = _leaf(node, facts)
    for parent in reversed(spine):
        if parent[0] in ("and", "or"):
            value = _logic(parent[0], value, _eval(parent[2], facts))
        else:
            value = _binary(parent[1], value, _eval(parent[3], facts))
    return value


def _leaf(node: Node, facts: Mapping[str, Value]) -> Value:
    tag = node[0]
    if tag in ("num", "bool"):
        return node[1]
    if tag == "fact":
        v = facts.get(node[1])
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return None
        return v
    if tag == "neg":
        v = _eval(node[1], facts)
        return None if v is None else -v
    if tag == "not":
        v = _eval(node[1], facts)
        return None if v is None else not v
    raise ValueError(f"not a condition node: {tag!r}")  # pragma: no cover


def _logic(tag: str, a: Value, b: Value) -> Value:
    decisive = tag == "or"   # true decides 'or', false decides 'and'
    if a is decisive or b is decisive:
        return decisive
    if a is None or b is None:
        return None
    return not decisive


def _binary(op: str, a: Value, b: Value) -> Value:
    if a is None or b is None:
        return None
    if op in _CMP:
        return _CMP[op](a, b)
    if op == "/":
        if b == 0:
            return None
        out = a / b
    else:
        out = _ARITH[op](a, b)
    return out if math.isfinite(out) else None
