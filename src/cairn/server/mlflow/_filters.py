"""MLflow's filter grammar for experiments, registered models, versions and logged models.

Runs go through Cairn's own search (:mod:`cairn.search`), which speaks the same
grammar and compiles to SQL.  These other searches cover a few hundred rows at most,
so their filters are parsed here and evaluated in Python: ``AND``-joined clauses
``[prefix.]key <op> <value>``, keys quoted with backticks or double quotes, string
values quoted, numbers bare, ``IN (...)`` lists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from ...errors import InvalidFilter

_PREFIXES = {
    "tag": "tag", "tags": "tag", "metric": "metric", "metrics": "metric",
    "param": "param", "params": "param", "parameter": "param", "parameters": "param",
    "attribute": "attribute", "attributes": "attribute", "attr": "attribute",
}
_TOKEN = re.compile(r"""
    \s*(?:
      (?P<str>'(?:[^']|'')*'|"(?:[^"]|"")*")
    | (?P<bq>`(?:[^`]|``)*`)
    | (?P<num>[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(?![\w.])
    | (?P<op>!=|<=|>=|=|<|>|\(|\)|,)
    | (?P<word>[\w\-/:.]+)
    )""", re.VERBOSE)


@dataclass(frozen=True, slots=True)
class Clause:
    entity: str  # attribute | tag | metric | param
    key: str
    op: str
    value: Any = None


def _tokens(text: str) -> list[tuple[str, Any]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise InvalidFilter(f"Invalid filter '{text}': unexpected text at position {pos}")
        pos = m.end()
        kind = m.lastgroup
        raw = m.group(kind)
        if kind == "str":
            out.append(("str", raw[1:-1].replace(raw[0] * 2, raw[0])))
        elif kind == "bq":
            out.append(("ident", raw[1:-1].replace("``", "`")))
        elif kind == "num":
            out.append(("num", float(raw)))
        else:
            out.append((kind, raw))
    return out


def parse(text: str | None, attributes: dict[str, str]) -> list[Clause]:
    """Clauses of ``text``; ``attributes`` maps accepted attribute names (and aliases) to
    canonical ones.  Raises InvalidFilter (400 INVALID_PARAMETER_VALUE) when malformed."""
    if not text or not text.strip():
        return []
    toks = _tokens(text)
    clauses: list[Clause] = []
    i = 0

    def fail(what: str) -> InvalidFilter:
        return InvalidFilter(f"Invalid clause(s) in filter string: '{text}': {what}")

    while True:
        if i >= len(toks):
            raise fail("expected a clause")
        kind, tok = toks[i]
        entity, key = "attribute", None
        if kind == "word" and "." in tok and tok.split(".", 1)[0].lower() in _PREFIXES:
            prefix, rest = tok.split(".", 1)
            entity = _PREFIXES[prefix.lower()]
            key = rest
            if not rest:  # prefix.`quoted key`
                i += 1
                if i >= len(toks) or toks[i][0] not in ("ident", "str"):
                    raise fail(f"expected a key after '{tok}'")
                key = toks[i][1]
        elif kind in ("word", "ident", "str") and not (kind == "word" and tok.upper() in _OPWORDS):
            key = tok
        else:
            raise fail(f"expected an identifier, found {tok!r}")
        if entity == "attribute":
            canonical = attributes.get(key) or attributes.get(key.lower())
            if canonical is None:
                raise fail(f"invalid attribute key '{key}' (expected one of "
                           f"{', '.join(sorted(set(attributes.values())))})")
            key = canonical
        i += 1
        op, i = _operator(toks, i, fail)
        if op in ("IS NULL", "IS NOT NULL"):
            value: Any = None
        elif op in ("IN", "NOT IN"):
            if i >= len(toks) or toks[i] != ("op", "("):
                raise fail(f"expected a parenthesised list after {op}")
            i += 1
            items = []
            while i < len(toks) and toks[i] != ("op", ")"):
                if toks[i][0] in ("str", "num"):
                    items.append(toks[i][1])
                elif toks[i] != ("op", ","):
                    raise fail(f"unexpected {toks[i][1]!r} in a list")
                i += 1
            if i >= len(toks):
                raise fail("unclosed list")
            i += 1
            value = tuple(items)
        else:
            if i >= len(toks) or toks[i][0] not in ("str", "num"):
                raise fail(f"expected a value after '{key} {op}'")
            value = toks[i][1]
            i += 1
        clauses.append(Clause(entity, key, op, value))
        if i >= len(toks):
            return clauses
        if toks[i][0] == "word" and toks[i][1].upper() == "AND":
            i += 1
            continue
        raise fail(f"expected AND, found {toks[i][1]!r}")


_OPWORDS = {"AND", "LIKE", "ILIKE", "IN", "NOT", "IS", "NULL"}


def _operator(toks, i, fail) -> tuple[str, int]:
    if i >= len(toks):
        raise fail("expected a comparison operator")
    kind, tok = toks[i]
    if kind == "op" and tok in ("=", "!=", "<", "<=", ">", ">="):
        return tok, i + 1
    word = tok.upper() if kind == "word" else ""
    if word in ("LIKE", "ILIKE", "IN"):
        return word, i + 1
    if word == "NOT" and i + 1 < len(toks) and str(toks[i + 1][1]).upper() == "IN":
        return "NOT IN", i + 2
    if word == "IS":
        if i + 1 < len(toks) and str(toks[i + 1][1]).upper() == "NULL":
            return "IS NULL", i + 2
        if (i + 2 < len(toks) and str(toks[i + 1][1]).upper() == "NOT"
                and str(toks[i + 2][1]).upper() == "NULL"):
            return "IS NOT NULL", i + 3
    raise fail(f"expected a comparison operator, found {tok!r}")


def like(value: str, pattern: str, case_insensitive: bool) -> bool:
    """SQL LIKE, anchored: ``%`` any run of characters, ``_`` one character."""
    rx = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    flags = re.DOTALL | (re.IGNORECASE if case_insensitive else 0)
    return re.fullmatch(rx, value, flags) is not None


def compare(actual: Any, op: str, expected: Any) -> bool:
    """One clause's test; a missing value (None) matches only ``!=`` and ``IS NULL``.

    ``!=`` holds for a missing value, as MLflow's ``tag.`mlflow.prompt.is_prompt` !=
    'true'`` (which its client adds to every model search) needs.
    """
    if op == "IS NULL":
        return actual is None
    if op == "IS NOT NULL":
        return actual is not None
    if actual is None:
        return op in ("!=", "NOT IN")
    if isinstance(expected, float) or (isinstance(expected, tuple) and expected
                                       and isinstance(expected[0], float)):
        try:
            actual = float(actual)
        except (TypeError, ValueError):
            return False
    elif not isinstance(actual, str):
        actual = str(actual)
    if op == "=":
        return actual == expected
    if op == "!=":
        return actual != expected
    if op == "LIKE":
        return isinstance(expected, str) and like(actual, expected, False)
    if op == "ILIKE":
        return isinstance(expected, str) and like(actual, expected, True)
    if op == "IN":
        return actual in expected
    if op == "NOT IN":
        return actual not in expected
    try:
        return {"<": actual < expected, "<=": actual <= expected, ">": actual > expected,
                ">=": actual >= expected}[op]
    except TypeError:
        return False


def matcher(clauses: list[Clause], get: Callable[[Any, Clause], Any]) -> Callable[[Any], bool]:
    """A predicate over items: ``get(item, clause)`` gives the compared value or None."""
    def test(item: Any) -> bool:
        return all(compare(get(item, c), c.op, c.value) for c in clauses)

    return test


def parse_order(items: list[str], allowed: dict[str, str]) -> list[tuple[str, bool]]:
    """``["name ASC", "last_updated_timestamp DESC"]`` -> [(canonical key, ascending)]."""
    out = []
    for item in items:
        parts = item.strip().split()
        if not parts:
            continue
        key = parts[0].strip("`\"")
        if "." in key and key.split(".", 1)[0].lower() in ("attribute", "attributes", "attr"):
            key = key.split(".", 1)[1]
        direction = parts[1].upper() if len(parts) > 1 else "ASC"
        canonical = allowed.get(key)
        if canonical is None or direction not in ("ASC", "DESC") or len(parts) > 2:
            raise InvalidFilter(f"Invalid order_by clause '{item}'. Could not be parsed "
                                f"(order by one of {', '.join(sorted(set(allowed)))}, ASC or DESC)")
        out.append((canonical, direction == "ASC"))
    return out


def sort(items: list, order: list[tuple[str, bool]], key: Callable[[Any, str], Any]) -> list:
    """Stable sorts, last key first; missing values (None) last in either direction."""
    result = list(items)
    for name, ascending in reversed(order):
        present = [x for x in result if key(x, name) is not None]
        missing = [x for x in result if key(x, name) is None]
        present.sort(key=lambda x: key(x, name), reverse=not ascending)
        result = present + missing
    return result
